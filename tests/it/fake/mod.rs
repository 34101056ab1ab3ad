#![allow(dead_code)]

//! Hand-controlled fake Mastodon and X servers on 127.0.0.1 for `gate post` tests. They keep
//! state and answer the way the public APIs document it, not the way gate expects: Mastodon
//! renders `content` as HTML (links in spans, a remote mention as `@<span>user</span>`), serves
//! the plain text at `/api/v1/statuses/:id/source`, honours an `Idempotency-Key` for one hour
//! of its own clock ([`Server::advance`] moves it) and pages the account's statuses with
//! `max_id` and a `Link` header; X stores links as `t.co` (the original in
//! `entities.urls[].expanded_url`), adds a trailing `t.co` link for media, escapes `& < >`,
//! refuses a duplicate text with 403 and pages the timeline with `meta.next_token`. Tests seed
//! older posts with the same words ([`Server::seed`]). Faults are injected on the create
//! endpoint, on the timeline and on a delete. Both are handlers on the one HTTP fake
//! (`common::fake_http`), which records every request, closes each connection after one
//! answer (or without one, for a dropped connection) and stops when dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

pub use crate::common::fake_http::Request;
use crate::common::fake_http::{self, FakeServer, Reply};

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
pub struct Post {
    pub id: String,
    /// The text exactly as it was sent (or seeded).
    pub text: String,
    pub media_ids: Vec<String>,
    pub key: Option<String>,
    /// On the server's clock (which a test may move with [`Server::advance`]).
    pub created_at: DateTime<Utc>,
    pub reply_to: Option<String>,
    pub visibility: String,
    /// X: the text as X stores and returns it (links as `t.co`, a trailing media link,
    /// `& < >` escaped) and its `entities.urls`. Mastodon: unused.
    pub stored: String,
    pub urls: Vec<Value>,
}

#[derive(Default)]
struct State {
    posts: Vec<Post>,
    /// Mastodon: `Idempotency-Key` → (status id, when the server first saw it).
    keys: HashMap<String, (String, DateTime<Utc>)>,
    faults: VecDeque<Fault>,
    /// Faults for the next requests to the account's timeline (`GET .../statuses`, `GET
    /// .../tweets`).
    lookup_faults: VecDeque<Fault>,
    /// Faults for the delete of one post, by its id, each used once.
    delete_faults: Vec<(String, Fault)>,
    /// Media id → (alt text, polls left while "processing").
    media: HashMap<String, (Option<String>, u32)>,
    next: u64,
    /// Feeds post ids and `t.co` paths.
    counter: u64,
    /// How far the server's clock runs ahead of the real one.
    offset: chrono::Duration,
    /// Mastodon's public `GET /api/v2/instance`: status and body; none answers 404.
    instance: Option<(u16, String)>,
}

impl State {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

pub struct Server {
    pub kind: Kind,
    pub url: String,
    token: String,
    state: Arc<Mutex<State>>,
    http: FakeServer,
}

impl Server {
    pub fn start(kind: Kind, token: &str) -> Server {
        let state = Arc::new(Mutex::new(State {
            next: 100_000,
            ..State::default()
        }));
        let http = {
            let (state, token) = (state.clone(), token.to_owned());
            FakeServer::serve(move |url| {
                let base = url.to_owned();
                move |r: &Request| answer(kind, r, &state, &base, &token)
            })
        };
        Server {
            kind,
            url: http.url.clone(),
            token: token.to_owned(),
            state,
            http,
        }
    }

    /// The next request that deletes the post `id` gets `fault` instead.
    pub fn fault_delete(&self, id: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .delete_faults
            .push((id.to_owned(), fault));
    }

    pub fn fault(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// A fault for the next request to the account's timeline (the lookup's listing).
    pub fn fault_lookup(&self, fault: Fault) {
        self.state.lock().unwrap().lookup_faults.push_back(fault);
    }

    /// Moves the server's clock forward: Mastodon forgets an `Idempotency-Key` an hour after
    /// it first saw it, and new posts carry the moved time.
    pub fn advance(&self, by: Duration) {
        self.state.lock().unwrap().offset += chrono::Duration::from_std(by).unwrap();
    }

    /// The server's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.state.lock().unwrap().now()
    }

