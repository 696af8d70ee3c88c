//! cometa: the Comet (long-poll) endpoints of a legacy PHP chat, served by one
//! Rust process that holds every waiting browser for a few KiB and answers it
//! the moment a message is committed to the shared SQLite file.
//!
//! The parts, by file:
//! - [`config`]: flags and settings.
//! - [`server`]: the accept loop, the connection cap, graceful shutdown.
//! - [`routes`]: `(method, path)` → endpoint, stats or static file; body cap.
//! - [`endpoints`]: one file per legacy endpoint (`sendMessage.php`, …): the wire format.
//! - [`php`]: PHP's `$_REQUEST`, `trim()`, `(int)`, `htmlspecialchars`, `json_encode`, `date()`.
//! - [`chat`]: the core actions (send, listen, presence, typing), independent of the wire.
//! - [`store`]: the one owner of SQLite: a group-committing writer thread and readers.
//! - [`changes`]: the per-room "something changed" signal that wakes waiters.
//! - [`watcher`]: notices commits by other processes (the PHP app) and signals their rooms.
//! - [`static_files`]: the front end.
//! - [`error`]: error types and their HTTP answers.

pub mod changes;
pub mod chat;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod php;
pub mod routes;
pub mod server;
pub mod static_files;
pub mod store;
pub mod watcher;
