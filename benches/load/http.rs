//! A minimal HTTP/1.1 client: keep-alive, `Content-Length` and chunked bodies,
//! connections spread over loopback source addresses (127.0.0.x) so that tens of
//! thousands of them do not run out of ephemeral ports.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Source addresses used in turn: 127.0.0.2 … 127.0.0.(1 + SOURCES).
const SOURCES: usize = 60;
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// One answer.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) last_modified: Option<String>,
    pub(crate) etag: Option<String>,
    /// The server will close the connection after this answer.
    pub(crate) close: bool,
}

/// One keep-alive connection.
pub(crate) struct Conn {
    io: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    /// Connects to `addr` (loopback only) from the next 127.0.0.x source address.
    pub(crate) async fn open(addr: SocketAddr) -> io::Result<Conn> {
        assert!(
            addr.ip().is_loopback(),
            "load is only ever sent to loopback"
        );
        let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % SOURCES;
        let src = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2 + n as u8), 0);
        let sock = TcpSocket::new_v4()?;
        sock.bind(src.into())?;
        let s = sock.connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            io: BufReader::with_capacity(2048, s),
            line: String::new(),
        })
    }

    /// Sends one request and reads its answer. `headers` are extra lines, each
    /// ending in `\r\n`.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> io::Result<Response> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n{headers}");
        if method == "POST" && body.is_empty() {
            // As XMLHttpRequest's send(null): no body, no Content-Type.
            req.push_str("Content-Length: 0\r\n");
        } else if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.io.get_mut().write_all(&bytes).await?;
        self.read_response().await
    }

    async fn next_line(&mut self) -> io::Result<&str> {
        self.line.clear();
        if self.io.read_line(&mut self.line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(self.line.trim_end())
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let status_line = self.next_line().await?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut r = Response {
            status,
            body: Vec::new(),
            last_modified: None,
            etag: None,
            close: false,
        };
        let mut len: Option<usize> = None;
        let mut chunked = false;
        loop {
            let line = self.next_line().await?;
            if line.is_empty() {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.to_ascii_lowercase().as_str() {
                "content-length" => len = v.parse().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => r.close = v.eq_ignore_ascii_case("close"),
                "last-modified" => r.last_modified = Some(v.to_owned()),
                "etag" => r.etag = Some(v.to_owned()),
                _ => {}
            }
        }
        if chunked {
            loop {
                let size = usize::from_str_radix(
                    self.next_line()
                        .await?
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim(),
                    16,
                )
                .map_err(|_| io::Error::other("bad chunk size"))?;
                if size == 0 {
                    // Trailers (none expected), then the empty line.
                    while !self.next_line().await?.is_empty() {}
                    break;
                }
                let start = r.body.len();
                r.body.resize(start + size, 0);
                self.io.read_exact(&mut r.body[start..]).await?;
                self.next_line().await?;
            }
        } else if let Some(len) = len {
            r.body.resize(len, 0);
            self.io.read_exact(&mut r.body).await?;
        } else if r.status != 204 && r.status != 304 {
            self.io.read_to_end(&mut r.body).await?;
            r.close = true;
        }
        Ok(r)
    }
}

/// The highest `seq<digits>` found in `body` (the load tool's message texts).
pub(crate) fn max_seq(body: &[u8]) -> Option<u64> {
    let mut best = None;
    let mut i = 0;
    while let Some(p) = find(&body[i..], b"seq") {
        let start = i + p + 3;
        let end = body[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(body.len(), |e| start + e);
        if let Some(v) = std::str::from_utf8(&body[start..end])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            best = best.max(Some(v));
        }
        i = end.max(start);
    }
    best
}

/// The last `"id":N` of a JSON array of messages (0 when none).
pub(crate) fn last_id(body: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(body).ok()?;
    let tail = s.rsplit_once("\"id\":")?.1;
    tail.split([',', '}']).next()?.parse().ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
