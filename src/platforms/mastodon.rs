//! Mastodon: `POST /api/v2/media` for attachments, `POST /api/v1/statuses` with an
//! `Idempotency-Key` (the server keeps it an hour per account and answers a repeated key with
//! the status it already made), so a status request may be retried safely with its key. After
//! an unknown outcome, `find` reads the plain text of each status made since the claim
//! (`GET /api/v1/statuses/:id/source`): the rendered HTML cannot be compared.

pub mod signin;

use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::response::{self, ATTEMPTS};
use super::{CLOCK_SKEW, Lookup, Outgoing, Published, Publisher, SendError};
use crate::credential::Credential;

/// How long an attachment may stay "processing" (206) before gate gives up.
const MEDIA_WAIT: Duration = Duration::from_secs(120);
/// Statuses per page of the account's timeline: Mastodon's maximum.
const PAGE: u32 = 40;
/// How many pages `find` reads before it stops: 400 statuses since a claim is not a lookup.
const PAGES: u32 = 10;
/// How long Mastodon keeps an `Idempotency-Key` (from the first request that carried it).
const KEY_KEPT: chrono::Duration = chrono::Duration::hours(1);
/// Taken off the key's hour before gate trusts it: the server's clock may differ
/// ([`CLOCK_SKEW`]) and a resend takes time to arrive.
const KEY_MARGIN: chrono::Duration = chrono::Duration::minutes(10);

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
    created_at: Option<String>,
    #[serde(default)]
    in_reply_to_id: Option<String>,
    #[serde(default)]
    media_attachments: Vec<serde::de::IgnoredAny>,
}

