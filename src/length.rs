//! Post length the way each network counts it: X's weighted count, Bluesky's graphemes,
//! Mastodon's characters with links counted as 23.

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use crate::policy::Platform;

/// Every link counts this much on X and Mastodon, whatever its real length.
pub const URL_LENGTH: usize = 23;

/// The limit of a network when the account does not set its own.
pub fn default_limit(platform: Platform) -> usize {
    match platform {
        Platform::X => 280,
        Platform::Bluesky => 300,
        Platform::Mastodon => 500,
    }
}

/// The length of `text` as `platform` counts it against its limit.
pub fn count(platform: Platform, text: &str) -> usize {
    match platform {
        Platform::X => x_weighted(text),
        Platform::Bluesky => text.graphemes(true).count(),
        Platform::Mastodon => mastodon(text),
    }
}

/// X (twitter-text v3): NFC, code points in a few Latin/punctuation ranges weigh 1 and all
/// others 2, an emoji sequence weighs 2 in all, a link weighs 23.
fn x_weighted(text: &str) -> usize {
    let text: String = text.nfc().collect();
    let mut total = 0;
    for piece in split_urls(&text) {
        match piece {
            Piece::Url => total += URL_LENGTH,
            Piece::Text(t) => {
                for g in t.graphemes(true) {
                    if is_emoji_sequence(g) {
                        total += 2;
                    } else {
                        total += g.chars().map(x_weight).sum::<usize>();
                    }
                }
            }
        }
    }
    total
}

fn x_weight(c: char) -> usize {
    match u32::from(c) {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        _ => 2,
    }
}

fn is_emoji_sequence(g: &str) -> bool {
    g.chars().any(|c| {
        matches!(u32::from(c), 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF)
    }) && !g.chars().all(|c| x_weight(c) == 1)
}

/// Mastodon: grapheme clusters, a link counts 23, `@user@domain` counts as `@user`.
fn mastodon(text: &str) -> usize {
    let mut total = 0;
    for piece in split_urls(text) {
        match piece {
            Piece::Url => total += URL_LENGTH,
            Piece::Text(t) => total += strip_mention_domains(t).graphemes(true).count(),
        }
    }
    total
}

/// `@user@example.social` → `@user`: Mastodon does not count a remote mention's domain.
fn strip_mention_domains(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('@') {
        return std::borrow::Cow::Borrowed(text);
    }
    let is_user = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let is_domain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let starts_word = rest[..at].chars().next_back().is_none_or(|c| !is_user(c));
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        if !starts_word {
            continue;
        }
        let user_len = rest.find(|c| !is_user(c)).unwrap_or(rest.len());
        if user_len == 0 || !rest[user_len..].starts_with('@') {
            continue;
        }
        let domain = &rest[user_len + 1..];
        let domain_len = domain.find(|c| !is_domain(c)).unwrap_or(domain.len());
        let domain_len = domain[..domain_len].trim_end_matches(['.', '-']).len();
        if domain_len == 0 || !domain[..domain_len].contains('.') {
            continue;
        }
        out.push_str(&rest[..user_len]);
        rest = &domain[domain_len..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

enum Piece<'a> {
    Text(&'a str),
    Url,
}

/// Splits text into plain stretches and links (`http://` or `https://` up to whitespace,
/// without trailing punctuation that ends a sentence).
fn split_urls(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(found) = find_scheme(rest) {
        let start = found;
        let tail = &rest[start..];
        let mut end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        while end > 0 && tail[..end].ends_with(['.', ',', ';', ':', '!', '?', ')', '"', '\'']) {
            end -= 1;
        }
        let scheme_len = if tail.starts_with("https://") { 8 } else { 7 };
        if end <= scheme_len {
            pieces.push(Piece::Text(&rest[..start + scheme_len]));
            rest = &rest[start + scheme_len..];
            continue;
        }
        if start > 0 {
            pieces.push(Piece::Text(&rest[..start]));
        }
        pieces.push(Piece::Url);
        rest = &tail[end..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    pieces
}

fn find_scheme(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let a = lower.find("https://");
    let b = lower.find("http://");
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_counts_like_twitter_text() {
        let cases: &[(&str, usize)] = &[
            ("hello", 5),
            ("", 0),
            // CJK weighs 2 each.
            ("日本語", 6),
            // A link is 23 however long.
            ("see https://example.com/a/very/long/path/indeed?x=1", 4 + 23),
            ("https://a.co.", 23 + 1),
            // One emoji with a skin tone and a ZWJ family each weigh 2.
            ("👍🏽", 2),
            ("👨‍👩‍👧", 2),
            // Accented Latin is 1 each; decomposed input is composed first.
            ("cafe\u{301}", 4),
            ("\u{2019}", 1),
        ];
        for (text, want) in cases {
            assert_eq!(count(Platform::X, text), *want, "{text:?}");
        }
    }

    #[test]
    fn bluesky_counts_graphemes() {
        assert_eq!(count(Platform::Bluesky, "👨‍👩‍👧 hi"), 4);
        assert_eq!(count(Platform::Bluesky, "https://example.com"), 19);
        assert_eq!(count(Platform::Bluesky, "e\u{301}"), 1);
    }

    #[test]
    fn mastodon_counts_links_as_23() {
        assert_eq!(count(Platform::Mastodon, "read https://example.com/x/y/z/long"), 5 + 23);
        assert_eq!(count(Platform::Mastodon, "日本語"), 3);
        // A remote mention counts without its domain; an e-mail address is not a mention.
        assert_eq!(count(Platform::Mastodon, "hi @carol@example.social!"), 10);
        assert_eq!(count(Platform::Mastodon, "mail a@b.co"), 11);
        assert_eq!(count(Platform::Mastodon, "@carol@example.social."), 7);
    }

    #[test]
    fn limits() {
        assert_eq!(default_limit(Platform::X), 280);
        assert_eq!(default_limit(Platform::Bluesky), 300);
        assert_eq!(default_limit(Platform::Mastodon), 500);
        let long = "a".repeat(281);
        assert_eq!(count(Platform::X, &long), 281);
    }
}
