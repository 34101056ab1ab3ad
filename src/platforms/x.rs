//! X (API v2): `POST /2/media/upload` and `POST /2/media/metadata` for attachments and their
//! alt text, `POST /2/tweets` for the post. X has no idempotency key, so a post request is
//! never retried blindly: an unknown outcome (and a 403 "duplicate content") is resolved by
//! looking at the account's posts made since the delivery was claimed, with their text
//! rebuilt from X's `t.co` entities and compared exactly.

pub mod signin;

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::response::{self, ATTEMPTS};
use super::{CLOCK_SKEW, Lookup, Outgoing, Published, Publisher, SendError};
use crate::credential::Credential;

/// How many posts one timeline page holds for `find`: X's maximum. A lookup reads one page;
/// more candidates than that and it cannot tell.
const PAGE: u32 = 100;

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
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    entities: Option<Entities>,
    #[serde(default)]
    referenced_tweets: Vec<Referenced>,
}

#[derive(Deserialize, Default)]
struct Entities {
    #[serde(default)]
    urls: Vec<UrlEntity>,
}

/// One `entities.urls[]` item: the `t.co` link in the text and what it stands for.
#[derive(Deserialize)]
struct UrlEntity {
    #[serde(default)]
    start: Option<usize>,
    url: String,
    #[serde(default)]
    expanded_url: Option<String>,
    /// Present on the trailing link X adds for a post's media.
    #[serde(default)]
    media_key: Option<String>,
}