/// `GET /api/v1/statuses/:id/source`: the text as it was written.
#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    text: String,
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
        request.bearer_auth(crate::redact::sent(&self.token))
    }

    fn send(&self, request: RequestBuilder) -> Result<Response, SendError> {
        let response = self
            .authed(request)
            .send()
            .map_err(|e| response::transport(&e))?;
        response::check(response, "mastodon")
    }

    fn json<T: for<'de> Deserialize<'de>>(response: Response) -> Result<T, SendError> {
        crate::http::json(response).map_err(|e| SendError::Unknown {
            message: format!("mastodon sent a reply gate cannot read: {e}"),
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
                    crate::pause::sleep(response::backoff(attempt))
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

    /// A status's `/source`; none when it is gone (deleted since it was listed).
    fn source(&self, id: &str) -> Result<Option<Source>, SendError> {
        match self.send(
            self.client
                .get(self.url(&format!("/api/v1/statuses/{id}/source"))),
        ) {
            Ok(response) => Ok(Some(Self::json(response)?)),
            Err(SendError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
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
pub fn instance(client: &Client, server: &str) -> Result<crate::core::length::Instance, String> {
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
    let v: serde_json::Value = crate::http::json(response)
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
        number("characters_reserved_per_url")?.unwrap_or(crate::core::length::URL_LENGTH);
    Ok(crate::core::length::Instance {
        max_characters,
        characters_reserved_per_url,
    })
}

impl Publisher for Mastodon {
    fn new_key(&self, delivery: &str) -> String {
        response::derived_key(delivery)
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
        // An earlier try of this request that may have made the status: a later refusal does
        // not undo it, so the outcome stays unknown.
        let mut unknown: Option<String> = None;
        loop {
            attempt += 1;
            let request = self
                .client
                .post(self.url("/api/v1/statuses"))
                .header("Idempotency-Key", post.key)
                .form(&form);
            match self.send(request) {
                Ok(response) => return Ok(Self::json::<Status>(response)?.published()),
                Err(SendError::Unknown { message }) if attempt < ATTEMPTS => {
                    unknown = Some(message);
                    crate::pause::sleep(response::backoff(attempt));
                }
                Err(SendError::RateLimited { retry_after, .. })
                    if attempt < ATTEMPTS
                        && retry_after.is_none_or(|d| d <= Duration::from_secs(60)) =>
                {
                    crate::pause::sleep(
                        retry_after.unwrap_or_else(|| response::backoff(attempt + 2)),
                    );
                }
                Err(e) => return Err(response::after_unknown(e, unknown)),
            }
        }
    }

    /// The account's statuses made since the claim (less [`CLOCK_SKEW`]), newest first,
    /// paged back with `max_id` until one is older; each one with the same parent and as many
    /// attachments is compared by its `/source` text with the text sent ([`same_text`]). No match while the key's hour
    /// (from `since`, less [`KEY_MARGIN`]) lasts: absent, as a resend with the same key
    /// answers with the original anyway. After it: undetermined.
    fn find(
        &self,
        post: &Outgoing<'_>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Lookup, SendError> {
        let me = self.account()?;
        let from = since - CLOCK_SKEW;
        let mut max_id: Option<String> = None;
        let mut complete = false;
        for _ in 0..PAGES {
            let mut query = vec![
                ("limit", PAGE.to_string()),
                ("exclude_reblogs", "true".to_owned()),
            ];
            if let Some(id) = &max_id {
                query.push(("max_id", id.clone()));
            }
            let response = self.send(
                self.client
                    .get(self.url(&format!("/api/v1/accounts/{}/statuses", me.id)))
                    .query(&query),
            )?;
            let next = has_next(response.headers());
            let mut page: Vec<Status> = Self::json(response)?;
            let mut older = false;
            let mut found = None;
            for (i, status) in page.iter().enumerate() {
                if status
                    .created_at
                    .as_deref()
                    .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                    .is_some_and(|c| c.to_utc() < from)
                {
                    older = true;
                    break;
                }
                // Only a status with the same parent and as many attachments can be this
                // post: the others need no `/source` request.
                if status.in_reply_to_id.as_deref() != post.reply_to
                    || status.media_attachments.len() != post.media.len()
                {
                    continue;
                }
                if let Some(source) = self.source(&status.id)?
                    && same_text(&source.text, post.text)
                {
                    found = Some(i);
                    break;
                }
            }
            if let Some(i) = found {
                return Ok(Lookup::Found(page.swap_remove(i).published()));
            }
            match page.last() {
                Some(last) if !older && next => max_id = Some(last.id.clone()),
                _ => {
                    complete = true;
                    break;
                }
            }
        }
        let key_until = since + KEY_KEPT - KEY_MARGIN;
        if chrono::Utc::now() < key_until {
            return Ok(Lookup::Absent);
        }
        let at = from.format("%Y-%m-%d %H:%M UTC");
        Ok(Lookup::Undetermined {
            reason: if complete {
                format!(
                    "no status of `@{}` since {at} has this text, but the first attempt's `Idempotency-Key` has expired (mastodon keeps it one hour), so a status it made and that gate cannot recognise (edited, deleted) would not stop a resend",
                    me.acct
                )
            } else {
                format!(
                    "`@{}` has more than {} statuses since {at}, none of the latest is this one, and the first attempt's `Idempotency-Key` has expired (mastodon keeps it one hour)",
                    me.acct,
                    PAGE * PAGES
                )
            },
        })
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

/// Whether a `Link` header names a `rel="next"` page.
fn has_next(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|link| {
            link.split(';')
                .skip(1)
                .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"))
        })
}

/// A status's `/source` text against the text sent: equal but for line endings (`\r\n` or
/// `\r` read as `\n`). Nothing else is loosened.
fn same_text(source: &str, sent: &str) -> bool {
    fn lines(text: &str) -> String {
        text.replace("\r\n", "\n").replace('\r', "\n")
    }
    lines(source) == lines(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_text_matches_only_the_text_sent() {
        let sent = "Hello @alice@other.example & <friends>\r\nsee https://example.com/x";
        assert!(same_text(
            "Hello @alice@other.example & <friends>\nsee https://example.com/x",
            sent
        ));
        assert!(same_text(sent, sent));
        // Rendered HTML read back as text loses the mention's domain: not the same text.
        assert!(!same_text(
            "Hello @alice & <friends>\nsee https://example.com/x",
            sent
        ));
        // Whitespace, case and links are not loosened.
        assert!(!same_text(
            "Hello  @alice@other.example & <friends>\nsee https://example.com/x",
            sent
        ));
        assert!(!same_text(
            "Hello @alice@other.example & <friends>\nsee https://example.com/y",
            sent
        ));
        assert!(!same_text(
            "hello @alice@other.example & <friends>\nsee https://example.com/x",
            sent
        ));
    }

    #[test]
    fn a_link_header_names_the_next_page() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            "<https://s.example/api/v1/accounts/7/statuses?max_id=5>; rel=\"next\", <https://s.example/api/v1/accounts/7/statuses?min_id=9>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert!(has_next(&h));
        h.insert(
            reqwest::header::LINK,
            "<https://s.example/api/v1/accounts/7/statuses?min_id=9>; rel=\"prev\""
                .parse()
                .unwrap(),
        );
        assert!(!has_next(&h));
        assert!(!has_next(&reqwest::header::HeaderMap::new()));
    }
}
