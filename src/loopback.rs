//! The one-shot listener that receives an OAuth redirect on 127.0.0.1: it answers requests
//! until one reaches `/callback`, checks its `state`, answers the browser with a short page
//! and hands back the code. It binds loopback only and gives up after a time limit.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, io_reason};

/// What the redirect brought: the code, and the issuer that sent it (RFC 9207) if named.
#[derive(Debug)]
pub struct Callback {
    pub code: SecretString,
    pub iss: Option<String>,
}

pub struct Listener {
    listener: TcpListener,
    pub port: u16,
}

impl Listener {
    /// Listens on `127.0.0.1:port` (0: any free port).
    pub fn bind(port: u16) -> Result<Listener, Error> {
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            Error::other(format!(
                "cannot listen for the sign-in redirect on 127.0.0.1:{port}: {}",
                io_reason(&e)
            ))
            .with_hint(
                "close the program using that port, or set another `redirect_port` in the account's \
                 `[accounts.NAME.oauth]` (X: register the same redirect in the developer portal)",
            )
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| {
                Error::other(format!(
                    "cannot read the listener's port: {}",
                    io_reason(&e)
                ))
            })?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::other(format!("cannot set up the listener: {}", io_reason(&e))))?;
        Ok(Listener { listener, port })
    }

    /// Waits up to `timeout` for the redirect and returns its code.
    pub fn wait(&self, state: &SecretString, timeout: Duration) -> Result<Callback, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(result) = handle(stream, state) {
                        return result;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(Error::other(format!(
                            "no sign-in redirect arrived within {} s",
                            timeout.as_secs()
                        ))
                        .with_hint("run the command again and finish signing in in the browser, or use `--no-browser` to paste the answer"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(Error::other(format!(
                        "the sign-in listener failed: {}",
                        io_reason(&e)
                    )));
                }
            }
        }
    }
}

const PAGE_OK: &str = "<!doctype html><title>gate</title><p>Signed in. You can close this tab and return to the terminal.</p>\n";
const PAGE_FAILED: &str =
    "<!doctype html><title>gate</title><p>Sign-in failed. The terminal says why.</p>\n";

/// One request: `None` when it was not the redirect (e.g. `/favicon.ico`), so keep waiting.
fn handle(mut stream: TcpStream, state: &SecretString) -> Option<Result<Callback, Error>> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Zeroizing::new(vec![0u8; 8192]);
    let mut len = 0;
    while len < head.len() {
        match stream.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&head[..len]);
    let target = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    if path != "/callback" {
        respond(
            &mut stream,
            "404 Not Found",
            "<!doctype html><p>Not found.</p>\n",
        );
        return None;
    }
    let result = code_from(&format!("http://127.0.0.1{target}"), state);
    let page = if result.is_ok() { PAGE_OK } else { PAGE_FAILED };
    respond(
        &mut stream,
        if result.is_ok() {
            "200 OK"
        } else {
            "400 Bad Request"
        },
        page,
    );
    Some(result)
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// The code from a redirect URL (the listener's, or one pasted by a person), after checking
/// `state` and reporting an `error` the server sent instead.
pub fn code_from(redirect: &str, state: &SecretString) -> Result<Callback, Error> {
    let url = url::Url::parse(redirect.trim()).map_err(|_| {
        Error::usage("the pasted text is not a URL").with_hint(
            "paste the whole address the browser was sent to (it starts with `http://127.0.0.1`)",
        )
    })?;
    let mut code = None;
    let mut got_state = None;
    let mut error = None;
    let mut iss = None;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "iss" => iss = Some(v.into_owned()),
            "code" => code = Some(SecretString::from(v.as_ref())),
            "state" => got_state = Some(Zeroizing::new(v.into_owned())),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(error) = error {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect();
        return Err(
            Error::credentials(format!("the server did not sign you in (`{error}`)"))
                .with_hint("run the command again and allow gate's access in the browser"),
        );
    }
    if got_state.as_deref().map(String::as_str) != Some(state.expose_secret()) {
        return Err(Error::credentials(
            "the sign-in redirect carried the wrong `state`; it was ignored",
        )
        .with_hint("run the command again, and open only the newest sign-in link"));
    }
    let code = code
        .filter(|c| !c.expose_secret().is_empty())
        .ok_or_else(|| {
            Error::credentials("the sign-in redirect carried no `code`")
                .with_hint("paste the whole address the browser was sent to")
        })?;
    Ok(Callback { code, iss })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_needs_the_right_state() {
        let state = SecretString::from("s1");
        let got = code_from("http://127.0.0.1:8765/callback?code=c1&state=s1", &state).unwrap();
        assert_eq!(got.code.expose_secret(), "c1");
        assert_eq!(got.iss, None);
        let got = code_from(
            "http://127.0.0.1/callback?state=s1&iss=https%3A%2F%2Fpds.example&code=c2",
            &state,
        )
        .unwrap();
        assert_eq!(got.code.expose_secret(), "c2");
        assert_eq!(got.iss.as_deref(), Some("https://pds.example"));
        let err = code_from("http://127.0.0.1:8765/callback?code=c1&state=s2", &state).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error: the sign-in redirect carried the wrong `state`; it was ignored\n  hint: run the command again, and open only the newest sign-in link\n"
        );
        let err = code_from(
            "http://127.0.0.1:8765/callback?error=access_denied&state=s1",
            &state,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("error: the server did not sign you in (`access_denied`)"),
            "{err}"
        );
        assert!(code_from("not a url", &state).is_err());
    }

    #[test]
    fn listener_takes_the_callback_after_other_requests_and_times_out() {
        let l = Listener::bind(0).unwrap();
        let port = l.port;
        let browser = std::thread::spawn(move || {
            for path in ["/favicon.ico", "/callback?code=abc&state=st"] {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
                let mut reply = String::new();
                s.read_to_string(&mut reply).unwrap();
                if path.starts_with("/callback") {
                    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
                    assert!(reply.contains("Signed in."));
                } else {
                    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
                }
            }
        });
        let code = l
            .wait(&SecretString::from("st"), Duration::from_secs(10))
            .unwrap();
        assert_eq!(code.code.expose_secret(), "abc");
        browser.join().unwrap();
        let err = l
            .wait(&SecretString::from("st"), Duration::from_millis(50))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("error: no sign-in redirect arrived within 0 s"),
            "{err}"
        );
    }
}
