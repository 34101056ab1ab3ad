//! Post length the way each network counts it: X's weighted count, Bluesky's graphemes,
//! Mastodon's characters with links counted as 23.

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use crate::core::policy::Platform;

/// Every link counts this much on X and Mastodon, whatever its real length.
pub const URL_LENGTH: usize = 23;

/// What a Mastodon instance says about its statuses (`GET /api/v2/instance`,
/// `configuration.statuses`): its length limit and what each link counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    pub max_characters: usize,
    pub characters_reserved_per_url: usize,
}

/// The limit of a network when the account does not set its own.
pub fn default_limit(platform: Platform) -> usize {
    match platform {
        Platform::X => 280,
        Platform::Bluesky => 300,
        Platform::Mastodon => 500,
    }
}

/// Whether `text` fits `limit` on `platform`, and its length when that needs counting: most
/// posts are far below the limit, and an upper bound settles them without segmenting.
pub fn fits(platform: Platform, text: &str, limit: usize) -> Result<(), usize> {
    // No count exceeds 2 per byte (X weighs a code point at most 2, and every code point is at
    // least one byte; graphemes and characters are fewer than bytes), plus 23 per link.
    let per_byte = if platform == Platform::X { 2 } else { 1 };
    let links = count_schemes(text);
    if text.len() * per_byte + URL_LENGTH * links <= limit {
        return Ok(());
    }
    let n = count(platform, text);
    if n <= limit { Ok(()) } else { Err(n) }
}

fn count_schemes(text: &str) -> usize {
    let mut n = 0;
    let mut rest = text;
    while let Some(i) = find_scheme(rest) {
        n += 1;
        rest = &rest[i + 4..];
    }
    n
}

/// The length of `text` as `platform` counts it against its limit.
pub fn count(platform: Platform, text: &str) -> usize {
    match platform {
        Platform::X => x_weighted(text),
        Platform::Bluesky => graphemes(text),
        Platform::Mastodon => mastodon(text),
    }
}

/// X (twitter-text v3): NFC, code points in a few Latin/punctuation ranges weigh 1 and all
/// others 2, an emoji sequence weighs 2 in all, a link weighs 23.
fn x_weighted(text: &str) -> usize {
    if text.is_ascii() {
        // Every ASCII code point weighs 1 and NFC leaves ASCII alone: only links differ.
        return split_urls(text)
            .iter()
            .map(|p| match p {
                Piece::Url => URL_LENGTH,
                Piece::Text(t) => t.len(),
            })
            .sum();
    }
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

/// Extended grapheme clusters, as `unicode-segmentation` counts them, but only the stretches
/// around non-ASCII characters go through the segmenter. Two adjacent ASCII characters other
/// than CR LF always have a cluster boundary between them (UAX #29 GB3, GB9–GB9b, GB999), so
/// each ASCII character outside those stretches is one cluster, and a CR LF pair is one.
pub fn graphemes(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut total = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some(offset) = bytes[i..].iter().position(|b| !b.is_ascii()) else {
            return total + ascii_clusters(&bytes[i..]);
        };
        let first = i + offset;
        // The island reaches one ASCII character to the left (it may take a combining mark),
        // two when that one is the LF of a CR LF, so the pair stays whole.
        let mut start = first;
        if start > i {
            start -= 1;
            if bytes[start] == b'\n' && start > i && bytes[start - 1] == b'\r' {
                start -= 1;
            }
        }
        total += ascii_clusters(&bytes[i..start]);
        // ... and one ASCII character to the right of its last non-ASCII character (a
        // Prepend character joins what follows), two when that one is the CR of a CR LF.
        let mut end = first;
        while end < bytes.len() && !bytes[end].is_ascii() {
            end += 1;
            while end < bytes.len() && !bytes[end].is_ascii() {
                end += 1;
            }
            if end < bytes.len() {
                end += 1;
                if bytes[end - 1] == b'\r' && end < bytes.len() && bytes[end] == b'\n' {
                    end += 1;
                }
            }
        }
        total += text[start..end].graphemes(true).count();
        i = end;
    }
    total
}

/// Clusters in pure ASCII: one per byte, except that CR LF is one.
fn ascii_clusters(bytes: &[u8]) -> usize {
    bytes.len() - bytes.windows(2).filter(|w| w == b"\r\n").count()
}

fn x_weight(c: char) -> usize {
    match u32::from(c) {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        _ => 2,
    }
}

