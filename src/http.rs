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

/// A reqwest error for people: what failed and where (host only: paths and queries can carry
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
    match e.url().and_then(|u| u.host_str().map(str::to_owned)) {
        Some(host) => format!("{host}: {what}"),
        None => what.to_owned(),
    }
}

/// The network error for a request that did not complete (exit 9).
pub fn unreachable(e: &reqwest::Error) -> Error {
    Error::network(describe(e))
        .with_hint("check the network and the account's `server` in the policy; nothing was sent")
}
