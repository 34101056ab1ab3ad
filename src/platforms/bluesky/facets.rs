//! Bluesky rich text: where the links, mentions and hashtags are in a post, as UTF-8 byte
//! offsets (what `app.bsky.richtext.facet` indexes by). Pure: resolving a mention's handle to
//! a DID is the caller's job.

/// What a span of the text is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// A `http://` or `https://` link: the URI as written.
    Link(String),
    /// `@handle`: the handle without the `@`.
    Mention(String),
    /// `#tag`: the tag without the `#`.
    Tag(String),
}

/// One facet: bytes `start..end` of the text (the `@` and `#` included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub feature: Feature,
}

/// The longest tag Bluesky accepts, in characters (without the `#`).
const MAX_TAG: usize = 64;

/// Finds links, mentions and hashtags, in text order. A mention or tag starts the text or
/// follows whitespace or `(`; trailing punctuation is not part of any of them.
pub fn detect(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let at_word_start = text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '(');
        if at_word_start && (rest.starts_with("https://") || rest.starts_with("http://")) {
            let word = &rest[..word_len(rest)];
            let uri = trim_trailing(word, ".,;:!?'\"");
            let uri = trim_unbalanced_paren(uri);
            let scheme_len = if uri.starts_with("https://") { 8 } else { 7 };
            if uri.len() > scheme_len {
                spans.push(Span {
                    start: i,
                    end: i + uri.len(),
                    feature: Feature::Link(uri.to_owned()),
                });
                i += uri.len();
                continue;
            }
        } else if at_word_start && let Some(after) = rest.strip_prefix('@') {
            let handle_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                .unwrap_or(after.len());
            let handle = after[..handle_len].trim_end_matches(['.', '-']);
            if is_handle(handle) {
                spans.push(Span {
                    start: i,
                    end: i + 1 + handle.len(),
                    feature: Feature::Mention(handle.to_owned()),
                });
                i += 1 + handle.len();
                continue;
            }
        } else if at_word_start && let Some(after) = rest.strip_prefix('#') {
            let hash_len = rest.len() - after.len();
            let word = &after[..word_len(after)];
            let tag = trim_trailing(word, ".,;:!?'\"()[]{}<>");
            let tag = tag.split('#').next().unwrap_or("");
            if !tag.is_empty()
                && !tag.chars().all(|c| c.is_ascii_digit())
                && tag.chars().count() <= MAX_TAG
            {
                spans.push(Span {
                    start: i,
                    end: i + hash_len + tag.len(),
                    feature: Feature::Tag(tag.to_owned()),
                });
                i += hash_len + tag.len();
                continue;
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    spans
}

/// Bytes up to the next whitespace.
fn word_len(s: &str) -> usize {
    s.find(char::is_whitespace).unwrap_or(s.len())
}

fn trim_trailing<'a>(s: &'a str, punctuation: &str) -> &'a str {
    s.trim_end_matches(|c| punctuation.contains(c))
}

/// `(see https://example.com/a)`: the closing paren belongs to the sentence, unless the
/// link opened one itself (`https://en.wikipedia.org/wiki/Rust_(language)`).
fn trim_unbalanced_paren(uri: &str) -> &str {
    let mut uri = uri;
    while uri.ends_with(')') && uri.matches(')').count() > uri.matches('(').count() {
        uri = trim_trailing(&uri[..uri.len() - 1], ".,;:!?'\"");
    }
    uri
}

/// A domain-shaped handle: two or more labels of letters, digits and inner hyphens, the last
/// one not all digits.
fn is_handle(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && s.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|l| !l.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(start: usize, end: usize, uri: &str) -> Span {
        Span {
            start,
            end,
            feature: Feature::Link(uri.into()),
        }
    }
    fn mention(start: usize, end: usize, handle: &str) -> Span {
        Span {
            start,
            end,
            feature: Feature::Mention(handle.into()),
        }
    }
    fn tag(start: usize, end: usize, tag: &str) -> Span {
        Span {
            start,
            end,
            feature: Feature::Tag(tag.into()),
        }
    }

    #[test]
    fn spans_are_utf8_byte_offsets() {
        let cases: Vec<(&str, Vec<Span>)> = vec![
            ("", vec![]),
            ("no facets here", vec![]),
            (
                "see https://example.com",
                vec![link(4, 23, "https://example.com")],
            ),
            // "é" is 2 bytes: the link starts at byte 7, not character 6.
            (
                "café: https://example.com/a",
                vec![link(7, 28, "https://example.com/a")],
            ),
            // "👋" is 4 bytes, "🏽" 4 more.
            ("👋🏽 hi @alice.test", vec![mention(12, 23, "alice.test")]),
            ("Ünïcödé #launch", vec![tag(12, 19, "launch")]),
            (
                "🎉 new post https://x.example/p?q=1. with @bob.example.com and #news!",
                vec![
                    link(14, 37, "https://x.example/p?q=1"),
                    mention(44, 60, "bob.example.com"),
                    tag(65, 70, "news"),
                ],
            ),
            // Trailing punctuation and an unbalanced paren stay outside.
            (
                "(see https://example.com/a).",
                vec![link(5, 26, "https://example.com/a")],
            ),
            (
                "https://en.wikipedia.org/wiki/Rust_(language)",
                vec![link(0, 45, "https://en.wikipedia.org/wiki/Rust_(language)")],
            ),
            // A mention needs a dotted handle and a word start.
            ("mail me@example.com or @alice", vec![]),
            ("@alice.test.", vec![mention(0, 11, "alice.test")]),
            ("(@alice.test)", vec![mention(1, 12, "alice.test")]),
            // A tag is not all digits, not mid-word, and not over 64 characters.
            ("#1 and a#b and #2024", vec![]),
            ("#日本語 tags", vec![tag(0, 10, "日本語")]),
            ("#tag1#tag2", vec![tag(0, 5, "tag1")]),
            (
                &"#aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..66],
                vec![],
            ),
            ("https:// alone", vec![]),
            ("ftp://example.com", vec![]),
        ];
        for (text, want) in cases {
            let got = detect(text);
            assert_eq!(got, want, "in {text:?}");
            for s in &got {
                // Every span is on character boundaries and covers what it names.
                let covered = &text[s.start..s.end];
                match &s.feature {
                    Feature::Link(u) => assert_eq!(covered, u),
                    Feature::Mention(h) => assert_eq!(covered, format!("@{h}")),
                    Feature::Tag(t) => assert_eq!(covered, format!("#{t}")),
                }
            }
        }
    }
}
