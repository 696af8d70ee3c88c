//! Per-client limits: who the client is (its address, or the one a trusted
//! proxy vouches for), how many connections it may hold, how fast it and each
//! user name may send; and the file-descriptor budget of the process.
//!
//! Every map here is bounded: idle entries are swept, and a map that is still
//! full after a sweep starts afresh (it forgets, it never refuses a newcomer).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::header::HeaderMap;

/// The limits a server runs with (from the flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Connections one client address may hold at once; 0: no cap.
    pub connections_per_client: usize,
    /// Sends per second one client address may keep up, and its burst; rate 0: no limit.
    pub client_send: Rate,
    /// Sends per second one user name may keep up, and its burst; rate 0: no limit.
    pub user_send: Rate,
    /// Peers whose `X-Real-IP`/`X-Forwarded-For` name the client (the unix socket always does).
    pub trusted_proxies: Vec<Cidr>,
}

/// A token bucket's refill rate (per second) and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens per second; 0 turns the bucket off.
    pub per_second: f64,
    /// The most tokens saved up: how many sends may come at once.
    pub burst: u32,
}

impl Rate {
    fn is_off(self) -> bool {
        self.per_second <= 0.0
    }
}

/// Why a client was held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    /// The client address holds its share of connections already.
    #[error("too many connections from one client")]
    Connections,
    /// The client address sends faster than its rate.
    #[error("client sends too fast")]
    ClientRate,
    /// The user name sends faster than its rate.
    #[error("user sends too fast")]
    UserRate,
}

/// Where a connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// The unix socket (nginx): always a trusted proxy.
    Unix,
}

/// The client a request is counted against: an address (IPv6 by its /64, the
/// block one subscriber gets), or `None` when nobody vouches for one (the unix
/// socket without headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client(pub Option<IpAddr>);

impl Client {
    /// The peer itself as the client: its address (none for the unix socket).
    pub fn of(peer: Peer) -> Client {
        match peer {
            Peer::Tcp(a) => Client(Some(key_of(a.ip()))),
            Peer::Unix => Client(None),
        }
    }
}

/// An address block, `10.0.0.0/8`, `::1` or `127.0.0.1` (a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not an address or address/bits");
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr { addr, bits })
    }
}

impl Cidr {
    /// Whether `ip` lies in the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix(u128::from(u32::from(net)) << 96, self.bits)
                    == prefix(u128::from(u32::from(ip)) << 96, self.bits)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix(u128::from(net), self.bits) == prefix(u128::from(ip), self.bits)
            }
            _ => false,
        }
    }
}

/// The top `bits` bits of `v`.
fn prefix(v: u128, bits: u8) -> u128 {
    match bits {
        0 => 0,
        b => v & (u128::MAX << (128 - u32::from(b))),
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, a dual-stack listener's view) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The key a client address is counted under: IPv4 as is, IPv6 by its /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((prefix(u128::from(v6), 64)).into()),
        v4 => v4,
    }
}

impl Settings {
    /// Whether `peer` may name the client in `X-Real-IP`/`X-Forwarded-For`.
    pub fn trusts(&self, peer: Peer) -> bool {
        match peer {
            Peer::Unix => true,
            Peer::Tcp(a) => self.trusted_proxies.iter().any(|c| c.contains(a.ip())),
        }
    }

    /// The client of a request from `peer`: the peer itself, unless it is a
    /// trusted proxy; then `X-Real-IP`, else the right-most `X-Forwarded-For`
    /// entry that is not itself a trusted proxy, else the proxy.
    pub fn client(&self, peer: Peer, headers: &HeaderMap) -> Client {
        let own = Client::of(peer);
        if !self.trusts(peer) {
            return own;
        }
        let header_ip = |name: &str| -> Option<&str> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        if let Some(ip) = header_ip("x-real-ip").and_then(|v| v.parse::<IpAddr>().ok()) {
            return Client(Some(key_of(ip)));
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            let Ok(ip) = entry.parse::<IpAddr>() else {
                // Garbage from the far side: nothing left of it is worth more.
                break;
            };
            if !self.trusted_proxies.iter().any(|c| c.contains(ip)) {
                return Client(Some(key_of(ip)));
            }
        }
        own
    }
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Refills for the time since the last look; then takes one token if there is one.
    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate.per_second).min(f64::from(rate.burst));
        self.at = now;
    }
}

/// Most keys a map holds before it is swept; a map still over this after a
/// sweep starts afresh.
const MAX_KEYS: usize = 100_000;
/// How often idle buckets are swept at the latest.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Buckets by key, bounded.
#[derive(Debug)]
struct Buckets<K> {
    rate: Rate,
    map: HashMap<K, Bucket>,
    swept: Instant,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(rate: Rate, now: Instant) -> Self {
        Buckets {
            rate,
            map: HashMap::new(),
            swept: now,
        }
    }

