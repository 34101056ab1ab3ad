//! One trait for every network; one adapter per network behind it.
use std::time::Duration;

/// An attachment as it will be uploaded.
pub struct Media {
    pub name: String,
    pub bytes: Vec<u8>,
    pub mime: String,
    pub alt: Option<String>,
}

/// What is sent: the exact text, media, and the idempotency key chosen when the delivery
/// was journaled, before any network call.
pub struct Outgoing<'a> {
    pub text: &'a str,
    pub media: &'a [Media],
    pub reply_to: Option<&'a str>,
    pub language: Option<&'a str>,
    pub key: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub id: String,
    pub url: String,
}

#[derive(Debug)]
pub enum SendError {
    /// Definitely not sent (the server refused it: 4xx other than 429, validation errors).
    Refused { status: u16, message: String },
    /// May or may not have been sent (timeout after the request went out, connection dropped): resolve with `find` before sending again.
    Unknown { message: String },
    /// Not sent: too many requests; retry after this long if known.
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// The credential was rejected (401): exit 8.
    Credentials { message: String },
}

pub trait Platform {
    /// A fresh idempotency key for a new delivery (Bluesky: a TID usable as the record key).
    fn new_key(&self) -> String;
    fn publish(&self, post: &Outgoing<'_>) -> Result<Published, SendError>;
    /// After an unknown outcome: the post sent with this key, if it exists.
    fn find(&self, post: &Outgoing<'_>) -> Result<Option<Published>, SendError>;
    fn delete(&self, id: &str) -> Result<(), SendError>;
    fn whoami(&self) -> Result<String, SendError>;
}

pub mod bluesky;
pub mod mastodon;
mod reply;
pub mod x;

/// The adapter for `account`'s network, speaking to its `server` with `credential`.
pub fn connect(
    account: &crate::policy::Account,
    credential: crate::credential::Credential,
    client: reqwest::blocking::Client,
) -> Result<Box<dyn Platform>, crate::error::Error> {
    use crate::policy::Platform as Network;
    Ok(match account.platform {
        Network::Mastodon => Box::new(mastodon::Mastodon::new(&account.server, credential, client)),
        Network::X => Box::new(x::X::new(&account.server, credential, client)),
        Network::Bluesky => Box::new(bluesky::Bluesky::new(account, &credential)?),
    })
}