    /// Puts a post on the account's timeline made at `created_at` (not through the API:
    /// no duplicate check, no key), as an older post with the same words would be.
    pub fn seed(&self, text: &str, created_at: DateTime<Utc>) -> String {
        self.seed_post(text, None, created_at)
    }

    /// A seeded reply to `parent`.
    pub fn seed_reply(&self, text: &str, parent: &str, created_at: DateTime<Utc>) -> String {
        self.seed_post(text, Some(parent), created_at)
    }

    fn seed_post(&self, text: &str, parent: Option<&str>, created_at: DateTime<Utc>) -> String {
        let mut s = self.state.lock().unwrap();
        let post = make_post(
            &mut s,
            self.kind,
            text,
            Vec::new(),
            parent.map(str::to_owned),
            None,
            created_at,
        );
        let id = post.id.clone();
        s.posts.push(post);
        id
    }

    pub fn requests(&self) -> Vec<Request> {
        self.http.requests()
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

type Answer = (u16, Vec<(String, String)>, Value);

fn reply(status: u16, headers: &[(String, String)], body: &str) -> fake_http::Answer {
    fake_http::Answer::Reply(Reply {
        status,
        body: body.to_owned(),
        headers: headers.to_vec(),
    })
}

/// One request, as the network would take it: the public instance document, the token
/// check, the fault queued for it, then the API.
fn answer(
    kind: Kind,
    request: &Request,
    state: &Mutex<State>,
    base: &str,
    token: &str,
) -> fake_http::Answer {
    let mut s = state.lock().unwrap();
    if kind == Kind::Mastodon && request.method == "GET" && request.path == "/api/v2/instance" {
        let (status, body) = s
            .instance
            .clone()
            .unwrap_or_else(|| (404, r#"{"error":"Not found"}"#.to_owned()));
        return reply(status, &[], &body);
    }
    if request.header("authorization") != Some(&format!("Bearer {token}")) {
        return reply(401, &[], r#"{"error":"The access token is invalid"}"#);
    }
    let (method, path) = (request.method.as_str(), request.path.as_str());
    let creating = match kind {
        Kind::Mastodon => method == "POST" && path == "/api/v1/statuses",
        Kind::X => method == "POST" && path == "/2/tweets",
    };
    let listing = method == "GET"
        && match kind {
            Kind::Mastodon => path.starts_with("/api/v1/accounts/") && path.ends_with("/statuses"),
            Kind::X => path.starts_with("/2/users/") && path.ends_with("/tweets"),
        };
    let fault = if creating {
        s.faults.pop_front()
    } else if listing {
        s.lookup_faults.pop_front()
    } else if method == "DELETE" {
        let id = path.rsplit('/').next().unwrap_or_default();
        s.delete_faults
            .iter()
            .position(|(of, _)| of == id)
            .map(|i| s.delete_faults.remove(i).1)
    } else {
        None
    };
    match &fault {
        Some(Fault::Status(code, headers, body)) => return reply(*code, headers, body),
        Some(Fault::DropBeforeCreate) => return fake_http::Answer::Close,
        _ => {}
    }
    let (status, headers, body) = match kind {
        Kind::Mastodon => mastodon(&mut s, request, base),
        Kind::X => x(&mut s, request),
    };
    if let Some(Fault::DropAfterCreate) = fault {
        return fake_http::Answer::Close;
    }
    reply(status, &headers, &body.to_string())
}

fn new_id(s: &mut State) -> String {
    s.next += 1;
    s.next.to_string()
}

/// A post id that sorts as its time does, as Mastodon's and X's snowflake ids do.
fn post_id(s: &mut State, at: DateTime<Utc>) -> String {
    s.counter += 1;
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    ((ms << 16) | (s.counter & 0xffff)).to_string()
}

/// Ten letters and digits, different on every call, as a `t.co` path or a `pic.x.com` one.
fn short_code(s: &mut State) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    s.counter += 1;
    let mut n = s
        .counter
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        ^ 0x5851_F42D_4C95_7F2D;
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % 62) as usize] as char;
            n /= 62;
            n ^= 0x2545_F491_4F6C_DD1D;
            c
        })
        .collect()
}

fn make_post(
    s: &mut State,
    kind: Kind,
    text: &str,
    media_ids: Vec<String>,
    reply_to: Option<String>,
    key: Option<String>,
    created_at: DateTime<Utc>,
) -> Post {
    let id = post_id(s, created_at);
    let (stored, urls) = match kind {
        Kind::X => x_render(s, text, &id, &media_ids),
        Kind::Mastodon => (String::new(), Vec::new()),
    };
    Post {
        id,
        text: text.to_owned(),
        media_ids,
        key,
        created_at,
        reply_to,
        visibility: "public".to_owned(),
        stored,
        urls,
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A text split into plain runs and the links, mentions and tags the networks pick out of it.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Plain(&'a str),
    Link(&'a str),
    /// `@user@domain`
    Mention(&'a str, &'a str),
    Tag(&'a str),
}

/// A link starts a word with `http://` or `https://` and runs to the next space, less
/// trailing punctuation (and a closing parenthesis it did not open).
fn link_len(rest: &str) -> Option<usize> {
    if !(rest.starts_with("https://") || rest.starts_with("http://")) {
        return None;
    }
    let mut end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    loop {
        let word = &rest[..end];
        let last = word.chars().last()?;
        let strip = matches!(last, '.' | ',' | ':' | ';' | '!' | '?' | '"' | '\'')
            || (last == ')' && word.matches('(').count() < word.matches(')').count());
        if !strip {
            break;
        }
        end -= last.len_utf8();
    }
    (end > rest.find("://")? + 3).then_some(end)
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `@user@domain.tld` at the start of `rest`: (length, user, domain).
fn mention_len(rest: &str) -> Option<(usize, &str, &str)> {
    let body = rest.strip_prefix('@')?;
    let user_len = body.find(|c: char| !is_name(c)).unwrap_or(body.len());
    let after = body[user_len..].strip_prefix('@')?;
    let mut domain_len = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or(after.len());
    while after[..domain_len].ends_with('.') {
        domain_len -= 1;
    }
    let domain = &after[..domain_len];
    (user_len > 0 && domain.contains('.'))
        .then(|| (1 + user_len + 1 + domain_len, &body[..user_len], domain))
}

fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut plain_start = 0;
    let mut i = 0;
    let mut prev: Option<char> = None;
    while i < text.len() {
        let rest = &text[i..];
        let at_word = prev.is_none_or(|c| c.is_whitespace() || c == '(');
        let found = if !at_word {
            None
        } else if let Some(n) = link_len(rest) {
            Some((n, Piece::Link(&rest[..n])))
        } else if let Some((n, user, domain)) = mention_len(rest) {
            Some((n, Piece::Mention(user, domain)))
        } else if let Some(tag) = rest.strip_prefix('#') {
            let n = tag.find(|c: char| !is_name(c)).unwrap_or(tag.len());
            (n > 0).then(|| (n + 1, Piece::Tag(&tag[..n])))
        } else {
            None
        };
        match found {
            Some((n, piece)) => {
                if plain_start < i {
                    out.push(Piece::Plain(&text[plain_start..i]));
                }
                out.push(piece);
                i += n;
                plain_start = i;
                prev = text[..i].chars().last();
            }
            None => {
                let c = rest.chars().next().unwrap();
                prev = Some(c);
                i += c.len_utf8();
            }
        }
    }
    if plain_start < text.len() {
        out.push(Piece::Plain(&text[plain_start..]));
    }
    out
}

/// X keeps `&`, `<` and `>` as HTML entities in a post's text.
fn x_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What X stores for a post: each link as a fresh `https://t.co/…` with its entity (offsets
/// in characters of the stored text), `& < >` escaped, and with media one more trailing
/// `t.co` link whose entity names the media.
fn x_render(s: &mut State, text: &str, id: &str, media_ids: &[String]) -> (String, Vec<Value>) {
    let mut stored = String::new();
    let mut urls = Vec::new();
    for piece in pieces(text) {
        match piece {
            Piece::Link(link) => {
                let tco = format!("https://t.co/{}", short_code(s));
                let start = stored.chars().count();
                stored.push_str(&tco);
                let shown = link.split_once("://").map_or(link, |(_, r)| r);
                let shown = shown.strip_prefix("www.").unwrap_or(shown);
                let display = if shown.chars().count() > 26 {
                    format!("{}…", shown.chars().take(26).collect::<String>())
                } else {
                    shown.to_owned()
                };
                urls.push(json!({
                    "start": start,
                    "end": start + tco.chars().count(),
                    "url": tco,
                    "expanded_url": link,
                    "display_url": display,
                }));
            }
            Piece::Plain(t) => stored.push_str(&x_escape(t)),
            Piece::Mention(user, domain) => {
                stored.push_str(&x_escape(&format!("@{user}@{domain}")))
            }
            Piece::Tag(t) => stored.push_str(&x_escape(&format!("#{t}"))),
        }
    }
    if let Some(first) = media_ids.first() {
        if !stored.is_empty() {
            stored.push(' ');
        }
        let tco = format!("https://t.co/{}", short_code(s));
        let start = stored.chars().count();
        stored.push_str(&tco);
        urls.push(json!({
            "start": start,
            "end": start + tco.chars().count(),
            "url": tco,
            "expanded_url": format!("https://x.com/brand/status/{id}/photo/1"),
            "display_url": format!("pic.x.com/{}", short_code(s)),
            "media_key": format!("3_{first}"),
        }));
    }
    (stored, urls)
}

/// HTML escaping as Rails' `h` does it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A status's `content` as Mastodon renders plain text: escaped, links, remote mentions and
/// hashtags marked up, paragraphs on blank lines, `<br />` on single newlines.
pub fn mastodon_html(text: &str, base: &str) -> String {
    let mut html = String::new();
    for piece in pieces(text) {
        match piece {
            Piece::Plain(t) => html.push_str(&escape(t)),
            Piece::Link(link) => {
                let (scheme, rest) = link.split_once("://").unwrap();
                let (prefix, shown) = match rest.strip_prefix("www.") {
                    Some(r) => (format!("{scheme}://www."), r),
                    None => (format!("{scheme}://"), rest),
                };
                let spans = if shown.chars().count() > 30 {
                    let head: String = shown.chars().take(30).collect();
                    let tail: String = shown.chars().skip(30).collect();
                    format!(
                        "<span class=\"ellipsis\">{}</span><span class=\"invisible\">{}</span>",
                        escape(&head),
                        escape(&tail)
                    )
                } else {
                    format!(
                        "<span class=\"\">{}</span><span class=\"invisible\"></span>",
                        escape(shown)
                    )
                };
                html.push_str(&format!(
                    "<a href=\"{}\" rel=\"nofollow noopener\" target=\"_blank\"><span class=\"invisible\">{}</span>{spans}</a>",
                    escape(link),
                    escape(&prefix)
                ));
            }
            Piece::Mention(user, domain) => html.push_str(&format!(
                "<span class=\"h-card\" translate=\"no\"><a href=\"https://{domain}/@{user}\" class=\"u-url mention\">@<span>{user}</span></a></span>"
            )),
            Piece::Tag(tag) => html.push_str(&format!(
                "<a href=\"{base}/tags/{}\" class=\"mention hashtag\" rel=\"tag\">#<span>{tag}</span></a>",
                tag.to_lowercase()
            )),
        }
    }
    let html = html.replace("\r\n", "\n");
    let paragraphs: Vec<String> = html
        .trim()
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim_matches('\n').replace('\n', "<br />")))
        .collect();
    paragraphs.concat()
}

fn status_json(s: &State, p: &Post, base: &str) -> Value {
    let mentions: Vec<Value> = pieces(&p.text)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Mention(user, domain) => Some(json!({
                "id": "9",
                "username": user,
                "acct": format!("{user}@{domain}"),
                "url": format!("https://{domain}/@{user}"),
            })),
            _ => None,
        })
        .collect();
    let parent_account = p.reply_to.as_ref().map(|parent| {
        if s.posts.iter().any(|q| q.id == *parent) {
            "7"
        } else {
            "8"
        }
    });
    json!({
        "id": p.id,
        "created_at": timestamp(p.created_at),
        "in_reply_to_id": p.reply_to,
        "in_reply_to_account_id": parent_account,
        "sensitive": false,
        "spoiler_text": "",
        "visibility": p.visibility,
        "language": null,
        "url": format!("{base}/@brand/{}", p.id),
        "uri": format!("{base}/users/brand/statuses/{}", p.id),
        "content": mastodon_html(&p.text, base),
        "reblog": null,
        "account": {"id": "7", "username": "brand", "acct": "brand"},
        "media_attachments": p.media_ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        "mentions": mentions,
        "edited_at": null,
    })
}

fn param(r: &Request, name: &str) -> Option<String> {
    r.param(name)
}

fn id_number(id: &str) -> u128 {
    id.parse().unwrap_or(0)
}

/// Mastodon's `GET /api/v1/accounts/:id/statuses`: newest first; `limit` (default 20, at most
/// 40), `max_id`, `since_id`, `min_id`, `exclude_replies` (keeps replies to the account
/// itself), `exclude_reblogs`; a `Link` header with `next` when the page is full and `prev`.
fn mastodon_timeline(s: &State, r: &Request, base: &str) -> Answer {
    let truthy = |name: &str| param(r, name).is_some_and(|v| v == "true" || v == "1");
    let limit = param(r, "limit")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20)
        .min(40);
    let max_id = param(r, "max_id").map(|v| id_number(&v));
    let since_id = param(r, "since_id").map(|v| id_number(&v));
    let min_id = param(r, "min_id").map(|v| id_number(&v));
    let exclude_replies = truthy("exclude_replies");
    let mut list: Vec<&Post> = s
        .posts
        .iter()
        .filter(|p| {
            let n = id_number(&p.id);
            max_id.is_none_or(|m| n < m)
                && since_id.is_none_or(|m| n > m)
                && min_id.is_none_or(|m| n > m)
                && !(exclude_replies
                    && p.reply_to
                        .as_ref()
                        .is_some_and(|parent| !s.posts.iter().any(|q| q.id == *parent)))
        })
        .collect();
    // Reblogs: this fake's account makes none, so `exclude_reblogs` changes nothing.
    list.sort_by_key(|p| std::cmp::Reverse(id_number(&p.id)));
    let page: Vec<&Post> = if min_id.is_some() {
        // The statuses right after `min_id`, still shown newest first.
        let skip = list.len().saturating_sub(limit);
        list[skip..].to_vec()
    } else {
        list.into_iter().take(limit).collect()
    };
    let mut headers = Vec::new();
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        let mut kept = format!("limit={limit}");
        for name in ["exclude_replies", "exclude_reblogs"] {
            if let Some(v) = param(r, name) {
                kept.push_str(&format!("&{name}={v}"));
            }
        }
        let path = format!("{base}{}", r.path);
        let mut links = Vec::new();
        if page.len() == limit {
            links.push(format!("<{path}?{kept}&max_id={}>; rel=\"next\"", last.id));
        }
        links.push(format!("<{path}?{kept}&min_id={}>; rel=\"prev\"", first.id));
        headers.push(("Link".to_owned(), links.join(", ")));
    }
    let list = page.iter().map(|p| status_json(s, p, base)).collect();
    (200, headers, Value::Array(list))
}

