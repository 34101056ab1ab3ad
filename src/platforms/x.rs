//! X (API v2): `POST /2/media/upload` and `POST /2/media/metadata` for attachments and their
//! alt text, `POST /2/tweets` for the post. X has no idempotency key, so a post request is
//! never retried blindly: an unknown outcome (and a 403 "duplicate content") is resolved by
//! looking at the account's latest posts.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::reply::{self, ATTEMPTS};
use super::{Lookup, Outgoing, Platform, Published, SendError};
use crate::credential::Credential;

/// How many of the account's latest posts `find` looks through (X allows 5–100).
const RECENT: u32 = 20;

pub struct X {
    base: String,
    token: SecretString,
    client: Client,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct Tweet {
    id: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: String,
}

#[derive(Deserialize)]
struct Uploaded {
    id: String,
}

#[derive(Deserialize)]
struct Timeline {
    #[serde(default)]
    data: Vec<Tweet>,
}

/// The public address of a post; X's API answers with the id only.
pub fn post_url(id: &str) -> String {
    format!("https://x.com/i/web/status/{id}")
}

impl X {
    pub fn new(server: &str, credential: Credential, client: Client) -> X {
        X {
            base: server.trim_end_matches('/').to_owned(),
            token: credential.access_token,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, request: RequestBuilder) -> Result<Response, SendError> {
        let response = request
            .bearer_auth(self.token.expose_secret())
            .send()
            .map_err(|e| reply::transport(&e))?;
        reply::check(response, "x")
    }

    fn json<T: for<'de> Deserialize<'de>>(response: Response) -> Result<T, SendError> {
        response.json().map_err(|e| SendError::Unknown {
            message: format!(
                "x sent a reply gate cannot read: {}",
                crate::http::describe(&e)
            ),
        })
    }

    /// Sends a request that may be repeated without harm (uploads, reads), retrying a
    /// dropped connection, a 5xx or a short 429.
    fn repeatable(&self, make: impl Fn() -> RequestBuilder) -> Result<Response, SendError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send(make()) {
                Err(SendError::Unknown { .. }) if attempt < ATTEMPTS => {
                    crate::pause::sleep(reply::backoff(attempt))
                }
                Err(SendError::RateLimited {
                    retry_after: Some(d),
                    ..
                }) if attempt < ATTEMPTS && d <= Duration::from_secs(60) => crate::pause::sleep(d),
                other => return other,
            }
        }
    }

    fn upload(&self, media: &super::Media) -> Result<String, SendError> {
        let category = if media.mime.starts_with("video/") {
            "tweet_video"
        } else if media.mime == "image/gif" {
            "tweet_gif"
        } else {
            "tweet_image"
        };
        let response = self.repeatable(|| {
            let part = reqwest::blocking::multipart::Part::bytes(media.bytes.clone())
                .file_name(media.name.clone())
                .mime_str(&media.mime)
                .unwrap_or_else(|_| reqwest::blocking::multipart::Part::bytes(media.bytes.clone()));
            let form = reqwest::blocking::multipart::Form::new()
                .part("media", part)
                .text("media_category", category);
            self.client
                .post(self.url("/2/media/upload"))
                .multipart(form)
        })?;
        let uploaded: Data<Uploaded> = Self::json(response)?;
        if let Some(alt) = &media.alt {
            let body = json!({"id": uploaded.data.id, "metadata": {"alt_text": {"text": alt}}});
            self.repeatable(|| self.client.post(self.url("/2/media/metadata")).json(&body))?;
        }
        Ok(uploaded.data.id)
    }

    fn me(&self) -> Result<User, SendError> {
        let user: Data<User> =
            Self::json(self.repeatable(|| self.client.get(self.url("/2/users/me")))?)?;
        Ok(user.data)
    }
}

impl Platform for X {
    /// X takes no key; this one only names the delivery in gate's journal.
    fn new_key(&self, _delivery: &str) -> String {
        reply::random_key()
    }

    /// One `POST /2/tweets`, never repeated here: a dropped connection or a 5xx is an
    /// unknown outcome, and a 403 "duplicate content" means an identical post exists
    /// (perhaps ours); both are for the caller to resolve with `find`.
    fn publish(&self, post: &Outgoing<'_>) -> Result<Published, SendError> {
        // X has no visibility and no language field (it detects the language itself): a
        // visibility is refused before any upload, a language is not sent.
        super::public_only("x", post)?;
        let media_ids = super::upload_each(post, |m| self.upload(m))?;
        let mut body = json!({"text": post.text});
        if !media_ids.is_empty() {
            body["media"] = json!({"media_ids": media_ids});
        }
        if let Some(id) = post.reply_to {
            body["reply"] = json!({"in_reply_to_tweet_id": id});
        }
        match self.send(self.client.post(self.url("/2/tweets")).json(&body)) {
            Ok(response) => {
                let tweet: Data<Tweet> = Self::json(response)?;
                Ok(Published {
                    url: post_url(&tweet.data.id),
                    id: tweet.data.id,
                })
            }
            Err(SendError::Refused {
                status: 403,
                message,
            }) if message.to_lowercase().contains("duplicate") => {
                Err(SendError::Unknown { message })
            }
            Err(e) => Err(e),
        }
    }

    /// The account's latest posts with exactly this text (X keeps the text as sent, except
    /// that links are shortened: a post with links is compared with them replaced).
    fn find(
        &self,
        post: &Outgoing<'_>,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Lookup, SendError> {
        let me = self.me()?;
        let timeline: Timeline = Self::json(self.repeatable(|| {
            self.client
                .get(self.url(&format!("/2/users/{}/tweets", me.id)))
                .query(&[
                    ("max_results", RECENT.to_string()),
                    ("exclude", "retweets,replies".to_owned()),
                ])
        })?)?;
        let want = without_links(post.text);
        Ok(timeline
            .data
            .into_iter()
            .find(|t| without_links(&t.text) == want)
            .map_or(Lookup::Absent, |t| {
                Lookup::Found(Published {
                    url: post_url(&t.id),
                    id: t.id,
                })
            }))
    }

    fn delete(&self, id: &str) -> Result<(), SendError> {
        self.repeatable(|| self.client.delete(self.url(&format!("/2/tweets/{id}"))))?;
        Ok(())
    }

    fn whoami(&self) -> Result<String, SendError> {
        Ok(self.me()?.username)
    }
}

/// Text with every `http(s)://…` word replaced by one marker and whitespace runs squashed,
/// so a post whose links X shortened to `t.co` still matches what was sent.
fn without_links(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            if w.starts_with("https://") || w.starts_with("http://") {
                "<link>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortened_links_still_match() {
        assert_eq!(
            without_links("Out now: https://example.com/release  today"),
            without_links("Out now: https://t.co/abc123 today")
        );
        assert_ne!(without_links("Out now"), without_links("Out later"));
    }
}
