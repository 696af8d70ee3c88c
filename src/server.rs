//! The accept loop, the connection's protections, and graceful shutdown.
//!
//! One permit of a semaphore per open connection (taken before the connection
//! is served, dropped with it), and one slot of its client's share
//! ([`crate::limits`]): over either cap a new connection is answered (503,
//! 429) at once, without reading its request, and closed; at most
//! [`limits::MAX_REFUSALS`] such answers are in flight. A connection's head is
//! capped (431) and timed, what hyper buffers for it is bounded, and a client
//! that accepts no byte of its answer for the write timeout is cut. A TCP
//! client may half-close and still get its answer; one that resets is dropped
//! at once, its waiter with it. On shutdown the loop stops accepting, held
//! long-polls answer `[]` (they watch the same token), and in-flight requests
//! get a bounded grace period.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::access;
use crate::limits::{self, Client, Peer};
use crate::logging::RateLimit;
use crate::profile::ErrorKind;
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

/// An accepted connection, shared: hyper reads and writes it through
/// [`Io`] while the connection's task watches it for a reset, so it is shared.
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl From<Stream> for Sock {
    fn from(s: Stream) -> Sock {
        match s {
            Stream::Tcp(s) => Sock::Tcp(s),
            Stream::Unix(s) => Sock::Unix(s),
        }
    }
}

macro_rules! each {
    ($sock:expr, $s:ident => $e:expr) => {
        match $sock {
            Sock::Tcp($s) => $e,
            Sock::Unix($s) => $e,
        }
    };
}

impl Sock {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read_ready(cx))
    }
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => s.try_read(buf))
    }
    /// Reads into the unfilled part of `buf` without zeroing it first: hyper's
    /// 8 KiB read buffer of an idle connection then stays untouched (not
    /// resident) instead of costing 8 KiB of RSS per waiting client.
    ///
    /// A short read (less than the room there was) also forgets the socket's
    /// readiness, as tokio's own `poll_read` does: the next read then waits
    /// for the kernel's next event instead of costing a `recv` that says
    /// `EAGAIN` (one per request otherwise).
    fn try_read_buf(&self, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
        let room = buf.remaining();
        let mut got = None;
        let tried = each!(self, s => s.try_io(Interest::READABLE, || {
            let n = recv_into(socket2::SockRef::from(s), buf)?;
            if n > 0 && n < room {
                // Told as WouldBlock so that tokio clears the readiness it
                // saw before this read (a later event keeps it set).
                got = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }));
        match got {
            Some(n) => Ok(n),
            None => tried,
        }
    }
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_write_ready(cx))
    }
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.try_write(buf))
    }
    fn try_write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        each!(self, s => s.try_write_vectored(bufs))
    }
    async fn ready(&self, interest: Interest) -> io::Result<tokio::io::Ready> {
        each!(self, s => s.ready(interest).await)
    }
    /// Makes the close a reset: what the client did not take is dropped at
    /// once instead of lingering in the kernel, retried, for minutes.
    fn reset_on_close(&self) {
        let _ = each!(self, s => socket2::SockRef::from(s).set_linger(Some(Duration::ZERO)));
    }
    fn shutdown_write(&self) -> io::Result<()> {
        each!(self, s => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write))
    }

    /// Reads into `buf`, waiting for the socket.
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.ready(Interest::READABLE).await?;
            match self.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    }

    /// Writes all of `buf`, waiting for the socket.
    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            self.ready(Interest::WRITABLE).await?;
            match self.try_write(buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Resolves when the peer resets the connection (or the socket fails). A
    /// FIN is not a reset: a client may half-close and still read its answer.
    async fn reset(&self) {
        loop {
            match self.ready(Interest::ERROR).await {
                Ok(r) if !r.is_error() => continue,
                _ => return,
            }
        }
    }
}

