//! What `reply_to` may name on each network, and the form each adapter sends: Mastodon a
//! status id, X a post id, Bluesky an `at://` URI. Addresses copied from a browser are
//! accepted where the id can be read from them without asking the network.

use crate::core::policy::{Account, Platform};

/// The reply target `written` as `account`'s adapter takes it, or why it cannot be one.
pub fn reply_target(account: &Account, written: &str) -> Result<String, String> {
    let written = written.trim();
    match account.platform {
        Platform::Mastodon => mastodon(&account.server, written),
        Platform::X => x(written),
        Platform::Bluesky => bluesky(written),
    }
}

/// What each network's `reply_to` takes, for hints.
pub fn hint(platform: Platform) -> &'static str {
    match platform {
        Platform::Mastodon => {
            "on Mastodon, reply to a status id (`110123456789012345`) or the status's address on the account's own instance (`https://INSTANCE/@user/110123456789012345`)"
        }
        Platform::X => {
            "on X, reply to a post id (`1790000000000000000`) or its address (`https://x.com/USER/status/1790000000000000000`)"
        }
        Platform::Bluesky => {
            "on Bluesky, reply to a post's `at://DID/app.bsky.feed.post/RKEY` URI or its address (`https://bsky.app/profile/HANDLE/post/RKEY`)"
        }
    }
}

/// A status id (Mastodon's are digits; other servers use letters too), or the last path
/// segment of an address on the account's own instance: an id belongs to one instance.
fn mastodon(server: &str, written: &str) -> Result<String, String> {
    if is_id(written) {
        return Ok(written.to_owned());
    }
    let Ok(url) = url::Url::parse(written) else {
        return Err(format!("`{written}` is neither a status id nor an address"));
    };
    let own = url::Url::parse(server).ok();
    let same_host = own.as_ref().is_some_and(|own| {
        own.host_str() == url.host_str()
            && own.port_or_known_default() == url.port_or_known_default()
    });
    if !same_host {
        return Err(format!(
            "`{written}` is not on the account's instance `{server}`: a status id is known only to its own instance"
        ));
    }
    // `/@user/ID`, `/users/user/statuses/ID`, `/web/statuses/ID`, `/notice/ID` and the like.
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    match segments.as_slice() {
        [.., parent, id] if !parent.is_empty() && is_id(id) => Ok((*id).to_owned()),
        _ => Err(format!("`{written}` is not the address of a status")),
    }
}

fn is_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A post id, or `https://x.com/USER/status/ID` (also twitter.com, `/i/web/status/ID`).
fn x(written: &str) -> Result<String, String> {
    let digits = |t: &str| !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit());
    if digits(written) {
        return Ok(written.to_owned());
    }
    let Ok(url) = url::Url::parse(written) else {
        return Err(format!(
            "`{written}` is neither an X post id nor an address"
        ));
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.strip_prefix("www.").unwrap_or(host);
    let host = host.strip_prefix("mobile.").unwrap_or(host);
    if !matches!(host, "x.com" | "twitter.com") {
        return Err(format!("`{written}` is not an address on x.com"));
    }
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    match segments.as_slice() {
        [_, "status", id, ..] | ["i", "web", "status", id, ..] if digits(id) => {
            Ok((*id).to_owned())
        }
        _ => Err(format!("`{written}` is not the address of an X post")),
    }
}

/// The record collection of a Bluesky post.
pub const BLUESKY_POST: &str = "app.bsky.feed.post";

/// An `at://` URI of a post, or `https://bsky.app/profile/WHO/post/RKEY` (WHO a handle or a
/// DID: the PDS resolves a handle when it reads the parent).
fn bluesky(written: &str) -> Result<String, String> {
    let valid = |who: &str, rkey: &str| {
        !who.is_empty()
            && !rkey.is_empty()
            && who
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b))
            && rkey
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:~".contains(&b))
    };
    if let Some(rest) = written.strip_prefix("at://") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [who, collection, rkey] if *collection == BLUESKY_POST && valid(who, rkey) => {
                Ok(written.to_owned())
            }
            _ => Err(format!("`{written}` is not the at:// URI of a post")),
        };
    }
    let Ok(url) = url::Url::parse(written) else {
        return Err(format!(
            "`{written}` is neither a post's at:// URI nor an address"
        ));
    };
    if url.host_str() != Some("bsky.app") {
        return Err(format!("`{written}` is not an address on bsky.app"));
    }
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    match segments.as_slice() {
        ["profile", who, "post", rkey] if valid(who, rkey) => {
            Ok(format!("at://{who}/{BLUESKY_POST}/{rkey}"))
        }
        _ => Err(format!("`{written}` is not the address of a Bluesky post")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(platform: Platform, server: &str) -> Account {
        Account {
            name: "brand".into(),
            platform,
            server: server.into(),
            handle: None,
            reviewers_required: None,
            max_chars: None,
            banned_terms: crate::core::policy::TermLists::default(),
            oauth: crate::core::policy::OAuthSettings::default(),
        }
    }

    #[test]
    fn reply_targets_per_network() {
        let m = account(Platform::Mastodon, "https://mastodon.example");
        let x = account(Platform::X, "https://api.x.com");
        let b = account(Platform::Bluesky, "https://bsky.social");
        type Case<'a> = (&'a Account, &'a str, Result<&'a str, &'a str>);
        let cases: &[Case<'_>] = &[
            (&m, "110123456789012345", Ok("110123456789012345")),
            (&m, "01HZXAMPLE7", Ok("01HZXAMPLE7")),
            (
                &m,
                "https://mastodon.example/@brand/110123456789012345",
                Ok("110123456789012345"),
            ),
            (
                &m,
                "https://mastodon.example/users/brand/statuses/42",
                Ok("42"),
            ),
            (
                &m,
                "https://other.example/@brand/42",
                Err("is not on the account's instance"),
            ),
            (
                &m,
                "https://mastodon.example/@brand",
                Err("is not the address of a status"),
            ),
            (&m, "not an id", Err("neither a status id nor an address")),
            (&x, "1790000000000000000", Ok("1790000000000000000")),
            (
                &x,
                "https://x.com/brand/status/1790000000000000000?s=20",
                Ok("1790000000000000000"),
            ),
            (&x, "https://twitter.com/i/web/status/123", Ok("123")),
            (
                &x,
                "https://mastodon.example/@brand/1",
                Err("not an address on x.com"),
            ),
            (&x, "abc", Err("neither an X post id")),
            (
                &b,
                "at://did:plc:abc123/app.bsky.feed.post/3jzfcijpj2z2a",
                Ok("at://did:plc:abc123/app.bsky.feed.post/3jzfcijpj2z2a"),
            ),
            (
                &b,
                "https://bsky.app/profile/brand.example.com/post/3jzfcijpj2z2a",
                Ok("at://brand.example.com/app.bsky.feed.post/3jzfcijpj2z2a"),
            ),
            (
                &b,
                "at://did:plc:abc123/app.bsky.feed.like/3jzfcijpj2z2a",
                Err("not the at:// URI of a post"),
            ),
            (&b, "3jzfcijpj2z2a", Err("neither a post's at:// URI")),
        ];
        for (account, written, want) in cases {
            match (reply_target(account, written), want) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{written}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{written}: {got}"),
                (got, want) => panic!("{written}: got {got:?}, want {want:?}"),
            }
        }
    }
}
