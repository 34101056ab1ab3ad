//! A TCP/HTTP fault proxy on 127.0.0.1 in front of any upstream (the fake Mastodon and X of
//! `fake`, or the real PDS): one request per connection (it asks the upstream for
//! `Connection: close`), everything relayed byte for byte except the requests that match its
//! create matcher (method + path), to which it applies a queue of faults, one per request.
//!
//! It records what it did with every request and every relay error, and stops when dropped
//! or after [`LIFETIME`], whichever comes first.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The proxy's own time limit.
pub const LIFETIME: Duration = Duration::from_secs(1800);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the port stays closed after a [`Fault::Refused`] when nobody reopens it first
/// ([`FaultProxy::reopen`], called when the gate process that met the fault has ended).
pub const REFUSE_WINDOW: Duration = Duration::from_millis(150);
/// `Retry-After` of the [`Fault::RateLimited`] answer: far longer than gate waits by itself.
pub const RETRY_AFTER: u64 = 3600;

/// The network behind the proxy: which request creates a post, and how the network words the
/// answers the proxy makes up (401, 429, 502), as that network does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST /api/v1/statuses`; errors as `{"error": ...}`, rate limits in `X-RateLimit-*`.
    Mastodon,
    /// `POST /2/tweets`; problem documents, rate limits in `x-rate-limit-*` (epoch seconds).
    X,
    /// `POST /xrpc/com.atproto.repo.putRecord`; XRPC errors `{"error", "message"}`.
    Bluesky,
}

impl Dialect {
    pub fn create(self) -> (&'static str, &'static str) {
        match self {
            Dialect::Mastodon => ("POST", "/api/v1/statuses"),
            Dialect::X => ("POST", "/2/tweets"),
            Dialect::Bluesky => ("POST", "/xrpc/com.atproto.repo.putRecord"),
        }
    }

    fn unauthorized(self) -> (&'static str, &'static str) {
        match self {
            Dialect::Mastodon => (
                "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n",
                r#"{"error":"The access token is invalid"}"#,
            ),
            Dialect::X => (
                "",
                r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#,
            ),
            Dialect::Bluesky => (
                "WWW-Authenticate: Bearer\r\n",
                r#"{"error":"ExpiredToken","message":"Token has expired"}"#,
            ),
        }
    }

    /// Headers and body of a 429 that asks for [`RETRY_AFTER`] seconds.
    fn rate_limited(self) -> (String, &'static str) {
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + RETRY_AFTER;
        match self {
            Dialect::Mastodon => (
                format!(
                    "Retry-After: {RETRY_AFTER}\r\nX-RateLimit-Limit: 300\r\nX-RateLimit-Remaining: 0\r\n"
                ),
                r#"{"error":"Too many requests"}"#,
            ),
            Dialect::X => (
                format!(
                    "Retry-After: {RETRY_AFTER}\r\nx-rate-limit-limit: 100\r\nx-rate-limit-remaining: 0\r\nx-rate-limit-reset: {reset}\r\n"
                ),
                r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#,
            ),
            Dialect::Bluesky => (
                format!(
                    "Retry-After: {RETRY_AFTER}\r\nRateLimit-Limit: 5000\r\nRateLimit-Remaining: 0\r\nRateLimit-Reset: {reset}\r\n"
                ),
                r#"{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}"#,
            ),
        }
    }

    fn bad_gateway(self) -> &'static str {
        match self {
            Dialect::Mastodon => r#"{"error":"Bad gateway"}"#,
            Dialect::X => {
                r#"{"title":"Bad Gateway","type":"about:blank","status":502,"detail":"Bad Gateway"}"#
            }
            Dialect::Bluesky => r#"{"error":"UpstreamFailure","message":"Bad gateway"}"#,
        }
    }
}

/// What the proxy does to the next request that matches the create matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Read the request whole, then close the connection without relaying it: the server
    /// never sees it.
    DropBeforeServer,
    /// Relay it, read the server's whole answer, then close the connection without answering:
    /// the post is made and the client cannot tell.
    DropAfterServer,
    /// Relay it, read the answer, then answer `502 Bad Gateway` instead.
    BadGatewayAfterServer,
    /// Answer `429` with `Retry-After: 3600` without relaying.
    RateLimited,
    /// Stop listening on the port (after checking that a connect to it is refused) before
    /// the client's next connect, then listen again: the next connection is refused. As the
    /// first fault of a queue the matching request itself is closed unrelayed first; after
    /// another fault, the port closes before that fault's answer reaches the client, so the
    /// retry is what is refused.
    Refused,
    /// Answer `401` without relaying (a token revoked or expired mid-run).
    Unauthorized,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::DropBeforeServer,
        Fault::DropAfterServer,
        Fault::BadGatewayAfterServer,
        Fault::RateLimited,
        Fault::Refused,
        Fault::Unauthorized,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::DropBeforeServer => "drop before server",
            Fault::DropAfterServer => "drop after server",
            Fault::BadGatewayAfterServer => "502 after server",
            Fault::RateLimited => "429 retry-after 3600",
            Fault::Refused => "connection refused",
            Fault::Unauthorized => "401",
        }
    }

    /// Whether the request reaches the server under this fault.
    pub fn relays(self) -> bool {
        matches!(self, Fault::DropAfterServer | Fault::BadGatewayAfterServer)
    }
}