/// What a connection's task, its requests and its [`Io`] share: one
/// allocation per connection.
struct Conn {
    sock: Sock,
    /// Told when a request arrives (a permit is kept if nobody waits yet).
    started: Notify,
    /// The client, for the access log.
    peer: access::Peer,
}

/// `recv` into the unfilled part of `buf`, which is not zeroed first (see
/// [`Sock::try_read_buf`]); returns the bytes read, now filled.
#[allow(unsafe_code)]
fn recv_into(sock: socket2::SockRef<'_>, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    // SAFETY: `recv` writes only initialised bytes into the slice it is given
    // and returns how many; exactly those are then marked initialised and
    // filled. Nothing is read from the uninitialised part. (tokio's own
    // `TcpStream::try_read_buf` does the same.)
    let n = sock.recv(unsafe { buf.unfilled_mut() })?;
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Ok(n)
}

/// The connection as hyper sees it: [`Sock`] plus the write timeout, which
/// runs while a write waits for a client that accepts no bytes.
struct Io {
    conn: Arc<Conn>,
    write_timeout: Duration,
    /// Armed at the first write that cannot go on; disarmed by any progress.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: bool,
}

impl Io {
    fn new(conn: Arc<Conn>, write_timeout: Duration) -> Io {
        Io {
            conn,
            write_timeout,
            stall: None,
            stalled: false,
        }
    }

