//! XRPC calls to one PDS, authorised by an app-password session (`Bearer`) or an atproto
//! OAuth session (`DPoP`: a fresh proof per request, and the request sent again once when the
//! server asks for its nonce).

use reqwest::Method;
use reqwest::blocking::{RequestBuilder, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::dpop::{self, Dpop};
use crate::error::Error;

/// An XRPC reply that is not a success: the HTTP status and atproto's `error` / `message`.
#[derive(Debug)]
pub struct XrpcError {
    pub status: u16,
    pub error: String,
    pub message: String,
    /// `ratelimit-reset` (epoch seconds), when the server sent it.
    pub reset: Option<i64>,
}

impl XrpcError {
    /// "`ExpiredToken`: Token has expired" for people (server text, never a token).
    pub fn describe(&self) -> String {
        match (self.error.is_empty(), self.message.is_empty()) {
            (false, false) => format!("{} ({}): {}", self.error, self.status, self.message),
            (false, true) => format!("{} ({})", self.error, self.status),
            (true, false) => format!("HTTP {}: {}", self.status, self.message),
            (true, true) => format!("HTTP {}", self.status),
        }
    }
}

/// A request that did not get an answer, or got a refusal.
#[derive(Debug)]
pub enum CallError {
    Transport(reqwest::Error),
    Xrpc(XrpcError),
}

/// One PDS: its base URL, gate's HTTP client and, for an OAuth session, its DPoP key.
pub struct Xrpc {
    pub client: reqwest::blocking::Client,
    pub base: String,
    pub dpop: Option<Dpop>,
}

impl Xrpc {
    /// Calls without DPoP (app-password sessions, and anonymous calls).
    pub fn new(server: &str) -> Result<Xrpc, Error> {
        Ok(Xrpc {
            client: crate::http::client()?,
            base: server.trim_end_matches('/').to_owned(),
            dpop: None,
        })
    }

    /// Calls whose tokens are bound to `dpop`.
    pub fn with_dpop(server: &str, dpop: Option<Dpop>) -> Result<Xrpc, Error> {
        Ok(Xrpc {
            dpop,
            ..Xrpc::new(server)?
        })
    }

    fn url(&self, nsid: &str) -> String {
        format!("{}/xrpc/{nsid}", self.base)
    }

    /// A procedure (POST) with a JSON body; `token` authorises it.
    pub fn procedure(
        &self,
        nsid: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        self.call(Method::POST, nsid, token, &|req| match body {
            Some(body) => req.json(body),
            None => req,
        })
    }

    /// A procedure whose body is raw bytes (`uploadBlob`).
    pub fn upload(
        &self,
        nsid: &str,
        token: &SecretString,
        mime: &str,
        bytes: &[u8],
    ) -> Result<Value, CallError> {
        self.call(Method::POST, nsid, Some(token), &|req| {
            req.header(reqwest::header::CONTENT_TYPE, mime)
                .body(bytes.to_vec())
        })
    }

    /// A query (GET).
    pub fn query(
        &self,
        nsid: &str,
        token: Option<&SecretString>,
        params: &[(&str, &str)],
    ) -> Result<Value, CallError> {
        self.call(Method::GET, nsid, token, &|req| req.query(params))
    }

    fn call(
        &self,
        method: Method,
        nsid: &str,
        token: Option<&SecretString>,
        build: &dyn Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Value, CallError> {
        let url = self.url(nsid);
        let mut asked_nonce = false;
        loop {
            let mut req = build(self.client.request(method.clone(), &url));
            if let Some(token) = token {
                req = match &self.dpop {
                    Some(dpop) => req
                        .header(
                            reqwest::header::AUTHORIZATION,
                            format!("DPoP {}", token.expose_secret()),
                        )
                        .header("DPoP", dpop.proof(method.as_str(), &url, Some(token))),
                    None => req.bearer_auth(token.expose_secret()),
                };
            }
            let reply = read(req.send(), self.dpop.as_ref())?;
            match reply {
                Reply::Again if !asked_nonce => asked_nonce = true,
                Reply::Again => {
                    return Err(CallError::Xrpc(XrpcError {
                        status: 401,
                        error: "use_dpop_nonce".into(),
                        message: "the server asked for a new DPoP nonce twice in a row".into(),
                        reset: None,
                    }));
                }
                Reply::Done(result) => return result,
            }
        }
    }
}

enum Reply {
    /// The server wants the request again with the nonce it just sent.
    Again,
    Done(Result<Value, CallError>),
}

fn read(sent: Result<Response, reqwest::Error>, dpop: Option<&Dpop>) -> Result<Reply, CallError> {
    let resp = sent.map_err(CallError::Transport)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    if let Some(dpop) = dpop {
        dpop.remember_nonce(&headers);
    }
    let reset = headers
        .get("ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = match resp.bytes() {
        Ok(b) if b.is_empty() => Value::Null,
        Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Err(e) => return Err(CallError::Transport(e)),
    };
    if (200..300).contains(&status) {
        return Ok(Reply::Done(Ok(body)));
    }
    if dpop.is_some() && dpop::wants_nonce(status, &headers, &body) {
        return Ok(Reply::Again);
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok(Reply::Done(Err(CallError::Xrpc(XrpcError {
        status,
        error: text("error"),
        message: text("message"),
        reset,
    }))))
}
