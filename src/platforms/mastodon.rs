//! Mastodon: `POST /api/v2/media` for attachments, `POST /api/v1/statuses` with an
//! `Idempotency-Key` (the server keeps it an hour per account and answers a repeated key with
//! the status it already made), so a status request may be retried safely with its key.

use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::reply::{self, ATTEMPTS};
use super::{Lookup, Outgoing, Platform, Published, SendError};
use crate::credential::Credential;

/// How long an attachment may stay "processing" (206) before gate gives up.
const MEDIA_WAIT: Duration = Duration::from_secs(120);
/// How many of the account's latest statuses `find` looks through.
const RECENT: u32 = 40;

pub struct Mastodon {
    base: String,
    token: SecretString,
    client: Client,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    content: String,
}

impl Status {
    fn published(self) -> Published {
        let url = self.url.or(self.uri).unwrap_or_default();
        Published { id: self.id, url }
    }
}

#[derive(Deserialize)]
struct Attachment {
    id: String,
}

#[derive(Deserialize)]
struct Account {
    id: String,
    acct: String,
}

impl Mastodon {
    pub fn new(server: &str, credential: Credential, client: Client) -> Mastodon {
        Mastodon {
            base: server.trim_end_matches('/').to_owned(),
            token: credential.access_token,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(self.token.expose_secret())
    }

    fn send(&self, request: RequestBuilder) -> Result<Response, SendError> {
        let response = self
            .authed(request)
            .send()
            .map_err(|e| reply::transport(&e))?;
        reply::check(response, "mastodon")
    }

    fn json<T: for<'de> Deserialize<'de>>(response: Response) -> Result<T, SendError> {
        response.json().map_err(|e| SendError::Unknown {
            message: format!(
                "mastodon sent a reply gate cannot read: {}",
                crate::http::describe(&e)
            ),
        })
    }

    /// Uploads one attachment (retried: an unused upload is harmless and the server drops
    /// it) and waits while the server processes it.
    fn upload(&self, media: &super::Media) -> Result<String, SendError> {
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let part = reqwest::blocking::multipart::Part::bytes(media.bytes.clone())
                .file_name(media.name.clone())
                .mime_str(&media.mime)
                .map_err(|_| SendError::Refused {
                    status: 0,
                    message: format!("`{}` has an invalid media type", media.name),
                })?;
            let mut form = reqwest::blocking::multipart::Form::new().part("file", part);
            if let Some(alt) = &media.alt {
                form = form.text("description", alt.clone());
            }
            match self.send(self.client.post(self.url("/api/v2/media")).multipart(form)) {
                Ok(r) => break r,
                Err(SendError::Unknown { .. }) if attempt < ATTEMPTS => {
                    crate::pause::sleep(reply::backoff(attempt))
                }
                Err(SendError::RateLimited {
                    retry_after: Some(d),
                    ..
                }) if attempt < ATTEMPTS && d <= Duration::from_secs(60) => crate::pause::sleep(d),
                Err(e) => return Err(e),
            }
        };
        let processing = response.status().as_u16() == 202;
        let attachment: Attachment = Self::json(response)?;
        if processing {
            let start = Instant::now();
            let mut pause = Duration::from_millis(200);
            loop {
                let r = self.send(
                    self.client
                        .get(self.url(&format!("/api/v1/media/{}", attachment.id))),
                )?;
                if r.status().as_u16() != 206 {
                    break;
                }
                if start.elapsed() > MEDIA_WAIT {
                    return Err(SendError::Refused {
                        status: 206,
                        message: format!(
                            "mastodon was still processing `{}` after {} s",
                            media.name,
                            MEDIA_WAIT.as_secs()
                        ),
                    });
                }
                crate::pause::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
        Ok(attachment.id)
    }

    fn account(&self) -> Result<Account, SendError> {
        Self::json(
            self.send(
                self.client
                    .get(self.url("/api/v1/accounts/verify_credentials")),
            )?,
        )
    }
}

/// How long gate waits for an instance to say its limits before judging without them.
const INSTANCE_WAIT: Duration = Duration::from_secs(10);

/// `GET /api/v2/instance` (public: no token is sent): the instance's
/// `configuration.statuses.max_characters` and `characters_reserved_per_url` (23 when absent),
/// or why they cannot be read.
pub fn instance(client: &Client, server: &str) -> Result<crate::length::Instance, String> {
    let url = format!("{}/api/v2/instance", server.trim_end_matches('/'));
    let response = client
        .get(&url)
        .timeout(INSTANCE_WAIT)
        .send()
        .map_err(|e| crate::http::describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("`/api/v2/instance` answered {}", status.as_u16()));
    }
    let v: serde_json::Value = response
        .json()
        .map_err(|_| "`/api/v2/instance` did not answer JSON".to_owned())?;
    let statuses = v.pointer("/configuration/statuses");
    let number = |key: &str| {
        statuses
            .and_then(|s| s.get(key))
            .filter(|v| !v.is_null())
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("`configuration.statuses.{key}` is not a whole number"))
            })
            .transpose()
    };
    let max_characters = number("max_characters")?
        .filter(|n| *n > 0)
        .ok_or("no `configuration.statuses.max_characters`")?;
    let characters_reserved_per_url =
        number("characters_reserved_per_url")?.unwrap_or(crate::length::URL_LENGTH);
    Ok(crate::length::Instance {
        max_characters,
        characters_reserved_per_url,
    })
}

