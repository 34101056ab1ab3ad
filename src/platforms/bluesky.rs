//! Bluesky: `app.bsky.feed.post` records written to the account's PDS over XRPC.
//!
//! Exactly once: the delivery's key is a TID used as the record key, and the record is written
//! with `com.atproto.repo.putRecord` and `swapRecord: null` (create-if-absent). The record's
//! `createdAt` comes from the TID, so a retry sends the identical record: the PDS answers it
//! as a no-op, never a second post. Links, mentions and hashtags become facets on UTF-8 byte
//! offsets ([`facets`]); images are uploaded as blobs with their alt text.

pub mod dpop;
pub mod facets;
pub mod oauth;
pub mod session;
pub mod signin;
pub mod xrpc;

use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};

use self::facets::Feature;
use self::xrpc::{CallError, Xrpc, XrpcError};
use super::{Lookup, Outgoing, Published, Publisher, SendError};
use crate::core::policy::Account;
use crate::credential::Credential;
use crate::error::Error;

pub use self::session::usable_session;

/// The collection posts live in.
pub const POST: &str = crate::core::target::BLUESKY_POST;
/// Bluesky takes at most this many images in a post, each at most this many bytes.
pub const MAX_IMAGES: usize = 4;
pub const MAX_IMAGE_BYTES: usize = 1_000_000;

/// The Bluesky adapter for one account and its (usable) session.
pub struct Bluesky {
    xrpc: Xrpc,
    access: SecretString,
    did: String,
    handle: Option<String>,
}

impl Bluesky {
    /// An adapter for `account`; `session` comes from [`usable_session`].
    pub fn new(account: &Account, session: &Credential) -> Result<Bluesky, Error> {
        let did = session::did(session).ok_or_else(|| {
            Error::credentials(format!(
                "the stored credential of `{}` is not a Bluesky session",
                account.name
            ))
            .with_hint(format!(
                "sign in with `gate auth login {}` (or `--app-password`)",
                account.name
            ))
        })?;
        Ok(Bluesky {
            xrpc: session::xrpc_for(account, session)?,
            access: session.access_token.clone(),
            did: did.to_owned(),
            handle: session.identity.clone(),
        })
    }

    /// The DID the posts are written under.
    pub fn did(&self) -> &str {
        &self.did
    }

    fn published(&self, uri: &str) -> Published {
        let rkey = uri.rsplit('/').next().unwrap_or_default();
        let who = self.handle.as_deref().unwrap_or(&self.did);
        Published {
            id: uri.to_owned(),
            url: format!("https://bsky.app/profile/{who}/post/{rkey}"),
        }
    }

    /// The post record at `rkey` in this account's repo, if there is one.
    fn get_post(&self, rkey: &str) -> Result<Option<Value>, SendError> {
        match self.xrpc.query(
            "com.atproto.repo.getRecord",
            Some(&self.access),
            &[("repo", &self.did), ("collection", POST), ("rkey", rkey)],
        ) {
            Ok(v) => Ok(Some(v)),
            Err(CallError::Xrpc(e)) if e.status == 400 && e.error == "RecordNotFound" => Ok(None),
            Err(e) => Err(after_send(e)),
        }
    }

    /// The post at the delivery's record key: `None` when there is none; an error when
    /// another post holds the key.
    fn lookup(&self, post: &Outgoing<'_>) -> Result<Option<Published>, SendError> {
        let Some(v) = self.get_post(post.key)? else {
            return Ok(None);
        };
        if v.pointer("/value/text").and_then(Value::as_str) != Some(post.text) {
            return Err(SendError::Refused {
                status: 409,
                message: format!("another post already has the record key `{}`", post.key),
            });
        }
        let uri = v.get("uri").and_then(Value::as_str).unwrap_or_default();
        Ok(Some(self.published(uri)))
    }

    /// `@handle` → DID; `None` when the handle does not resolve (the mention stays plain text).
    fn resolve(&self, handle: &str) -> Result<Option<String>, SendError> {
        match self.xrpc.query(
            "com.atproto.identity.resolveHandle",
            Some(&self.access),
            &[("handle", handle)],
        ) {
            Ok(v) => Ok(v.get("did").and_then(Value::as_str).map(str::to_owned)),
            Err(CallError::Xrpc(e)) if e.status == 400 => Ok(None),
            Err(e) => Err(before_send(e)),
        }
    }