    /// Whether `key` may act now (takes a token if so).
    fn allow(&mut self, key: K, now: Instant) -> bool {
        if self.rate.is_off() {
            return true;
        }
        if self.map.len() >= MAX_KEYS || now.saturating_duration_since(self.swept) >= SWEEP_EVERY {
            self.sweep(now);
        }
        let rate = self.rate;
        self.map
            .entry(key)
            .or_insert(Bucket {
                tokens: f64::from(rate.burst),
                at: now,
            })
            .take(rate, now)
    }

    /// Forgets full buckets (a new one starts full anyway).
    fn sweep(&mut self, now: Instant) {
        let rate = self.rate;
        self.map.retain(|_, b| {
            b.refill(rate, now);
            b.tokens < f64::from(rate.burst)
        });
        if self.map.len() >= MAX_KEYS {
            tracing::warn!(
                keys = self.map.len(),
                "send limiter: too many busy keys; forgetting them all"
            );
            self.map.clear();
        }
        self.swept = now;
    }
}

/// The send limiters.
#[derive(Debug)]
struct SendBuckets {
    clients: Buckets<IpAddr>,
    users: Buckets<String>,
}

/// The per-client limits of one server.
#[derive(Debug)]
pub struct Limits {
    settings: Settings,
    sends: Mutex<SendBuckets>,
    connections: Arc<Counts>,
}

impl Limits {
    /// Limits with these settings.
    pub fn new(settings: Settings) -> Limits {
        let now = Instant::now();
        Limits {
            sends: Mutex::new(SendBuckets {
                clients: Buckets::new(settings.client_send, now),
                users: Buckets::new(settings.user_send, now),
            }),
            connections: Arc::default(),
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether `client` (and `user`, when the request names one) may send now;
    /// a send that is let through uses up one token of each.
    pub fn check_send(&self, client: Client, user: Option<&str>) -> Result<(), Limited> {
        self.check_send_at(client, user, Instant::now())
    }

    fn check_send_at(
        &self,
        client: Client,
        user: Option<&str>,
        now: Instant,
    ) -> Result<(), Limited> {
        let mut b = self.sends.lock().unwrap_or_else(PoisonError::into_inner);
        // A send held back by the user's bucket still used the client's token:
        // the client did send it.
        if let Some(ip) = client.0
            && !b.clients.allow(ip, now)
        {
            return Err(Limited::ClientRate);
        }
        match user {
            Some(u) if !u.is_empty() && !b.users.allow(u.to_owned(), now) => Err(Limited::UserRate),
            _ => Ok(()),
        }
    }

    /// Takes one of `client`'s connection slots, held until the guard drops.
    /// A client without an address is not counted.
    pub fn enter(&self, client: Client) -> Result<ClientSlot, Limited> {
        let cap = self.settings.connections_per_client;
        let Some(ip) = client.0.filter(|_| cap > 0) else {
            return Ok(ClientSlot(None));
        };
        let mut m = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= cap {
            return Err(Limited::Connections);
        }
        *n += 1;
        Ok(ClientSlot(Some((self.connections.clone(), ip))))
    }
}

/// One connection slot of a client; given back on drop.
#[derive(Debug)]
pub struct ClientSlot(Option<(Arc<Counts>, IpAddr)>);

/// Open connections by client address.
type Counts = Mutex<HashMap<IpAddr, usize>>;

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some((map, ip)) = self.0.take() {
            let mut m = map.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = m.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
        }
    }
}