const KEY_KEPT: chrono::Duration = chrono::Duration::hours(1);

fn mastodon(s: &mut State, r: &Request, base: &str) -> Answer {
    let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let plain = |status: u16, body: Value| (status, Vec::new(), body);
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v2", "media"]) => {
            if r.multipart_field("file").is_none() {
                return plain(
                    422,
                    json!({"error": "Validation failed: File can't be blank"}),
                );
            }
            let id = new_id(s);
            s.media
                .insert(id.clone(), (r.multipart_field("description"), 1));
            plain(202, json!({"id": id, "type": "image", "url": null}))
        }
        ("GET", ["api", "v1", "media", id]) => match s.media.get_mut(*id) {
            Some((_, polls)) if *polls > 0 => {
                *polls -= 1;
                plain(206, json!({"id": id, "url": null}))
            }
            Some(_) => plain(
                200,
                json!({"id": id, "url": format!("{base}/media/{id}.png")}),
            ),
            None => plain(404, json!({"error": "Record not found"})),
        },
        ("POST", ["api", "v1", "statuses"]) => {
            let Some(key) = r.header("idempotency-key").map(str::to_owned) else {
                return plain(
                    400,
                    json!({"error": "this fake insists on an Idempotency-Key"}),
                );
            };
            let now = s.now();
            // The key is kept an hour from when the server first saw it.
            if let Some((id, at)) = s.keys.get(&key).cloned() {
                if now - at < KEY_KEPT
                    && let Some(p) = s.posts.iter().find(|p| p.id == id)
                {
                    return plain(200, status_json(s, p, base));
                }
                s.keys.remove(&key);
            }
            let text = r.form_values("status").pop().unwrap_or_default();
            if text.is_empty() {
                return plain(
                    422,
                    json!({"error": "Validation failed: Text can't be blank"}),
                );
            }
            let media_ids = r.form_values("media_ids[]");
            if media_ids
                .iter()
                .any(|m| s.media.get(m).is_none_or(|(_, polls)| *polls > 0))
            {
                return plain(422, json!({"error": "Validation failed: media not ready"}));
            }
            let reply_to = r.form_values("in_reply_to_id").pop();
            let mut post = make_post(
                s,
                Kind::Mastodon,
                &text,
                media_ids,
                reply_to,
                Some(key.clone()),
                now,
            );
            if let Some(v) = r.form_values("visibility").pop() {
                post.visibility = v;
            }
            s.keys.insert(key, (post.id.clone(), now));
            s.posts.push(post.clone());
            plain(200, status_json(s, &post, base))
        }
        ("GET", ["api", "v1", "accounts", "verify_credentials"]) => plain(
            200,
            json!({"id": "7", "username": "brand", "acct": "brand"}),
        ),
        ("GET", ["api", "v1", "accounts", "7", "statuses"]) => mastodon_timeline(s, r, base),
        ("GET", ["api", "v1", "statuses", id]) => match s.posts.iter().find(|p| p.id == *id) {
            Some(p) => plain(200, status_json(s, p, base)),
            None => plain(404, json!({"error": "Record not found"})),
        },
        ("GET", ["api", "v1", "statuses", id, "source"]) => {
            match s.posts.iter().find(|p| p.id == *id) {
                Some(p) => plain(200, json!({"id": p.id, "text": p.text, "spoiler_text": ""})),
                None => plain(404, json!({"error": "Record not found"})),
            }
        }
        ("DELETE", ["api", "v1", "statuses", id]) => {
            match s.posts.iter().position(|p| p.id == *id) {
                Some(i) => {
                    let p = s.posts.remove(i);
                    s.keys.retain(|_, (status, _)| *status != p.id);
                    plain(200, status_json(s, &p, base))
                }
                None => plain(404, json!({"error": "Record not found"})),
            }
        }
        _ => plain(404, json!({"error": "Not found"})),
    }
}

