#![allow(dead_code)]

//! Hand-controlled fake Mastodon and X servers on 127.0.0.1 for `gate post` tests. They keep
//! state the way the real APIs document it (Mastodon answers a repeated `Idempotency-Key`
//! with the status it already made; X refuses a duplicate text with 403), record every
//! request, and inject faults on the create endpoint. Every connection gets one answer and is
//! closed; the server stops when dropped or after ten minutes, whichever comes first.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mastodon,
    X,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mastodon => "mastodon",
            Kind::X => "x",
        }
    }
}

/// What the server does with the next request to its create endpoint.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Read the request, then close the connection without creating anything or answering.
    DropBeforeCreate,
    /// Create the post, then close the connection without answering.
    DropAfterCreate,
    /// Answer with this status, headers and body; nothing is created.
    Status(u16, Vec<(String, String)>, String),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
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

    /// `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    pub fn form_values(&self, name: &str) -> Vec<String> {
        self.form()
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
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

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

#[derive(Debug, Clone)]
pub struct Post {
    pub id: String,
    pub text: String,
    pub media_ids: Vec<String>,
    pub key: Option<String>,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    posts: Vec<Post>,
    keys: HashMap<String, usize>,
    faults: VecDeque<Fault>,
    /// Media id → (alt text, polls left while "processing").
    media: HashMap<String, (Option<String>, u32)>,
    next: u64,
    /// Mastodon's public `GET /api/v2/instance`: status and body; none answers 404.
    instance: Option<(u16, String)>,
}

pub struct Server {
    pub kind: Kind,
    pub url: String,
    token: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const LIFETIME: Duration = Duration::from_secs(600);

impl Server {
    pub fn start(kind: Kind, token: &str) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            next: 100_000,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, url, token) =
                (state.clone(), stop.clone(), url.clone(), token.to_owned());
            std::thread::spawn(move || {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (state, url, token) = (state.clone(), url.clone(), token.clone());
                            std::thread::spawn(move || handle(kind, stream, &state, &url, &token));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Server {
            kind,
            url,
            token: token.to_owned(),
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// What Mastodon's `GET /api/v2/instance` answers from now on (it needs no token).
    pub fn instance(&self, status: u16, body: &str) {
        self.state.lock().unwrap().instance = Some((status, body.to_owned()));
    }

    /// Every request but the public `GET /api/v2/instance`: what touches the account.
    pub fn account_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| !(r.method == "GET" && r.path == "/api/v2/instance"))
            .collect()
    }

    pub fn posts(&self) -> Vec<Post> {
        self.state.lock().unwrap().posts.clone()
    }

    pub fn posts_with(&self, text: &str) -> Vec<Post> {
        self.posts()
            .into_iter()
            .filter(|p| p.text == text)
            .collect()
    }

    /// The requests to the endpoint that creates posts.
    pub fn creates(&self) -> Vec<Request> {
        let path = self.create_path();
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .collect()
    }

    pub fn create_path(&self) -> &'static str {
        match self.kind {
            Kind::Mastodon => "/api/v1/statuses",
            Kind::X => "/2/tweets",
        }
    }

    /// The URL gate should print for a post made here.
    pub fn post_url(&self, id: &str) -> String {
        match self.kind {
            Kind::Mastodon => format!("{}/@brand/{id}", self.url),
            Kind::X => format!("https://x.com/i/web/status/{id}"),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
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
        reader.read_line(&mut h).ok()?;
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
        method,
        path,
        query,
        headers,
        body,
    })
}

