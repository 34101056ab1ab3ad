//! OAuth peers for tests: a running `gate auth login` whose printed sign-in URL the test
//! reads, the real OAuth server (`test-peers/oauth/server.mjs`, oidc-provider on Node) and a
//! minimal browser that signs in through its development pages.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Run, Sandbox, repo, require_tool};

/// A `gate auth login` in progress.
pub struct Login {
    child: Child,
    pub stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Login {
    pub fn start(s: &Sandbox, args: &[&str], stdin: Option<&str>) -> Login {
        let mut child = s
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gate runs");
        let mut input = child.stdin.take();
        if let Some(text) = stdin {
            let mut i = input.take().unwrap();
            i.write_all(text.as_bytes()).unwrap();
            drop(i);
        }
        let (tx, lines) = channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, all) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        });
        Login {
            child,
            stdin: input,
            lines,
            stderr,
            stdout: Some(stdout),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The sign-in URL gate printed on stderr (an indented line of its own).
    pub fn authorize_url(&self) -> url::Url {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(url) = line.strip_prefix("  http") {
                return url::Url::parse(&format!("http{url}")).unwrap();
            }
        }
        panic!(
            "gate printed no sign-in URL; stderr so far:\n{}",
            self.stderr.lock().unwrap()
        );
    }

    pub fn finish(mut self) -> Run {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gate did not finish: {}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().unwrap().join().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        Run {
            code: status.code().expect("exited"),
            stdout,
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The query of a URL as a map.
pub fn query(url: &url::Url) -> BTreeMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// BASE64URL(SHA-256(verifier)), the S256 code challenge.
pub fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// oidc-provider on 127.0.0.1 (`test-peers/oauth/server.mjs`). Killed on drop; it also exits
/// when its stdin closes or after five minutes.
pub struct OAuthServer {
    child: Child,
    pub issuer: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl OAuthServer {
    pub fn start() -> OAuthServer {
        require_tool("node");
        let dir = repo().join("test-peers/oauth");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the OAuth test server needs oidc-provider in `test-peers/oauth/node_modules`: run \
             `npm ci --prefix test-peers/oauth` (`.ci/run` does)"
        );
        let mut child = std::process::Command::new("node")
            .arg(dir.join("server.mjs"))
            .args(["--port", "0", "--lifetime", "300"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node starts");
        let (tx, rx) = channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (out, all) = (child.stdout.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    let _ = tx.send(issuer.to_owned());
                }
                all.lock().unwrap().push(line);
            }
        });
        let issuer = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the OAuth server did not start within 20 s");
        OAuthServer { child, issuer, log }
    }

    /// How many log lines are exactly `line` (e.g. `grant.success refresh_token`), once the
    /// log has caught up: it waits up to 5 s for `expected`, then a moment more for extras.
    pub fn count(&self, line: &str, expected: usize) -> usize {
        let now = || {
            self.log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| *l == line)
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while now() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        now()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for OAuthServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser for oidc-provider's development sign-in: follows redirects, keeps cookies, fills
/// in the login form (any user name, any password) and the consent form, and stops at the
/// redirect to `redirect_prefix`, which it visits (gate's listener). Returns that page.
pub fn sign_in_as(authorize: &url::Url, user: &str, redirect_prefix: &str) -> String {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut next: (url::Url, Option<Vec<(&str, String)>>) = (authorize.clone(), None);
    for _ in 0..20 {
        let (url, form) = next.clone();
        if url.as_str().starts_with(redirect_prefix) {
            let page = http.get(url).send().expect("gate's listener answers");
            assert!(
                page.status().is_success(),
                "gate's listener said {}",
                page.status()
            );
            return page.text().unwrap();
        }
        let jar = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = match &form {
            Some(fields) => http.post(url.clone()).form(fields),
            None => http.get(url.clone()),
        };
        let response = request.header("cookie", jar).send().unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() {
                    cookies.remove(k);
                } else {
                    cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        if response.status().is_redirection() {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            next = (url.join(&location).unwrap(), None);
            continue;
        }
        let status = response.status();
        let html = response.text().unwrap();
        assert!(status.is_success(), "{url}: {status}\n{html}");
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no form on {url}:\n{html}"));
        let action = url.join(action).unwrap();
        let fields = if html.contains("name=\"login\"") {
            vec![
                ("prompt", "login".to_owned()),
                ("login", user.to_owned()),
                ("password", "any-password".to_owned()),
            ]
        } else {
            vec![("prompt", "consent".to_owned())]
        };
        next = (action, Some(fields));
    }
    panic!("the sign-in did not reach the redirect within 20 steps");
}