fn invalid(detail: &str) -> Answer {
    (
        400,
        Vec::new(),
        json!({
            "errors": [{"message": detail}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }),
    )
}

/// A post as `GET /2/users/:id/tweets` shows it: `id`, `text` and `edit_history_tweet_ids`,
/// and only the fields asked for in `tweet.fields`.
fn tweet_json(p: &Post, fields: &[String]) -> Value {
    let asked = |f: &str| fields.iter().any(|x| x == f);
    let mut t = json!({"id": p.id, "text": p.stored, "edit_history_tweet_ids": [p.id]});
    if asked("created_at") {
        t["created_at"] = json!(timestamp(p.created_at));
    }
    if asked("entities") && !p.urls.is_empty() {
        t["entities"] = json!({"urls": p.urls});
    }
    if asked("referenced_tweets")
        && let Some(parent) = &p.reply_to
    {
        t["referenced_tweets"] = json!([{"type": "replied_to", "id": parent}]);
    }
    if asked("attachments") && !p.media_ids.is_empty() {
        t["attachments"] =
            json!({"media_keys": p.media_ids.iter().map(|m| format!("3_{m}")).collect::<Vec<_>>()});
    }
    t
}

/// X's `GET /2/users/:id/tweets`: newest first, `max_results` 5–100 (default 10),
/// `pagination_token` from `meta.next_token`, `start_time` (inclusive), `exclude` of
/// `replies` and `retweets`, `tweet.fields`.
fn x_timeline(s: &State, r: &Request) -> Answer {
    let max = match param(r, "max_results") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (5..=100).contains(&n) => n,
            _ => {
                return invalid(&format!(
                    "The `max_results` query parameter value [{v}] is not between 5 and 100"
                ));
            }
        },
    };
    let mut exclude_replies = false;
    for e in param(r, "exclude")
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.is_empty())
    {
        match e {
            "replies" => exclude_replies = true,
            "retweets" => {} // this fake's account makes none
            other => {
                return invalid(&format!(
                    "The `exclude` query parameter value [{other}] is not one of [retweets,replies]"
                ));
            }
        }
    }
    let start = match param(r, "start_time") {
        None => None,
        Some(v) => match DateTime::parse_from_rfc3339(&v) {
            Ok(t) => Some(t.to_utc()),
            Err(_) => {
                return invalid(&format!(
                    "Invalid 'start_time':'{v}'. 'start_time' must be a valid RFC 3339 date"
                ));
            }
        },
    };
    let offset = match param(r, "pagination_token") {
        None => 0,
        Some(v) => match v
            .strip_prefix("7140dibdnow9c7btw4")
            .and_then(|n| n.parse().ok())
        {
            Some(n) => n,
            None => {
                return invalid(&format!(
                    "The `pagination_token` query parameter value [{v}] is not valid"
                ));
            }
        },
    };
    let fields: Vec<String> = param(r, "tweet.fields")
        .unwrap_or_default()
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    let mut list: Vec<&Post> = s
        .posts
        .iter()
        .filter(|p| start.is_none_or(|t| p.created_at >= t))
        .filter(|p| !(exclude_replies && p.reply_to.is_some()))
        .collect();
    list.sort_by_key(|p| std::cmp::Reverse(id_number(&p.id)));
    let page: Vec<&Post> = list.iter().skip(offset).take(max).copied().collect();
    let mut meta = json!({"result_count": page.len()});
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        meta["newest_id"] = json!(first.id);
        meta["oldest_id"] = json!(last.id);
    }
    if offset + page.len() < list.len() {
        meta["next_token"] = json!(format!("7140dibdnow9c7btw4{}", offset + page.len()));
    }
    let mut body = json!({"meta": meta});
    if !page.is_empty() {
        body["data"] = page.iter().map(|p| tweet_json(p, &fields)).collect();
    }
    (200, Vec::new(), body)
}

