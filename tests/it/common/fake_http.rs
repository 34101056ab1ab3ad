//! The one HTTP fake: an HTTP/1.1 server on 127.0.0.1 that records every request and answers
//! with what the test's handler says. The fake Mastodon and X of `fake` are handlers on it;
//! tests that need only a few canned answers (OAuth servers, hostile servers) pass a closure
//! to [`FakeServer::start`].
//!
//! One request per connection: it is read whole (a `Content-Length` or a chunked body), recorded,
//! handed to the handler, answered with `Connection: close` and closed. A handler may instead
//! close the connection without answering ([`Answer::Close`]), as a network that drops the
//! line does. Each connection has its own thread, so a slow client does not hold up the
//! others; the handler itself runs one request at a time, in the order the requests are
//! recorded. The server stops when dropped, and on its own after [`LIFETIME`].

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// How long a server runs at the most when nobody drops it: longer than the whole integration
/// crate runs on a loaded machine.
pub const LIFETIME: Duration = Duration::from_secs(1800);
/// How long a connection may take to send its request, or to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Request {
    /// When the request was read whole.
    pub at: Instant,
    /// The wall clock at the same moment, for deadlines a server names in epoch time.
    pub wall: SystemTime,
    pub method: String,
    pub path: String,
    /// The query string as sent, without the `?`.
    pub query: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as an `application/x-www-form-urlencoded` form (the last value of a repeated
    /// name).
    pub fn form(&self) -> BTreeMap<String, String> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// Every value the form gives `name`, in order.
    pub fn form_values(&self, name: &str) -> Vec<String> {
        url::form_urlencoded::parse(&self.body)
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    /// The query's pairs, decoded, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The first value the query gives `name`.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The value of a multipart text field (good enough for the fields gate sends).
    pub fn multipart_field(&self, name: &str) -> Option<String> {
        let body = String::from_utf8_lossy(&self.body);
        let marker = format!("name=\"{name}\"");
        let start = body.find(&marker)?;
        let rest = &body[start..];
        let value_start = rest.find("\r\n\r\n")? + 4;
        let value = &rest[value_start..];
        let end = value.find("\r\n--")?;
        Some(value[..end].to_owned())
    }
}

/// An answer: a status, extra headers and a body, sent as `application/json`.
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

pub fn json(status: u16, body: serde_json::Value) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        headers: Vec::new(),
    }
}

impl Reply {
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// What a handler does with a request.
pub enum Answer {
    Reply(Reply),
    /// Close the connection without answering.
    Close,
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Reply(reply)
    }
}

type Handler = Box<dyn FnMut(&Request) -> Answer + Send>;

struct Shared {
    /// Every request, in the order the handler saw them; the handler beside it, so that
    /// recording and handling are one step.
    served: Mutex<(Vec<Request>, Handler)>,
    stop: AtomicBool,
}

pub struct FakeServer {
    pub url: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// A server that answers every request with what `handler` returns.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + 'static) -> FakeServer {
        FakeServer::serve(|_| move |r: &Request| Answer::Reply(handler(r)))
    }

    /// A server whose handler, made knowing the server's own URL (`http://127.0.0.1:PORT`),
    /// may also close a connection without answering.
    pub fn serve<H>(make: impl FnOnce(&str) -> H) -> FakeServer
    where
        H: FnMut(&Request) -> Answer + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            served: Mutex::new((Vec::new(), Box::new(make(&url)))),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || connection(stream, &s));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
        });
        FakeServer {
            url,
            shared,
            thread: Some(thread),
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.served.lock().unwrap().0.clone()
    }

    /// The requests to `path`, in order.
    pub fn to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: read, record and handle the request, answer, close.
fn connection(mut stream: TcpStream, s: &Shared) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let answer = {
        let mut served = s.served.lock().unwrap();
        served.0.push(request.clone());
        (served.1)(&request)
    };
    match answer {
        Answer::Reply(reply) => {
            let _ = write_reply(&mut stream, &reply);
        }
        Answer::Close => {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target, String::new()),
    };
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        body.resize(len.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Request {
        at: Instant::now(),
        wall: SystemTime::now(),
        method,
        path,
        query,
        headers,
        body,
    })
}

fn write_reply(stream: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (n, v) in &reply.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    stream.write_all(out.as_bytes())?;
    stream.flush()
}