fn respond(mut stream: TcpStream, status: u16, headers: &[(String, String)], body: &str) {
    let mut out = format!(
        "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn handle(kind: Kind, mut stream: TcpStream, state: &Mutex<State>, base: &str, token: &str) {
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    let mut s = state.lock().unwrap();
    s.requests.push(request.clone());
    if kind == Kind::Mastodon && request.method == "GET" && request.path == "/api/v2/instance" {
        let (status, body) = s
            .instance
            .clone()
            .unwrap_or_else(|| (404, r#"{"error":"Not found"}"#.to_owned()));
        drop(s);
        return respond(stream, status, &[], &body);
    }
    if request.header("authorization") != Some(&format!("Bearer {token}")) {
        drop(s);
        return respond(
            stream,
            401,
            &[],
            r#"{"error":"The access token is invalid"}"#,
        );
    }
    let (method, path) = (request.method.as_str(), request.path.as_str());
    let creating = match kind {
        Kind::Mastodon => method == "POST" && path == "/api/v1/statuses",
        Kind::X => method == "POST" && path == "/2/tweets",
    };
    let fault = if creating { s.faults.pop_front() } else { None };
    if let Some(Fault::Status(code, headers, body)) = &fault {
        drop(s);
        return respond(stream, *code, headers, body);
    }
    if let Some(Fault::DropBeforeCreate) = fault {
        drop(s);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let (status, body) = match kind {
        Kind::Mastodon => mastodon(&mut s, &request, base),
        Kind::X => x(&mut s, &request),
    };
    drop(s);
    if let Some(Fault::DropAfterCreate) = fault {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    respond(stream, status, &[], &body.to_string());
}

fn new_id(s: &mut State) -> String {
    s.next += 1;
    s.next.to_string()
}

fn status_json(p: &Post, base: &str) -> Value {
    json!({
        "id": p.id,
        "url": format!("{base}/@brand/{}", p.id),
        "uri": format!("{base}/users/brand/statuses/{}", p.id),
        "content": format!("<p>{}</p>", escape(&p.text).replace('\n', "<br />")),
        "media_attachments": p.media_ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
    })
}

fn mastodon(s: &mut State, r: &Request, base: &str) -> (u16, Value) {
    let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v2", "media"]) => {
            if r.multipart_field("file").is_none() {
                return (
                    422,
                    json!({"error": "Validation failed: File can't be blank"}),
                );
            }
            let id = new_id(s);
            s.media
                .insert(id.clone(), (r.multipart_field("description"), 1));
            (202, json!({"id": id, "type": "image", "url": null}))
        }
        ("GET", ["api", "v1", "media", id]) => match s.media.get_mut(*id) {
            Some((_, polls)) if *polls > 0 => {
                *polls -= 1;
                (206, json!({"id": id, "url": null}))
            }
            Some(_) => (
                200,
                json!({"id": id, "url": format!("{base}/media/{id}.png")}),
            ),
            None => (404, json!({"error": "Record not found"})),
        },
        ("POST", ["api", "v1", "statuses"]) => {
            let Some(key) = r.header("idempotency-key").map(str::to_owned) else {
                return (
                    400,
                    json!({"error": "this fake insists on an Idempotency-Key"}),
                );
            };
            if let Some(&i) = s.keys.get(&key) {
                return (200, status_json(&s.posts[i], base));
            }
            let text = r.form_values("status").pop().unwrap_or_default();
            if text.is_empty() {
                return (
                    422,
                    json!({"error": "Validation failed: Text can't be blank"}),
                );
            }
            let media_ids = r.form_values("media_ids[]");
            if media_ids
                .iter()
                .any(|m| s.media.get(m).is_none_or(|(_, polls)| *polls > 0))
            {
                return (422, json!({"error": "Validation failed: media not ready"}));
            }
            let id = new_id(s);
            let post = Post {
                id,
                text,
                media_ids,
                key: Some(key.clone()),
            };
            s.posts.push(post.clone());
            let i = s.posts.len() - 1;
            s.keys.insert(key, i);
            (200, status_json(&post, base))
        }
        ("GET", ["api", "v1", "accounts", "verify_credentials"]) => (
            200,
            json!({"id": "7", "username": "brand", "acct": "brand"}),
        ),
        ("GET", ["api", "v1", "accounts", "7", "statuses"]) => {
            let list: Vec<Value> = s
                .posts
                .iter()
                .rev()
                .take(40)
                .map(|p| status_json(p, base))
                .collect();
            (200, Value::Array(list))
        }
        ("DELETE", ["api", "v1", "statuses", id]) => match s.posts.iter().position(|p| p.id == *id)
        {
            Some(i) => {
                let p = s.posts.remove(i);
                s.keys.retain(|_, v| *v != i);
                (200, status_json(&p, base))
            }
            None => (404, json!({"error": "Record not found"})),
        },
        _ => (404, json!({"error": "Not found"})),
    }
}

fn x(s: &mut State, r: &Request) -> (u16, Value) {
    let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["2", "media", "upload"]) => {
            if r.multipart_field("media").is_none() {
                return (
                    400,
                    json!({"title": "Invalid Request", "detail": "media is required"}),
                );
            }
            let id = new_id(s);
            s.media.insert(id.clone(), (None, 0));
            (
                200,
                json!({"data": {"id": id, "media_key": format!("3_{id}")}}),
            )
        }
        ("POST", ["2", "media", "metadata"]) => {
            let body = r.json();
            let id = body["id"].as_str().unwrap_or_default().to_owned();
            let alt = body
                .pointer("/metadata/alt_text/text")
                .and_then(Value::as_str)
                .map(str::to_owned);
            match s.media.get_mut(&id) {
                Some(m) => {
                    m.0 = alt;
                    (
                        200,
                        json!({"data": {"id": id, "associated_metadata": body["metadata"]}}),
                    )
                }
                None => (
                    400,
                    json!({"title": "Invalid Request", "detail": "unknown media"}),
                ),
            }
        }
        ("POST", ["2", "tweets"]) => {
            let body = r.json();
            let Some(text) = body["text"].as_str().map(str::to_owned) else {
                return (
                    400,
                    json!({"title": "Invalid Request", "detail": "text is required"}),
                );
            };
            if s.posts.iter().any(|p| p.text == text) {
                return (
                    403,
                    json!({"detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank", "title": "Forbidden", "status": 403}),
                );
            }
            let media_ids: Vec<String> = body
                .pointer("/media/media_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let id = new_id(s);
            s.posts.push(Post {
                id: id.clone(),
                text: text.clone(),
                media_ids,
                key: None,
            });
            (
                201,
                json!({"data": {"id": id, "text": text, "edit_history_tweet_ids": [id]}}),
            )
        }
        ("GET", ["2", "users", "me"]) => (
            200,
            json!({"data": {"id": "42", "name": "Brand", "username": "brand"}}),
        ),
        ("GET", ["2", "users", "42", "tweets"]) => {
            let list: Vec<Value> = s
                .posts
                .iter()
                .rev()
                .take(20)
                .map(|p| json!({"id": p.id, "text": p.text}))
                .collect();
            (
                200,
                json!({"data": list, "meta": {"result_count": s.posts.len().min(20)}}),
            )
        }
        ("DELETE", ["2", "tweets", id]) => match s.posts.iter().position(|p| p.id == *id) {
            Some(i) => {
                s.posts.remove(i);
                (200, json!({"data": {"deleted": true}}))
            }
            None => (404, json!({"title": "Not Found Error"})),
        },
        _ => (404, json!({"title": "Not Found Error"})),
    }
}

/// The alt text the server holds for a media id.
impl Server {
    pub fn media_alt(&self, id: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .media
            .get(id)
            .and_then(|(alt, _)| alt.clone())
    }
}