fn x(s: &mut State, r: &Request) -> Answer {
    let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let plain = |status: u16, body: Value| (status, Vec::new(), body);
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["2", "media", "upload"]) => {
            if r.multipart_field("media").is_none() {
                return plain(
                    400,
                    json!({"title": "Invalid Request", "detail": "media is required"}),
                );
            }
            let id = new_id(s);
            s.media.insert(id.clone(), (None, 0));
            plain(
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
                    plain(
                        200,
                        json!({"data": {"id": id, "associated_metadata": body["metadata"]}}),
                    )
                }
                None => plain(
                    400,
                    json!({"title": "Invalid Request", "detail": "unknown media"}),
                ),
            }
        }
        ("POST", ["2", "tweets"]) => {
            let body = r.json();
            let Some(text) = body["text"].as_str().map(str::to_owned) else {
                return plain(
                    400,
                    json!({"title": "Invalid Request", "detail": "text is required"}),
                );
            };
            if s.posts.iter().any(|p| p.text == text) {
                return plain(
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
            let reply_to = body
                .pointer("/reply/in_reply_to_tweet_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let now = s.now();
            let post = make_post(s, Kind::X, &text, media_ids, reply_to, None, now);
            s.posts.push(post.clone());
            plain(
                201,
                json!({"data": {"id": post.id, "text": post.stored, "edit_history_tweet_ids": [post.id]}}),
            )
        }
        ("GET", ["2", "users", "me"]) => plain(
            200,
            json!({"data": {"id": "42", "name": "Brand", "username": "brand"}}),
        ),
        ("GET", ["2", "users", "42", "tweets"]) => x_timeline(s, r),
        ("DELETE", ["2", "tweets", id]) => match s.posts.iter().position(|p| p.id == *id) {
            Some(i) => {
                s.posts.remove(i);
                plain(200, json!({"data": {"deleted": true}}))
            }
            None => plain(404, json!({"title": "Not Found Error"})),
        },
        _ => plain(404, json!({"title": "Not Found Error"})),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mastodon_renders_links_and_remote_mentions_as_it_does() {
        let html = mastodon_html(
            "Hi @alice@other.example, see https://example.com/x.\n\nBye & <3",
            "https://social.example",
        );
        assert_eq!(
            html,
            "<p>Hi <span class=\"h-card\" translate=\"no\"><a href=\"https://other.example/@alice\" class=\"u-url mention\">@<span>alice</span></a></span>, see <a href=\"https://example.com/x\" rel=\"nofollow noopener\" target=\"_blank\"><span class=\"invisible\">https://</span><span class=\"\">example.com/x</span><span class=\"invisible\"></span></a>.</p><p>Bye &amp; &lt;3</p>"
        );
    }
}
