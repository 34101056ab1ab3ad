//! XRPC calls to one PDS, authorised by an app-password session (`Bearer`) or an atproto
//! OAuth session (`DPoP`: a fresh proof per request, and the request sent again once when the
//! server asks for its nonce).

use reqwest::Method;
use reqwest::blocking::RequestBuilder;
use secrecy::SecretString;
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
        let answer = dpop::send(self.dpop.as_ref(), &|| {
            let req = build(self.client.request(method.clone(), &url));
            match (token, &self.dpop) {
                (Some(token), Some(dpop)) => req
                    .header(
                        reqwest::header::AUTHORIZATION,
                        format!("DPoP {}", crate::redact::sent(token)),
                    )
                    .header("DPoP", dpop.proof(method.as_str(), &url, Some(token))),
                (Some(token), None) => req.bearer_auth(crate::redact::sent(token)),
                (None, _) => req,
            }
        })
        .map_err(CallError::Transport)?;
        if (200..300).contains(&answer.status) {
            return Ok(answer.body);
        }
        let text = |k: &str| {
            answer
                .body
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Err(CallError::Xrpc(XrpcError {
            status: answer.status,
            error: text("error"),
            message: text("message"),
            reset: answer
                .headers
                .get("ratelimit-reset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        }))
    }
}
