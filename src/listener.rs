//! Where the public socket comes from: passed in by systemd (socket
//! activation, `deploy/cometa.socket`) or bound by cometa (`--listen`).
//!
//! With socket activation the socket belongs to systemd and outlives the
//! process: during `systemctl restart` or an upgrade, connections wait in its
//! queue until the new process accepts them, instead of nginx answering 502.
//! cometa takes the first socket passed (`LISTEN_FDS`, `LISTEN_PID` as
//! systemd sets them, read by the `listenfd` crate), TCP or unix, and never
//! removes an inherited unix socket's file.

use std::io;

use tokio::net::{TcpListener, UnixListener};

use crate::server::Listener;

/// The socket systemd passed, if any; else `addr` bound here.
pub async fn public(addr: &str) -> io::Result<Listener> {
    match inherited()? {
        Some(l) => {
            tracing::info!(
                socket = %l.describe(),
                "serving the socket systemd passed (socket activation); --listen is not used"
            );
            Ok(l)
        }
        None => Listener::bind(addr).await,
    }
}

/// The first socket passed by systemd (`LISTEN_FDS`), if any.
pub fn inherited() -> io::Result<Option<Listener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let passed = fds.len();
    if passed == 0 {
        return Ok(None);
    }
    if passed > 1 {
        tracing::warn!(
            sockets = passed,
            "systemd passed several sockets; serving the first only"
        );
    }
    if let Ok(Some(l)) = fds.take_tcp_listener(0) {
        l.set_nonblocking(true)?;
        return Ok(Some(Listener::Tcp(TcpListener::from_std(l)?)));
    }
    match fds.take_unix_listener(0)? {
        Some(l) => {
            l.set_nonblocking(true)?;
            Ok(Some(Listener::Unix(UnixListener::from_std(l)?, None)))
        }
        None => Ok(None),
    }
}