/// Descriptors the process needs besides its connections: stdio, the
/// listener, the runtime's epoll and wakers, SQLite's files (database, WAL and
/// shared memory of the writer, each reader and the watcher's connection) and
/// the watcher's inotify, with room to spare.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// Refusals (503/429 answers over a cap) in flight at once; beyond them a
/// connection over the cap is closed without an answer.
pub const MAX_REFUSALS: usize = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and returns the number
/// of connections that fits: `max_connections`, or less (with the reason) when
/// the limit leaves no room for it, the reserve and the refusals.
pub fn fit_descriptors(max_connections: usize) -> (usize, Option<String>) {
    // An infinite hard limit cannot be the soft one: the kernel's cap is.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let limit = match rlimit::increase_nofile_limit(nr_open) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise RLIMIT_NOFILE; keeping it");
            match rlimit::Resource::NOFILE.get() {
                Ok((soft, _)) => soft,
                Err(_) => return (max_connections, None),
            }
        }
    };
    let room = limit
        .saturating_sub(RESERVED_DESCRIPTORS)
        .saturating_sub(MAX_REFUSALS as u64);
    if (max_connections as u64) <= room {
        return (max_connections, None);
    }
    let fits = usize::try_from(room).unwrap_or(usize::MAX).max(1);
    (
        fits,
        Some(format!(
            "--max-connections {max_connections} does not fit the descriptor limit {limit} \
             ({RESERVED_DESCRIPTORS} reserved, {MAX_REFUSALS} for refusals): serving at most \
             {fits}; raise LimitNOFILE= (or ulimit -Hn) to keep {max_connections}"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn settings(trusted: &[&str]) -> Settings {
        Settings {
            connections_per_client: 2,
            client_send: Rate {
                per_second: 1.0,
                burst: 3,
            },
            user_send: Rate {
                per_second: 0.5,
                burst: 2,
            },
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn cidr_parsing_and_matching() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.200.3.4".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::9".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "::/129", "x", "10.0.0.0/", "/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_count_only_from_trusted_peers() {
        let s = settings(&["10.0.0.1"]);
        let spoof = headers(&[("x-real-ip", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8")]);
        let stranger = Peer::Tcp("9.9.9.9:1000".parse().unwrap());
        assert_eq!(s.client(stranger, &spoof), Client(ip("9.9.9.9")));
        let proxy = Peer::Tcp("10.0.0.1:1000".parse().unwrap());
        assert_eq!(s.client(proxy, &spoof), Client(ip("1.2.3.4")));
        assert_eq!(s.client(Peer::Unix, &spoof), Client(ip("1.2.3.4")));
        // X-Forwarded-For: the right-most entry that is not a trusted proxy.
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 7.7.7.7, 10.0.0.1")]);
        assert_eq!(s.client(proxy, &xff), Client(ip("7.7.7.7")));
        let two = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.8"),
        ]);
        assert_eq!(s.client(Peer::Unix, &two), Client(ip("7.7.7.8")));
        // Nothing usable: the proxy itself (none for the unix socket).
        let junk = headers(&[("x-real-ip", "nope"), ("x-forwarded-for", "also, nope")]);
        assert_eq!(s.client(proxy, &junk), Client(ip("10.0.0.1")));
        assert_eq!(s.client(Peer::Unix, &junk), Client(None));
        assert_eq!(s.client(Peer::Unix, &HeaderMap::new()), Client(None));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let s = settings(&[]);
        let a = s.client(
            Peer::Tcp("[2001:db8:1:2:aaaa::1]:5".parse().unwrap()),
            &HeaderMap::new(),
        );
        let b = s.client(
            Peer::Tcp("[2001:db8:1:2:bbbb::2]:5".parse().unwrap()),
            &HeaderMap::new(),
        );
        assert_eq!(a, b);
        assert_eq!(a, Client(ip("2001:db8:1:2::")));
        let mapped = s.client(
            Peer::Tcp("[::ffff:1.2.3.4]:5".parse().unwrap()),
            &HeaderMap::new(),
        );
        assert_eq!(mapped, Client(ip("1.2.3.4")));
    }

    #[test]
    fn send_buckets_refill_at_their_rate() {
        let l = Limits::new(settings(&[]));
        let t0 = Instant::now();
        let c = Client(ip("1.1.1.1"));
        // The user's burst (2) runs out first.
        assert_eq!(l.check_send_at(c, Some("ana"), t0), Ok(()));
        assert_eq!(l.check_send_at(c, Some("ana"), t0), Ok(()));
        assert_eq!(l.check_send_at(c, Some("ana"), t0), Err(Limited::UserRate));
        // Another name from the same address: the address's burst (3) is used up now.
        assert_eq!(
            l.check_send_at(c, Some("bob"), t0),
            Err(Limited::ClientRate)
        );
        // Another address, same user: still the user's limit.
        let d = Client(ip("2.2.2.2"));
        assert_eq!(l.check_send_at(d, Some("ana"), t0), Err(Limited::UserRate));
        // Two seconds give ana one token (0.5/s) and the address two (1/s).
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(l.check_send_at(c, Some("ana"), t2), Ok(()));
        assert_eq!(l.check_send_at(c, Some("bob"), t2), Ok(()));
        assert_eq!(l.check_send_at(c, None, t2), Err(Limited::ClientRate));
        // A client without an address is limited by its user name only.
        assert_eq!(l.check_send_at(Client(None), Some("cy"), t2), Ok(()));
    }

    #[test]
    fn rate_zero_turns_a_bucket_off_and_idle_buckets_are_swept() {
        let mut s = settings(&[]);
        s.user_send.per_second = 0.0;
        let l = Limits::new(s);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(
                l.check_send_at(Client(ip("3.3.3.3")), Some("ana"), t0),
                Ok(()),
                "{i}"
            );
        }
        let b = l.sends.lock().unwrap();
        assert!(b.users.map.is_empty());
        drop(b);
        // After a sweep interval the (refilled, full) bucket is gone.
        let later = t0 + SWEEP_EVERY + Duration::from_secs(10);
        assert_eq!(l.check_send_at(Client(ip("4.4.4.4")), None, later), Ok(()));
        let b = l.sends.lock().unwrap();
        assert_eq!(b.clients.map.len(), 1, "only the new client is left");
    }

    #[test]
    fn connection_slots_are_counted_and_given_back() {
        let l = Limits::new(settings(&[]));
        let c = Client(ip("5.5.5.5"));
        let a = l.enter(c).unwrap();
        let b = l.enter(c).unwrap();
        assert_eq!(l.enter(c).unwrap_err(), Limited::Connections);
        assert!(l.enter(Client(ip("5.5.5.6"))).is_ok());
        assert!(l.enter(Client(None)).is_ok(), "no address, no count");
        drop(a);
        let _c = l.enter(c).unwrap();
        drop(b);
        drop(_c);
        assert!(l.connections.lock().unwrap().is_empty());
    }
}