    fn facets(&self, text: &str) -> Result<Vec<Value>, SendError> {
        let mut out = Vec::new();
        for span in facets::detect(text) {
            let feature = match span.feature {
                Feature::Link(uri) => json!({"$type": "app.bsky.richtext.facet#link", "uri": uri}),
                Feature::Tag(tag) => json!({"$type": "app.bsky.richtext.facet#tag", "tag": tag}),
                Feature::Mention(handle) => match self.resolve(&handle)? {
                    Some(did) => json!({"$type": "app.bsky.richtext.facet#mention", "did": did}),
                    None => continue,
                },
            };
            out.push(json!({
                "index": {"byteStart": span.start, "byteEnd": span.end},
                "features": [feature],
            }));
        }
        Ok(out)
    }

    fn images(&self, post: &Outgoing<'_>) -> Result<Option<Value>, SendError> {
        if post.media.is_empty() {
            return Ok(None);
        }
        let images = super::upload_each(post, |m| {
            let blob = self
                .xrpc
                .upload(
                    "com.atproto.repo.uploadBlob",
                    &self.access,
                    &m.mime,
                    &m.bytes,
                )
                .map_err(before_send)?;
            let Some(blob) = blob.get("blob").cloned() else {
                return Err(SendError::Refused {
                    status: 0,
                    message: format!(
                        "the PDS did not return a blob for `{}`; nothing was posted",
                        m.name
                    ),
                });
            };
            Ok(json!({"alt": m.alt.clone().unwrap_or_default(), "image": blob}))
        })?;
        Ok(Some(
            json!({"$type": "app.bsky.embed.images", "images": images}),
        ))
    }

    /// `reply` for a reply to `parent` (an at:// URI, by DID or handle): the parent and its
    /// thread's root.
    fn reply(&self, parent: &str) -> Result<Value, SendError> {
        let parts: Vec<&str> = parent
            .strip_prefix("at://")
            .unwrap_or("")
            .split('/')
            .collect();
        let [repo, collection, rkey] = parts[..] else {
            return Err(refused_locally(format!(
                "`{parent}` is not a post's at:// URI"
            )));
        };
        let v = self
            .xrpc
            .query(
                "com.atproto.repo.getRecord",
                Some(&self.access),
                &[("repo", repo), ("collection", collection), ("rkey", rkey)],
            )
            .map_err(before_send)?;
        // The PDS names the record by its DID even when `parent` names a handle (an address
        // copied from bsky.app); a strong reference needs the DID form and the CID.
        let (Some(uri), Some(cid)) = (
            v.get("uri").and_then(Value::as_str),
            v.get("cid").and_then(Value::as_str),
        ) else {
            return Err(refused_locally(format!(
                "the PDS did not return the uri and cid of `{parent}`; nothing was posted"
            )));
        };
        let parent_ref = json!({"uri": uri, "cid": cid});
        let root = v
            .pointer("/value/reply/root")
            .cloned()
            .unwrap_or_else(|| parent_ref.clone());
        Ok(json!({"root": root, "parent": parent_ref}))
    }
}

/// Checks what Bluesky would refuse, before anything is uploaded.
pub fn check_media(media: &[super::Media]) -> Result<(), String> {
    if media.len() > MAX_IMAGES {
        return Err(format!(
            "Bluesky takes at most {MAX_IMAGES} images in a post; this one has {}",
            media.len()
        ));
    }
    for m in media {
        if m.bytes.len() > MAX_IMAGE_BYTES {
            return Err(format!(
                "`{}` is {} bytes; Bluesky takes images of at most {MAX_IMAGE_BYTES} bytes",
                m.name,
                m.bytes.len()
            ));
        }
        if !m.mime.starts_with("image/") {
            return Err(format!(
                "`{}` is `{}`; Bluesky posts take images only",
                m.name, m.mime
            ));
        }
    }
    Ok(())
}

fn refused_locally(message: String) -> SendError {
    SendError::Refused { status: 0, message }
}

/// An error before the record was written: nothing was posted.
fn before_send(e: CallError) -> SendError {
    match e {
        CallError::Transport(e) if e.is_connect() => SendError::Refused {
            status: super::NOT_CONNECTED,
            message: crate::http::describe(&e),
        },
        CallError::Transport(e) => {
            refused_locally(format!("{}; nothing was posted", crate::http::describe(&e)))
        }
        CallError::Xrpc(e) => classify(e),
    }
}

