//! The accept loop and graceful shutdown.
//!
//! One permit of a semaphore per open connection (taken before the connection
//! is served, dropped with it): at the cap, a new connection is answered 503 at
//! once instead of waiting. On shutdown the loop stops accepting, held
//! long-polls answer `[]` (they watch the same token), and in-flight requests
//! get a bounded grace period.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::StatusCode;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::access;
use crate::error::json_error;
use crate::logging::RateLimit;
use crate::routes::{self, App};

/// A bound socket: TCP or a unix socket (removed again on drop when this
/// process made it; an inherited one, see `listener`, has no path to remove).
pub enum Listener {
    /// `host:port`
    Tcp(TcpListener),
    /// `unix:/path`
    Unix(UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Binds `addr`: `host:port` or `unix:/path`. A stale socket file (nobody
    /// accepts on it) is replaced; a live one, or a file that is not a socket,
    /// is an error rather than silently taken over.
    pub async fn bind(addr: &str) -> io::Result<Listener> {
        if let Some(path) = addr.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            remove_stale_socket(&path)?;
            Ok(Listener::Unix(UnixListener::bind(&path)?, Some(path)))
        } else {
            let mut last = None;
            for a in tokio::net::lookup_host(addr).await? {
                match bind_tcp(a) {
                    Ok(l) => return Ok(Listener::Tcp(l)),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no address for {addr}"),
                )
            }))
        }
    }

    /// Where it listens, as a URL-ish string for people.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("http://{a}"),
                Err(_) => "tcp".into(),
            },
            Listener::Unix(l, _) => match l.local_addr() {
                Ok(a) => match a.as_pathname() {
                    Some(p) => format!("unix:{}", p.display()),
                    None => "unix:(unnamed)".into(),
                },
                Err(_) => "unix".into(),
            },
        }
    }

    /// Whether the peers are a local proxy (a unix socket): their
    /// `X-Real-IP`/`X-Forwarded-For` are believed for the access log.
    pub fn trusts_proxy_headers(&self) -> bool {
        matches!(self, Listener::Unix(..))
    }

    pub(crate) async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), peer.to_string()))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), "unix".into()))
            }
        }
    }
}

/// Pending connections the kernel queues for `accept`: after a restart every
/// browser polls again at once, and a short queue would refuse most of them.
const BACKLOG: u32 = 4096;

/// A TCP listener on `addr` with [`BACKLOG`].
fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Removes `path` if it is a socket nobody listens on.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process is listening on {}", path.display()),
        )),
        Err(_) => std::fs::remove_file(path),
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An accepted connection of either kind.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains.
pub async fn run(listener: Listener, app: Arc<App>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let header_timeout = app.config.header_timeout;
    let trusted_proxy = listener.trusts_proxy_headers();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let io = TokioIo::new(stream);
        let Ok(permit) = app.connections.clone().try_acquire_owned() else {
            metrics::counter!(crate::metrics::REJECTIONS, "reason" => "connection_cap")
                .increment(1);
            if let Some(times) = CAP_REACHED.hit() {
                tracing::warn!(%peer, times, "connection cap reached; answering 503");
            }
            tokio::spawn(reject(io, header_timeout));
            continue;
        };
        let app = app.clone();
        let peer_info = Arc::new(access::Peer {
            addr: peer.clone(),
            trusted_proxy,
        });
        // Told when a request arrives (a permit is kept if nobody waits yet).
        let started = Arc::new(Notify::new());
        let service = {
            let started = started.clone();
            service_fn(move |req| {
                started.notify_one();
                let app = app.clone();
                let peer_info = peer_info.clone();
                async move { access::logged(&peer_info, req, |req| routes::handle(app, req)).await }
            })
        };
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(io, service);
        let span = tracing::debug_span!("conn", %peer);
        let shutdown = shutdown.clone();
        connections.spawn(
            async move {
                if let Err(e) = drain(conn, &started, &shutdown, header_timeout).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    connections.close();
    let grace = app.config.shutdown_timeout;
    tracing::info!("shutting down: no new connections; draining for up to {grace:?}");
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining connections");
    }
}

/// How long, at shutdown, a connection accepted just before may take to send
/// its first request.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// Serves `conn` until it ends; at shutdown, ends it gracefully: the request in
/// flight finishes, then it closes. hyper closes an idle connection at once,
/// and a connection accepted just before the shutdown (nginx's, or one queued
/// in a systemd socket during a restart) counts as idle until its request has
/// been read: such a connection first gets [`FIRST_REQUEST_GRACE`] (at most
/// the header timeout) for its request, so that it is answered, not dropped.
async fn drain<S>(
    conn: http1::Connection<TokioIo<Stream>, S>,
    started: &Notify,
    shutdown: &CancellationToken,
    header_timeout: Duration,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => return res,
        () = shutdown.cancelled() => {}
    }
    tokio::select! {
        res = conn.as_mut() => return res,
        () = started.notified() => {}
        () = tokio::time::sleep(FIRST_REQUEST_GRACE.min(header_timeout)) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// One warning per interval, with a count, for events a client can cause at will.
const WARN_EVERY: Duration = Duration::from_secs(10);
static CAP_REACHED: RateLimit = RateLimit::new(WARN_EVERY);
static ACCEPT_FAILED: RateLimit = RateLimit::new(WARN_EVERY);

/// Answers one request with 503 and closes; used over the connection cap.
async fn reject(io: TokioIo<Stream>, header_timeout: Duration) {
    let service = service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server busy",
        ))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(false)
        .serve_connection(io, service);
    let _ = tokio::time::timeout(header_timeout, conn).await;
}

/// As axum does: a failed handshake of one client is not our problem; running
/// out of file descriptors is, and retrying at once would spin.
async fn accept_error(e: io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset => {}
        _ => {
            if let Some(times) = ACCEPT_FAILED.hit() {
                tracing::error!(error = %e, times, "accept failed; backing off");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