impl Platform for Mastodon {
    fn new_key(&self, delivery: &str) -> String {
        reply::derived_key(delivery)
    }

    /// Uploads the media, then creates the status with the delivery's key. A dropped
    /// connection, a timeout or a 5xx is retried with the same key (capped, jittered); so is a
    /// 429 that asks for at most a minute.
    fn publish(&self, post: &Outgoing<'_>) -> Result<Published, SendError> {
        let media_ids = super::upload_each(post, |m| self.upload(m))?;
        let visibility = post.visibility.unwrap_or_default().name();
        let mut form: Vec<(&str, &str)> = vec![("status", post.text), ("visibility", visibility)];
        for id in &media_ids {
            form.push(("media_ids[]", id));
        }
        if let Some(id) = post.reply_to {
            form.push(("in_reply_to_id", id));
        }
        if let Some(language) = post.language {
            form.push(("language", language));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self
                .client
                .post(self.url("/api/v1/statuses"))
                .header("Idempotency-Key", post.key)
                .form(&form);
            match self.send(request) {
                Ok(response) => return Ok(Self::json::<Status>(response)?.published()),
                Err(SendError::Unknown { .. }) if attempt < ATTEMPTS => {
                    crate::pause::sleep(reply::backoff(attempt))
                }
                Err(SendError::RateLimited { retry_after, .. })
                    if attempt < ATTEMPTS
                        && retry_after.is_none_or(|d| d <= Duration::from_secs(60)) =>
                {
                    crate::pause::sleep(retry_after.unwrap_or_else(|| reply::backoff(attempt + 2)));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The account's latest statuses, matched on their text. Mastodon returns HTML, so the
    /// comparison is on the text with tags and entities taken out. (Within the key's hour a
    /// new `publish` with the same key is safe anyway: the server returns the original.)
    fn find(
        &self,
        post: &Outgoing<'_>,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Lookup, SendError> {
        let me = self.account()?;
        let statuses: Vec<Status> = Self::json(
            self.send(
                self.client
                    .get(self.url(&format!("/api/v1/accounts/{}/statuses", me.id)))
                    .query(&[
                        ("limit", RECENT.to_string()),
                        ("exclude_reblogs", "true".to_owned()),
                    ]),
            )?,
        )?;
        let want = squash(post.text);
        Ok(statuses
            .into_iter()
            .find(|s| squash(&plain_text(&s.content)) == want)
            .map_or(Lookup::Absent, |s| Lookup::Found(s.published())))
    }

    fn delete(&self, id: &str) -> Result<(), SendError> {
        self.send(
            self.client
                .delete(self.url(&format!("/api/v1/statuses/{id}"))),
        )?;
        Ok(())
    }

    fn whoami(&self) -> Result<String, SendError> {
        Ok(self.account()?.acct)
    }
}

/// A status's HTML as text: paragraphs and `<br>` become newlines, tags go, the five
/// entities HTML escaping produces are decoded.
fn plain_text(html: &str) -> String {
    let html = html
        .replace("</p><p>", "\n\n")
        .replace("<br>", "\n")
        .replace("<br />", "\n")
        .replace("<br/>", "\n");
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Text compared without regard to whitespace runs (servers re-wrap).
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_html_reads_back_as_the_text_sent() {
        let html = "<p>Our release &amp; notes: <a href=\"https://example.com\"><span>https://example.com</span></a></p><p>Second &lt;para&gt;<br>line &quot;q&quot; it&#39;s</p>";
        assert_eq!(
            plain_text(html),
            "Our release & notes: https://example.com\n\nSecond <para>\nline \"q\" it's"
        );
        assert_eq!(
            squash(&plain_text(html)),
            squash("Our release & notes: https://example.com\n\nSecond <para>\nline \"q\" it's")
        );
    }
}