fn is_emoji_sequence(g: &str) -> bool {
    g.chars()
        .any(|c| matches!(u32::from(c), 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF))
        && !g.chars().all(|c| x_weight(c) == 1)
}

/// Mastodon: grapheme clusters, a link counts 23, `@user@domain` counts as `@user`.
fn mastodon(text: &str) -> usize {
    mastodon_with(text, URL_LENGTH)
}

/// Mastodon's count with an instance's own `characters_reserved_per_url`.
pub fn mastodon_with(text: &str, url_length: usize) -> usize {
    let mut total = 0;
    for piece in split_urls(text) {
        match piece {
            Piece::Url => total += url_length,
            Piece::Text(t) => total += graphemes(&strip_mention_domains(t)),
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

/// The first `http://` or `https://`, in any case, without copying the text: `memmem` finds
/// each `://` and the scheme before it is compared.
fn find_scheme(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, b"://").find_map(|colon| {
        let ends = |scheme: &[u8]| {
            colon >= scheme.len() && bytes[colon - scheme.len()..colon].eq_ignore_ascii_case(scheme)
        };
        if ends(b"https") {
            Some(colon - 5)
        } else if ends(b"http") {
            Some(colon - 4)
        } else {
            None
        }
    })
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
            (
                "see https://example.com/a/very/long/path/indeed?x=1",
                4 + 23,
            ),
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
    fn mastodon_counts_links_as_the_instance_says() {
        let text = "read https://example.com/x/y/z/long";
        assert_eq!(mastodon_with(text, 23), count(Platform::Mastodon, text));
        assert_eq!(mastodon_with(text, 10), 5 + 10);
    }

    #[test]
    fn bluesky_counts_graphemes() {
        assert_eq!(count(Platform::Bluesky, "👨‍👩‍👧 hi"), 4);
        assert_eq!(count(Platform::Bluesky, "https://example.com"), 19);
        assert_eq!(count(Platform::Bluesky, "e\u{301}"), 1);
    }

    #[test]
    fn mastodon_counts_links_as_23() {
        assert_eq!(
            count(Platform::Mastodon, "read https://example.com/x/y/z/long"),
            5 + 23
        );
        assert_eq!(count(Platform::Mastodon, "日本語"), 3);
        assert_eq!(
            count(Platform::Mastodon, "hh HTTPS://EXAMPLE.COM/long/path/here"),
            3 + 23
        );
        // A remote mention counts without its domain; an e-mail address is not a mention.
        assert_eq!(count(Platform::Mastodon, "hi @carol@example.social!"), 10);
        assert_eq!(count(Platform::Mastodon, "mail a@b.co"), 11);
        assert_eq!(count(Platform::Mastodon, "@carol@example.social."), 7);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The fast count agrees with the segmenter on texts built from the characters where
        /// cluster rules bite: CR LF, combining and spacing marks, ZWJ emoji, flags, Hangul,
        /// Prepend characters next to ASCII.
        #[test]
        fn graphemes_match_the_segmenter(pieces in proptest::collection::vec(proptest::sample::select(vec![
            "a", "Z", " ", "\r", "\n", "\r\n", "1", "#", "*", "e\u{301}", "\u{301}", "\u{903}",
            "\u{600}", "\u{110BD}", "\u{200D}", "\u{1F468}", "\u{1F469}", "\u{1F3FD}", "\u{FE0F}",
            "\u{1F1EC}", "\u{1F1E7}", "\u{1100}", "\u{1161}", "\u{11A8}", "\u{AC00}", "é", "日",
            "\u{E0100}", "\u{0E33}", "\u{0915}\u{094D}\u{0937}",
        ]), 0..24)) {
            let text: String = pieces.concat();
            proptest::prop_assert_eq!(graphemes(&text), text.graphemes(true).count(), "{:?}", text);
        }
    }

    #[test]
    fn fits_agrees_with_count() {
        let texts = [
            "short".to_owned(),
            "a".repeat(280),
            "a".repeat(281),
            "日".repeat(140),
            "日".repeat(141),
            format!("{} https://a.co", "a".repeat(257)),
            format!("{} https://a.co", "a".repeat(256)),
            "👨‍👩‍👧".repeat(150),
        ];
        for platform in [Platform::X, Platform::Bluesky, Platform::Mastodon] {
            for limit in [280, 300, 500] {
                for text in &texts {
                    let n = count(platform, text);
                    let want = if n <= limit { Ok(()) } else { Err(n) };
                    assert_eq!(
                        fits(platform, text, limit),
                        want,
                        "{platform} {limit} {text:?}"
                    );
                }
            }
        }
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
