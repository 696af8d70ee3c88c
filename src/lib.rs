//! cometa: the Comet (long-poll) endpoints of a legacy PHP chat, served by one
//! Rust process that holds every waiting browser for a few KiB and answers it
//! the moment a message is committed to the shared SQLite file.
//!
//! The parts, by file:
//! - [`config`]: flags, `COMETA_*` variables and the `--config` file; `check`.
//! - [`logging`]: the non-blocking logger (text or JSON), rate-limited warnings.
//! - [`listener`]: the public socket, bound or passed by systemd (socket activation).
//! - [`server`]: the accept loop, the connection caps and timeouts, graceful shutdown.
//! - [`limits`]: who the client is (trusted proxies), per-client connection cap and send rates, descriptors.
//! - [`routes`]: a profile's path → the engine, else stats or static file; body cap and timeout, send rate.
//! - [`profile`]: a legacy chat's wire format as a file (`profiles/*.toml`): loading, checking.
//! - [`engine`]: one request through a profile's route: parameters, statements, hold, answer.
//! - [`access`]: one access-log line and the request metrics per request.
//! - [`admin`]: the admin listener: `/metrics`, `/healthz`, `/readyz`, stats.
//! - [`metrics`]: the name of every exported metric, the Prometheus recorder.
//! - [`health`]: what `/readyz` checks (the store, the watcher).
//! - [`php`]: PHP's `$_REQUEST`, `trim()`, `(int)`, `htmlspecialchars`, `json_encode`, `date()`.
//! - [`store`]: the one owner of SQLite: a group-committing writer thread, readers, migrations.
//! - [`changes`]: the per-key "something changed" signal that wakes held requests.
//! - [`watcher`]: reads the change log after every commit (ours or another process's) and signals its keys.
//! - [`static_files`]: the front end.
//! - [`error`]: error types and their HTTP answers.

pub mod access;
pub mod admin;
pub mod changes;
pub mod config;
pub mod engine;
pub mod error;
pub mod health;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod metrics;
pub mod php;
pub mod profile;
pub mod routes;
pub mod server;
pub mod static_files;
pub mod store;
pub mod watcher;