    /// A write cannot go on: pending until the write timeout, then an error.
    fn poll_stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.stalled {
            self.stalled = true;
            let deadline = tokio::time::Instant::now() + self.write_timeout;
            match &mut self.stall {
                Some(s) => s.as_mut().reset(deadline),
                None => self.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        match self.stall.as_mut().map(|s| s.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => {
                self.conn.sock.reset_on_close();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client accepted no byte for the write timeout",
                )))
            }
            _ => Poll::Pending,
        }
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&Sock) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.conn.sock.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => match write(&self.conn.sock) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Ok(n) => {
                        self.stalled = false;
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                },
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.poll_stall(cx),
            }
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let sock = &self.conn.sock;
        loop {
            std::task::ready!(sock.poll_read_ready(cx))?;
            match sock.try_read_buf(buf) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |s| s.try_write(buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |s| s.try_write_vectored(bufs))
    }
    /// So that hyper queues an answer's bytes instead of copying them into a
    /// buffer of its own: a connection holds the answer once.
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.conn.sock.shutdown_write() {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// What hyper may buffer for one connection (read buffer; write buffer when it
/// must copy): enough for the largest head and a body chunk.
const MAX_BUF_SIZE: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains.
pub async fn run(listener: Listener, app: Arc<App>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    let header_timeout = app.config.header_timeout;
    let trusted_proxy = listener.trusts_proxy_headers();
    let refusals = Arc::new(Semaphore::new(limits::MAX_REFUSALS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_header_size(app.config.max_header_size)
        .max_buf_size(MAX_BUF_SIZE.max(app.config.max_header_size + 8192))
        .writev(true);
    // nginx never half-closes; on TCP a client may (`nc -N`), and still wants
    // its answer. Only a reset tells that a TCP client is gone.
    let mut http_tcp = http.clone();
    http_tcp.half_close(true);
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
        let from = match &stream {
            Stream::Tcp(s) => {
                if app.config.send_buffer > 0 {
                    let _ = socket2::SockRef::from(s).set_send_buffer_size(app.config.send_buffer);
                }
                match s.peer_addr() {
                    Ok(a) => Peer::Tcp(a),
                    Err(_) => continue,
                }
            }
            Stream::Unix(_) => Peer::Unix,
        };
        let sock = Sock::from(stream);
        let settings = app.limits.settings();
        let trusted = settings.trusts(from);
        let Ok(permit) = app.connections.clone().try_acquire_owned() else {
            metrics::counter!(crate::metrics::REJECTIONS, "reason" => "connection_cap")
                .increment(1);
            if let Some(times) = CAP_REACHED.hit() {
                tracing::warn!(%peer, times, "connection cap reached; answering 503");
            }
            refuse(sock, &refusals, &app, ErrorKind::Busy);
            continue;
        };
        // A proxy's connections are counted per request, by the client it names.
        let direct = Client::of(from);
        let Ok(slot) = app
            .limits
            .enter(if trusted { Client(None) } else { direct })
        else {
            metrics::counter!(crate::metrics::REJECTIONS, "reason" => "client_connection_cap")
                .increment(1);
            refuse(sock, &refusals, &app, ErrorKind::RateLimited);
            continue;
        };
        let conn = Arc::new(Conn {
            sock,
            started: Notify::new(),
            peer: access::Peer {
                addr: match from {
                    Peer::Tcp(a) => Some(a),
                    Peer::Unix => None,
                },
                trusted_proxy: trusted_proxy || trusted,
            },
        });
        let svc_app = app.clone();
        let service = {
            let conn = conn.clone();
            service_fn(move |mut req: Request<Incoming>| {
                conn.started.notify_one();
                let app = svc_app.clone();
                let (client, slot) = if trusted {
                    let client = app.limits.settings().client(from, req.headers());
                    (client, Some(app.limits.enter(client)))
                } else {
                    (direct, None)
                };
                req.extensions_mut().insert(client);
                access::logged(&conn.peer, req, move |req| match slot {
                    Some(Err(_)) => {
                        let reply = app.engine.current().error(ErrorKind::RateLimited, "", "");
                        Either::Left(std::future::ready(Ok(routes::response(&reply))))
                    }
                    // The client's slot is held until the answer is made.
                    slot => Either::Right(routes::handle(app, req).map(move |res| {
                        drop(slot);
                        res
                    })),
                })
            })
        };
        let http = match from {
            Peer::Tcp(_) => &http_tcp,
            Peer::Unix => &http,
        };
        // Boxed: the task's future then holds a pointer to the connection
        // where it would hold the connection itself, in more than one place.
        let http_conn = Box::pin(http.serve_connection(
            TokioIo::new(Io::new(conn.clone(), app.config.write_timeout)),
            service,
        ));
        let span = tracing::debug_span!("conn", %peer);
        let shutdown = shutdown.clone();
        connections.spawn(
            async move {
                tokio::select! {
                    r = drain(http_conn, &conn.started, &shutdown, header_timeout) => if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with an error");
                    },
                    () = conn.sock.reset() => tracing::debug!("reset by the client"),
                }
                drop(slot);
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
    mut conn: Pin<Box<http1::Connection<TokioIo<Io>, S>>>,
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

/// How long a refusal may take: writing its answer, then reading what the
/// client sent until it closes (closing on unread bytes would reset the
/// connection, and the client might lose the answer).
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// Answers a connection over a cap at once with the profile's answer for
/// `kind` (the classic chat: 503 `server busy`, 429 `too many requests`),
/// without reading its request, and closes it. At most
/// [`limits::MAX_REFUSALS`] are in flight; beyond them the connection is
/// closed without an answer.
fn refuse(sock: Sock, refusals: &Arc<Semaphore>, app: &App, kind: ErrorKind) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let reply = app.engine.current().error(kind, "", "");
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\n",
        reply.status.as_u16(),
        reply.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in reply.headers.iter() {
        if name != header::CONTENT_LENGTH && name != header::CONNECTION {
            answer.extend_from_slice(name.as_str().as_bytes());
            answer.extend_from_slice(b": ");
            answer.extend_from_slice(value.as_bytes());
            answer.extend_from_slice(b"\r\n");
        }
    }
    answer.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            reply.body.len()
        )
        .as_bytes(),
    );
    answer.extend_from_slice(&reply.body);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            sock.write_all(&answer).await?;
            sock.shutdown_write()?;
            let mut sink = [0u8; 1024];
            while sock.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
        drop(permit);
    });
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