#[derive(Deserialize)]
struct Referenced {
    #[serde(rename = "type")]
    kind: String,
    id: String,
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
    #[serde(default)]
    meta: Meta,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    next_token: Option<String>,
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
            .bearer_auth(crate::redact::sent(&self.token))
            .send()
            .map_err(|e| response::transport(&e))?;
        response::check(response, "x")
    }

    fn json<T: for<'de> Deserialize<'de>>(response: Response) -> Result<T, SendError> {
        crate::http::json(response).map_err(|e| SendError::Unknown {
            message: format!("x sent a reply gate cannot read: {e}"),
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
                    crate::pause::sleep(response::backoff(attempt))
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

impl Publisher for X {
    /// X takes no key; this one only names the delivery in gate's journal.
    fn new_key(&self, _delivery: &str) -> String {
        response::random_key()
    }

    /// One `POST /2/tweets`, never repeated here: a dropped connection or a 5xx is an
    /// unknown outcome, and a 403 "duplicate content" means an identical post exists
    /// (perhaps ours: [`SendError::Duplicate`]); both are for the caller to resolve with
    /// `find`.
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
                Err(SendError::Duplicate { message })
            }
            Err(e) => Err(e),
        }
    }

    /// The account's posts made since the claim (less [`CLOCK_SKEW`]), one page of at most
    /// [`PAGE`], each with its text rebuilt as it was sent ([`sent_text`]) and compared
    /// exactly; a reply must answer the same parent. No match on a page that is not the last:
    /// undetermined, never a guess.
    fn find(
        &self,
        post: &Outgoing<'_>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Lookup, SendError> {
        let me = self.me()?;
        let from = since - CLOCK_SKEW;
        let start_time = from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        // Replies are looked at only for a reply; retweets never carry our text.
        let exclude = if post.reply_to.is_some() {
            "retweets"
        } else {
            "retweets,replies"
        };
        let timeline: Timeline = Self::json(self.repeatable(|| {
            self.client
                .get(self.url(&format!("/2/users/{}/tweets", me.id)))
                .query(&[
                    ("start_time", start_time.as_str()),
                    ("max_results", &PAGE.to_string()),
                    ("tweet.fields", "created_at,entities,referenced_tweets"),
                    ("exclude", exclude),
                ])
        })?)?;
        let found = timeline
            .data
            .into_iter()
            .find(|t| is_this_post(t, post, from));
        if let Some(t) = found {
            return Ok(Lookup::Found(Published {
                url: post_url(&t.id),
                id: t.id,
            }));
        }
        if timeline.meta.next_token.is_some() {
            return Ok(Lookup::Undetermined {
                reason: format!(
                    "`@{}` has more than {PAGE} posts since {} and none of the latest {PAGE} is this one",
                    me.username,
                    from.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            });
        }
        Ok(Lookup::Absent)
    }

    fn delete(&self, id: &str) -> Result<(), SendError> {
        self.repeatable(|| self.client.delete(self.url(&format!("/2/tweets/{id}"))))?;
        Ok(())
    }

    fn whoami(&self) -> Result<String, SendError> {
        Ok(self.me()?.username)
    }
}

/// Whether timeline post `t` is `post`: made at or after `from`, its text rebuilt equal to
/// the text sent, the same parent (or none).
fn is_this_post(t: &Tweet, post: &Outgoing<'_>, from: chrono::DateTime<chrono::Utc>) -> bool {
    let recent = t
        .created_at
        .as_deref()
        .is_none_or(|c| chrono::DateTime::parse_from_rfc3339(c).is_ok_and(|c| c.to_utc() >= from));
    let parent = t
        .referenced_tweets
        .iter()
        .find(|r| r.kind == "replied_to")
        .map(|r| r.id.as_str());
    recent
        && parent == post.reply_to
        && sent_text(t, !post.media.is_empty()).as_deref() == Some(post.text)
}

/// The text as it was sent, rebuilt from what X returns: each `t.co` link of
/// `entities.urls` replaced by its `expanded_url`, `&amp; &lt; &gt;` decoded, and for a post
/// with media the trailing link X adds removed. None when the post cannot be the one sent: a
/// media link where none was sent, none where media was, a link the entities do not place.
fn sent_text(t: &Tweet, media: bool) -> Option<String> {
    let empty = Entities::default();
    let entities = t.entities.as_ref().unwrap_or(&empty);
    let mut text = t.text.as_str();
    let (media_links, mut links): (Vec<&UrlEntity>, Vec<&UrlEntity>) =
        entities.urls.iter().partition(|u| u.media_key.is_some());
    links.sort_by_key(|u| u.start);
    if media {
        let last = media_links.last()?;
        text = text.strip_suffix(last.url.as_str())?;
        text = text.strip_suffix(' ').unwrap_or(text);
    } else if !media_links.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    for link in links {
        let at = rest.find(link.url.as_str())?;
        out.push_str(&unescape(&rest[..at]));
        out.push_str(link.expanded_url.as_deref().unwrap_or(&link.url));
        rest = &rest[at + link.url.len()..];
    }
    out.push_str(&unescape(rest));
    Some(out)
}

/// The three entities X writes into a post's text, decoded (`&amp;` last, so `&amp;lt;` reads
/// `&lt;`).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tweet(value: serde_json::Value) -> Tweet {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn links_are_rebuilt_from_their_entities_and_never_match_another_link() {
        let t = tweet(json!({
            "id": "1",
            "text": "New post: https://t.co/AbCdEfGhIj and https://t.co/0123456789.",
            "entities": {"urls": [
                {"start": 10, "end": 33, "url": "https://t.co/AbCdEfGhIj",
                 "expanded_url": "https://example.com/new", "display_url": "example.com/new"},
                {"start": 38, "end": 61, "url": "https://t.co/0123456789",
                 "expanded_url": "https://example.com/notes?a=1&b=2", "display_url": "example.com/notes?a=1&…"}
            ]}
        }));
        assert_eq!(
            sent_text(&t, false).as_deref(),
            Some("New post: https://example.com/new and https://example.com/notes?a=1&b=2.")
        );
        // The old comparison took any link for any other.
        assert_ne!(
            sent_text(&t, false).as_deref(),
            Some("New post: https://example.com/old and https://example.com/notes?a=1&b=2.")
        );
        // A link the entities do not name is kept as X shows it: it matches nothing sent.
        let bare = tweet(json!({"id": "2", "text": "New post: https://t.co/AbCdEfGhIj"}));
        assert_eq!(
            sent_text(&bare, false).as_deref(),
            Some("New post: https://t.co/AbCdEfGhIj")
        );
    }

    #[test]
    fn the_media_link_is_removed_only_for_a_post_with_media() {
        let t = tweet(json!({
            "id": "3",
            "text": "Notes &amp; slides https://t.co/AAAAAAAAAA https://t.co/BBBBBBBBBB",
            "entities": {"urls": [
                {"start": 19, "end": 42, "url": "https://t.co/AAAAAAAAAA",
                 "expanded_url": "https://example.com/n", "display_url": "example.com/n"},
                {"start": 43, "end": 66, "url": "https://t.co/BBBBBBBBBB",
                 "expanded_url": "https://x.com/brand/status/3/photo/1",
                 "display_url": "pic.x.com/CCCCCCCCCC", "media_key": "3_9"}
            ]}
        }));
        assert_eq!(
            sent_text(&t, true).as_deref(),
            Some("Notes & slides https://example.com/n")
        );
        // Sent without media, this post (which has some) is not ours.
        assert_eq!(sent_text(&t, false), None);
        // Sent with media, a post without any is not ours.
        let plain = tweet(json!({"id": "4", "text": "Notes &amp; slides"}));
        assert_eq!(sent_text(&plain, true), None);
        // Media alone: the text is the media link only.
        let only = tweet(json!({
            "id": "5",
            "text": "https://t.co/BBBBBBBBBB",
            "entities": {"urls": [{"start": 0, "end": 23, "url": "https://t.co/BBBBBBBBBB",
                "expanded_url": "https://x.com/brand/status/5/photo/1", "media_key": "3_9"}]}
        }));
        assert_eq!(sent_text(&only, true).as_deref(), Some(""));
    }

    #[test]
    fn entities_decode_once_and_nothing_else_changes() {
        let t = tweet(json!({"id": "6", "text": "a &amp; b &lt;3 &gt; c &amp;lt; &quot;q&quot;"}));
        assert_eq!(
            sent_text(&t, false).as_deref(),
            Some("a & b <3 > c &lt; &quot;q&quot;")
        );
        // A link's own `&` is not decoded twice: the expanded URL is used as it is.
        let t = tweet(json!({
            "id": "7",
            "text": "x https://t.co/AAAAAAAAAA",
            "entities": {"urls": [{"url": "https://t.co/AAAAAAAAAA",
                "expanded_url": "https://example.com/?q=&amp;"}]}
        }));
        assert_eq!(
            sent_text(&t, false).as_deref(),
            Some("x https://example.com/?q=&amp;")
        );
    }
}
