//! The one HTTP client gate uses. It is built only when something goes over the network
//! (loading the system's root certificates is most of a cold start), always verifies TLS,
//! bounds every request in time, and never puts a secret into an error message.

use std::time::Duration;

use crate::error::Error;

/// How long a connection may take to open, and a whole request to finish.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A blocking client with gate's defaults: rustls with the system's roots, timeouts, and no
/// redirects at all. Nearly every request gate makes carries a credential in a header or its
/// body (a token, a refresh token, a client secret, an app password); a 307 or 308 would send
/// the body again to wherever the server points, even over plain http, so a redirect is an
/// answer like any other non-success status, never followed.
pub fn client() -> Result<reqwest::blocking::Client, Error> {
    reqwest::blocking::Client::builder()
        .user_agent(concat!("gate/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .https_only(false)
        .build()
        .map_err(|e| Error::network(format!("cannot set up the HTTP client: {}", describe(&e))))
}

/// The HTTP client, built on another thread from the moment a command is likely to send
/// (loading the system's root certificates is most of its cost, DESIGN.md), so that it is
/// ready by the time the first request goes out; waited for when first needed.
pub struct Prepared {
    building: std::cell::RefCell<
        Option<std::thread::JoinHandle<Result<reqwest::blocking::Client, Error>>>,
    >,
    built: std::cell::OnceCell<reqwest::blocking::Client>,
}

impl Prepared {
    pub fn start() -> Prepared {
        Prepared {
            building: std::cell::RefCell::new(Some(std::thread::spawn(client))),
            built: std::cell::OnceCell::new(),
        }
    }

    /// The client (built here if the other thread could not).
    pub fn get(&self) -> Result<&reqwest::blocking::Client, Error> {
        if let Some(client) = self.built.get() {
            return Ok(client);
        }
        let building = self.building.borrow_mut().take();
        let built = match building.map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => client(),
        }?;
        Ok(self.built.get_or_init(|| built))
    }
}

/// A reqwest error for people: what failed and where (host and port only: paths and queries can carry
/// codes or tokens), without the URL's secrets.
pub fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_decode() {
        "sent a reply gate cannot read"
    } else if e.is_redirect() {
        "redirected too often"
    } else if e.is_body() || e.is_request() {
        "the connection failed"
    } else {
        "failed"
    };
    let Some(url) = e.url() else {
        return what.to_owned();
    };
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) if e.is_connect() => format!("{what} to {host}:{port}"),
        (Some(host), Some(port)) => format!("{host}:{port}: {what}"),
        (Some(host), None) => format!("{host}: {what}"),
        _ => what.to_owned(),
    }
}

/// The network error for a request that did not complete (exit 9).
pub fn unreachable(e: &reqwest::Error) -> Error {
    Error::network(describe(e))
        .with_hint("check the network and the account's `server` in the policy; nothing was sent")
}

/// The most gate reads of any server's answer: more is an error, not memory gone.
pub const ANSWER_CAP: u64 = 8 << 20;

/// Why an answer could not be read.
#[derive(Debug)]
pub enum AnswerError {
    /// The connection failed while the body was read.
    Read(String),
    TooLarge,
    /// Not the JSON gate expected.
    Json(serde_json::Error),
}

impl std::fmt::Display for AnswerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerError::Read(why) => write!(f, "the answer could not be read ({why})"),
            AnswerError::TooLarge => write!(
                f,
                "the answer is larger than {}",
                crate::files::size(ANSWER_CAP)
            ),
            AnswerError::Json(e) => write!(f, "the answer is not the JSON expected ({e})"),
        }
    }
}

/// The body of `response`, at most [`ANSWER_CAP`] bytes of it.
pub fn body(response: reqwest::blocking::Response) -> Result<Vec<u8>, AnswerError> {
    crate::files::read_capped(response, ANSWER_CAP).map_err(|e| match e {
        crate::files::ReadError::TooLarge { .. } => AnswerError::TooLarge,
        other => AnswerError::Read(other.to_string()),
    })
}

/// The body of `response` as JSON of type `T`, read with the cap.
pub fn json<T: serde::de::DeserializeOwned>(
    response: reqwest::blocking::Response,
) -> Result<T, AnswerError> {
    serde_json::from_slice(&body(response)?).map_err(AnswerError::Json)
}