/// An error from the record write itself (or a read after it): a lost answer is unknown.
fn after_send(e: CallError) -> SendError {
    match e {
        CallError::Transport(e) if e.is_connect() => SendError::Refused {
            status: super::NOT_CONNECTED,
            message: crate::http::describe(&e),
        },
        CallError::Transport(e) => SendError::Unknown {
            message: crate::http::describe(&e),
        },
        CallError::Xrpc(e) => classify(e),
    }
}

fn classify(e: XrpcError) -> SendError {
    let message = e.describe();
    match e.status {
        401 => SendError::Credentials { message },
        400 if matches!(e.error.as_str(), "ExpiredToken" | "InvalidToken") => {
            SendError::Credentials { message }
        }
        429 => SendError::RateLimited {
            retry_after: e.reset.and_then(|reset| {
                let secs = reset - Utc::now().timestamp();
                u64::try_from(secs).ok().map(Duration::from_secs)
            }),
            message,
        },
        400..=499 => SendError::Refused {
            status: e.status,
            message,
        },
        _ => SendError::Unknown { message },
    }
}

impl Publisher for Bluesky {
    fn new_key(&self, _delivery: &str) -> String {
        tid::next()
    }

    fn publish(&self, post: &Outgoing<'_>) -> Result<Published, SendError> {
        let Some(created) = tid::time(post.key) else {
            return Err(refused_locally(format!(
                "`{}` is not a TID record key",
                post.key
            )));
        };
        super::public_only("bluesky", post)?;
        check_media(post.media).map_err(refused_locally)?;
        let mut record = json!({
            "$type": POST,
            "text": post.text,
            "createdAt": created.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        let facets = self.facets(post.text)?;
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        if let Some(lang) = post.language {
            record["langs"] = json!([lang]);
        }
        if let Some(parent) = post.reply_to {
            record["reply"] = self.reply(parent)?;
        }
        if let Some(embed) = self.images(post)? {
            record["embed"] = embed;
        }
        let body = json!({
            "repo": self.did,
            "collection": POST,
            "rkey": post.key,
            "record": record,
            "swapRecord": null,
        });
        match self.xrpc.procedure(
            "com.atproto.repo.putRecord",
            Some(&self.access),
            Some(&body),
        ) {
            Ok(v) => match v.get("uri").and_then(Value::as_str) {
                Some(uri) => Ok(self.published(uri)),
                None => Err(SendError::Unknown {
                    message: "the PDS accepted the post without naming it".into(),
                }),
            },
            // A record already has this key: an earlier attempt of this same delivery.
            Err(CallError::Xrpc(e)) if e.error == "InvalidSwap" => match self.lookup(post)? {
                Some(found) => Ok(found),
                None => Err(SendError::Unknown {
                    message: e.describe(),
                }),
            },
            Err(e) => Err(after_send(e)),
        }
    }

    /// The record key is the delivery's own TID: `getRecord` at it cannot mistake another
    /// post for this one, so the answer is always certain.
    fn find(
        &self,
        post: &Outgoing<'_>,
        _since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Lookup, SendError> {
        Ok(self.lookup(post)?.map_or(Lookup::Absent, Lookup::Found))
    }

    fn delete(&self, id: &str) -> Result<(), SendError> {
        let rkey = id
            .strip_prefix(&format!("at://{}/{POST}/", self.did))
            .ok_or_else(|| refused_locally(format!("`{id}` is not a post of this account")))?;
        self.xrpc
            .procedure(
                "com.atproto.repo.deleteRecord",
                Some(&self.access),
                Some(&json!({"repo": self.did, "collection": POST, "rkey": rkey})),
            )
            .map(|_| ())
            .map_err(after_send)
    }

    fn whoami(&self) -> Result<String, SendError> {
        let v = self
            .xrpc
            .query("com.atproto.server.getSession", Some(&self.access), &[])
            .map_err(before_send)?;
        Ok(v.get("handle")
            .and_then(Value::as_str)
            .map_or_else(|| self.did.clone(), str::to_owned))
    }
}

/// Timestamp identifiers: 53 bits of microseconds since 1970 and 10 bits of clock id, in
/// base32-sortable, 13 characters. They sort by time and make valid record keys.
pub mod tid {
    use std::sync::atomic::{AtomicU64, Ordering};

    use chrono::{DateTime, Utc};

    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    static LAST: AtomicU64 = AtomicU64::new(0);

    /// A new TID, strictly greater than any this process made before.
    pub fn next() -> String {
        let now = Utc::now().timestamp_micros().max(0).cast_unsigned();
        let mut last = LAST.load(Ordering::Relaxed);
        let micros = loop {
            let candidate = now.max(last + 1);
            match LAST.compare_exchange(last, candidate, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break candidate,
                Err(seen) => last = seen,
            }
        };
        let clock = u64::from(std::process::id()) & 0x3ff;
        encode(((micros & ((1 << 53) - 1)) << 10) | clock)
    }

    pub fn encode(value: u64) -> String {
        (0..13)
            .rev()
            .map(|i| char::from(ALPHABET[((value >> (i * 5)) & 31) as usize]))
            .collect()
    }

    pub fn decode(tid: &str) -> Option<u64> {
        if tid.len() != 13 {
            return None;
        }
        let mut value: u64 = 0;
        for b in tid.bytes() {
            let digit = ALPHABET.iter().position(|&a| a == b)? as u64;
            value = (value << 5) | digit;
        }
        (value >> 63 == 0).then_some(value)
    }

    /// When the TID was made.
    pub fn time(tid: &str) -> Option<DateTime<Utc>> {
        let micros = decode(tid)? >> 10;
        DateTime::from_timestamp_micros(i64::try_from(micros).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::Media;

    #[test]
    fn tids_are_13_sortable_characters_that_carry_their_time() {
        let a = tid::next();
        let b = tid::next();
        assert_eq!(a.len(), 13);
        assert!(a < b, "{a} < {b}");
        assert_eq!(
            tid::decode(&tid::encode(0x1234_5678_9abc)),
            Some(0x1234_5678_9abc)
        );
        let t = tid::time(&a).unwrap();
        assert!((Utc::now() - t).num_seconds().abs() < 5);
        // The atproto spec's example TID, as @atproto/common-web reads it: 1688137381887007 µs.
        assert_eq!(
            tid::time("3jzfcijpj2z2a").unwrap().timestamp_micros(),
            1_688_137_381_887_007
        );
        assert!(tid::decode("3jzfcijpj2z2").is_none());
        assert!(
            tid::decode("3jzfcijpj2z21").is_none(),
            "1 is not in the alphabet"
        );
        assert!(
            tid::decode("zzzzzzzzzzzzz").is_none(),
            "the top bit is always 0"
        );
    }

    fn media(n: usize, bytes: usize, mime: &str) -> Vec<Media> {
        (0..n)
            .map(|i| Media {
                name: format!("img{i}.png"),
                bytes: vec![0; bytes],
                mime: mime.into(),
                alt: None,
            })
            .collect()
    }

    #[test]
    fn media_limits_are_checked_before_upload() {
        assert_eq!(check_media(&media(4, MAX_IMAGE_BYTES, "image/png")), Ok(()));
        assert_eq!(
            check_media(&media(5, 10, "image/png")).unwrap_err(),
            "Bluesky takes at most 4 images in a post; this one has 5"
        );
        assert_eq!(
            check_media(&media(1, MAX_IMAGE_BYTES + 1, "image/jpeg")).unwrap_err(),
            "`img0.png` is 1000001 bytes; Bluesky takes images of at most 1000000 bytes"
        );
        assert_eq!(
            check_media(&media(1, 10, "video/mp4")).unwrap_err(),
            "`img0.png` is `video/mp4`; Bluesky posts take images only"
        );
    }

    #[test]
    fn errors_are_sorted_by_what_they_mean_for_a_retry() {
        let e = |status, error: &str| XrpcError {
            status,
            error: error.into(),
            message: String::new(),
            reset: None,
        };
        assert!(matches!(
            classify(e(401, "AuthenticationRequired")),
            SendError::Credentials { .. }
        ));
        assert!(matches!(
            classify(e(400, "ExpiredToken")),
            SendError::Credentials { .. }
        ));
        assert!(matches!(
            classify(e(400, "InvalidRequest")),
            SendError::Refused { status: 400, .. }
        ));
        assert!(matches!(
            classify(e(429, "RateLimitExceeded")),
            SendError::RateLimited {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(classify(e(502, "")), SendError::Unknown { .. }));
    }
}