/// What the proxy did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub method: String,
    pub path: String,
    /// Whether it matched the create matcher.
    pub create: bool,
    /// The fault applied to it, if any.
    pub fault: Option<Fault>,
    /// The upstream's status, when the request reached it.
    pub upstream: Option<u16>,
    /// The status the client got; none when its connection was closed without an answer.
    pub answered: Option<u16>,
}

/// A [`Fault::Refused`] as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A connect to the closed port was refused (`ECONNREFUSED`), checked right after closing.
    pub probe_refused: bool,
    /// How long the port stayed closed.
    pub closed_for: Duration,
}

#[derive(Default)]
struct Port {
    /// A handler asks the accept loop to close the port.
    close: bool,
    /// Closed since; the loop reopens it when the window passes or `reopen` is asked.
    closed: Option<Instant>,
    reopen: bool,
}

struct Shared {
    upstream: String,
    dialect: Dialect,
    faults: Mutex<VecDeque<Fault>>,
    /// Every fault taken from the queue, in order.
    applied: Mutex<Vec<Fault>>,
    records: Mutex<Vec<Record>>,
    refusals: Mutex<Vec<Refusal>>,
    errors: Mutex<Vec<String>>,
    port: Mutex<Port>,
    stop: AtomicBool,
}

pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy in front of `upstream` (`http://host:port`) applying faults to the dialect's
    /// create requests.
    pub fn start(upstream: &str, dialect: Dialect) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("the upstream is plain http on loopback")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            dialect,
            faults: Mutex::new(VecDeque::new()),
            applied: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
            refusals: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            port: Mutex::new(Port::default()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || accept_loop(Some(listener), addr, &s));
        FaultProxy {
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// Appends faults to the queue; each applies to one matching request, in order.
    pub fn push(&self, faults: &[Fault]) {
        self.shared.faults.lock().unwrap().extend(faults);
    }

    /// Empties the queue; returns the faults no request met.
    pub fn clear(&self) -> Vec<Fault> {
        self.shared.faults.lock().unwrap().drain(..).collect()
    }

    pub fn pending(&self) -> usize {
        self.shared.faults.lock().unwrap().len()
    }

    /// Every fault met so far, in the order they were applied.
    pub fn applied(&self) -> Vec<Fault> {
        self.shared.applied.lock().unwrap().clone()
    }

    /// Every request seen, in order.
    pub fn records(&self) -> Vec<Record> {
        self.shared.records.lock().unwrap().clone()
    }

    /// The requests that matched the create matcher.
    pub fn creates(&self) -> Vec<Record> {
        self.records().into_iter().filter(|r| r.create).collect()
    }

    pub fn refusals(&self) -> Vec<Refusal> {
        self.shared.refusals.lock().unwrap().clone()
    }

    /// Requests the proxy could not relay, and accept or re-bind failures.
    pub fn errors(&self) -> Vec<String> {
        self.shared.errors.lock().unwrap().clone()
    }

    /// Listens again now if a [`Fault::Refused`] closed the port (the client that met it has
    /// ended); waits until the port is open.
    pub fn reopen(&self) {
        self.shared.port.lock().unwrap().reopen = true;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let p = self.shared.port.lock().unwrap();
            if p.closed.is_none() && !p.close {
                break;
            }
            drop(p);
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared.port.lock().unwrap().reopen = false;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

fn accept_loop(mut listener: Option<TcpListener>, addr: std::net::SocketAddr, s: &Arc<Shared>) {
    let deadline = Instant::now() + LIFETIME;
    while !s.stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        {
            let mut port = s.port.lock().unwrap();
            if port.close && listener.is_some() {
                listener = None;
                let started = Instant::now();
                // A child process forked at this moment holds a copy of the listening socket
                // until it execs (the socket is close-on-exec), so the port may accept for a
                // few milliseconds more: probe until it refuses.
                let mut refused = false;
                while !refused && started.elapsed() < Duration::from_secs(1) {
                    let probe = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
                    refused = matches!(&probe, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused);
                    if !refused {
                        drop(probe);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                if !refused {
                    s.errors
                        .lock()
                        .unwrap()
                        .push("the closed port still accepted connects after 1 s".to_owned());
                }
                s.refusals.lock().unwrap().push(Refusal {
                    probe_refused: refused,
                    closed_for: Duration::ZERO,
                });
                port.closed = Some(started);
                port.close = false;
            }
            if let Some(since) = port.closed
                && (port.reopen || since.elapsed() >= REFUSE_WINDOW)
            {
                match bind_again(addr) {
                    Ok(l) => {
                        listener = Some(l);
                        port.closed = None;
                        if let Some(r) = s.refusals.lock().unwrap().last_mut() {
                            r.closed_for = since.elapsed();
                        }
                    }
                    Err(e) => {
                        s.errors
                            .lock()
                            .unwrap()
                            .push(format!("re-bind {addr}: {e}"));
                        return;
                    }
                }
            }
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        match l.accept() {
            Ok((client, _)) => {
                let s = s.clone();
                std::thread::spawn(move || {
                    if let Err(e) = relay(client, &s) {
                        s.errors.lock().unwrap().push(e.to_string());
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => s.errors.lock().unwrap().push(format!("accept: {e}")),
        }
    }
}

/// The same port again (a client's connections in TIME_WAIT do not stop it: std sets
/// `SO_REUSEADDR`); retried briefly in case the kernel is slow to let go.
fn bind_again(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let mut last = None;
    for _ in 0..200 {
        match TcpListener::bind(addr) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                return Ok(l);
            }
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(last.unwrap())
}

/// Asks the accept loop to close the port and waits until it has (so the client's next
/// connect, which can only come after this returns and the client hears back, is refused).
fn close_port(s: &Shared) {
    s.port.lock().unwrap().close = true;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !s.port.lock().unwrap().close {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    s.errors
        .lock()
        .unwrap()
        .push("the port did not close for a refused connection".into());
}

/// The next fault if it is a [`Fault::Refused`] that follows another one: taken, and the port
/// closed before the client hears the first one's outcome.
fn refuse_next(s: &Shared) {
    let mut faults = s.faults.lock().unwrap();
    if faults.front() == Some(&Fault::Refused) {
        faults.pop_front();
        drop(faults);
        s.applied.lock().unwrap().push(Fault::Refused);
        close_port(s);
    }
}

struct Request {
    head: Vec<String>,
    body: Vec<u8>,
}

fn read_request(client: &TcpStream) -> std::io::Result<Option<Request>> {
    let broken = |what: String| std::io::Error::other(what);
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            // Closed before a whole request (e.g. an idle connection): nothing to relay.
            return Ok(None);
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    if head.is_empty() {
        return Err(broken("an empty request".into()));
    }
    let mut length = 0;
    for line in &head[1..] {
        let (name, value) = line.split_once(':').ok_or_else(|| broken(line.clone()))?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().map_err(|_| broken(line.clone()))?;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(broken(format!("unsupported request: {line}")));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { head, body }))
}

fn answer(
    client: &TcpStream,
    status: u16,
    reason: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    let mut c = client;
    c.write_all(text.as_bytes())?;
    c.shutdown(Shutdown::Write)
}

/// Relays one request, applying the queue's next fault to a matching one.
fn relay(client: TcpStream, s: &Shared) -> std::io::Result<()> {
    let broken = |what: String| std::io::Error::other(what);
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let Some(request) = read_request(&client)? else {
        return Ok(());
    };
    let mut parts = request.head[0].split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let create = (method.as_str(), path.as_str()) == s.dialect.create();
    let fault = if create {
        s.faults.lock().unwrap().pop_front()
    } else {
        None
    };
    if let Some(f) = fault {
        s.applied.lock().unwrap().push(f);
    }
    let mut record = Record {
        method,
        path,
        create,
        fault,
        upstream: None,
        answered: None,
    };
    let push = |r: Record| s.records.lock().unwrap().push(r);
    match fault {
        Some(Fault::DropBeforeServer) => {
            refuse_next(s);
            push(record);
            return client.shutdown(Shutdown::Both);
        }
        Some(Fault::Refused) => {
            close_port(s);
            push(record);
            return client.shutdown(Shutdown::Both);
        }
        Some(Fault::RateLimited) => {
            refuse_next(s);
            record.answered = Some(429);
            push(record);
            let (headers, body) = s.dialect.rate_limited();
            return answer(&client, 429, "Too Many Requests", &headers, body);
        }
        Some(Fault::Unauthorized) => {
            refuse_next(s);
            record.answered = Some(401);
            push(record);
            let (headers, body) = s.dialect.unauthorized();
            return answer(&client, 401, "Unauthorized", headers, body);
        }
        _ => {}
    }
    let mut upstream = TcpStream::connect(&s.upstream)?;
    upstream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut bytes = request.head[0].clone().into_bytes();
    for line in &request.head[1..] {
        let name = line.split_once(':').map_or("", |(n, _)| n);
        if !name.eq_ignore_ascii_case("connection") {
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    bytes.extend_from_slice(&request.body);
    upstream.write_all(&bytes)?;
    let mut reply = Vec::new();
    upstream.read_to_end(&mut reply)?;
    let status = reply
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| {
            std::str::from_utf8(rest.get(..3)?)
                .ok()?
                .parse::<u16>()
                .ok()
        })
        .ok_or_else(|| broken(format!("no HTTP answer to {}", request.head[0].trim())))?;
    record.upstream = Some(status);
    match fault {
        Some(Fault::DropAfterServer) => {
            refuse_next(s);
            push(record);
            client.shutdown(Shutdown::Both)
        }
        Some(Fault::BadGatewayAfterServer) => {
            refuse_next(s);
            record.answered = Some(502);
            push(record);
            answer(&client, 502, "Bad Gateway", "", s.dialect.bad_gateway())
        }
        _ => {
            record.answered = Some(status);
            push(record);
            (&client).write_all(&reply)?;
            client.shutdown(Shutdown::Write)
        }
    }
}
