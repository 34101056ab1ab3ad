//! Link rules: which domains a post may link to. Links are found by their scheme
//! (`http://`, `https://`) or a leading `www.`; a bare domain counts as a link only when a
//! rule names it (a shortener, or a denied domain), so `v2.0` or `notes.txt` never is.

use std::ops::Range;

/// URL shorteners hide where a link goes, which is how phishing and hijacked accounts spread
/// links; gate flags them unless the policy says otherwise.
pub const SHORTENERS: &[&str] = &[
    "bit.ly",
    "bitly.com",
    "buff.ly",
    "cutt.ly",
    "goo.gl",
    "is.gd",
    "lnkd.in",
    "ow.ly",
    "rb.gy",
    "rebrand.ly",
    "shorturl.at",
    "t.co",
    "t.ly",
    "tiny.cc",
    "tinyurl.com",
    "v.gd",
];

/// A domain rule as written: `example.com` covers the domain and every subdomain,
/// `*.example.com` only the subdomains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    domain: String,
    subdomains_only: bool,
}

impl DomainPattern {
    /// Parses `example.com` or `*.example.com`; `None` when it is not a domain name.
    pub fn parse(text: &str) -> Option<DomainPattern> {
        let text = text.trim().to_lowercase();
        let (domain, subdomains_only) = match text.strip_prefix("*.") {
            Some(rest) => (rest.to_owned(), true),
            None => (text, false),
        };
        let valid = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        valid.then_some(DomainPattern {
            domain,
            subdomains_only,
        })
    }

    pub fn matches(&self, host: &str) -> bool {
        let subdomain = host.len() > self.domain.len()
            && host.ends_with(&self.domain)
            && host.as_bytes()[host.len() - self.domain.len() - 1] == b'.';
        subdomain || (!self.subdomains_only && host == self.domain)
    }
}

/// How known shorteners are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shorteners {
    Deny,
    Warn,
    Allow,
}

/// The `[links]` table.
#[derive(Debug, Clone)]
pub struct LinkRules {
    /// When not empty, every link must match one of these.
    pub allow: Vec<DomainPattern>,
    pub deny: Vec<DomainPattern>,
    pub shorteners: Shorteners,
}

impl Default for LinkRules {
    fn default() -> Self {
        LinkRules {
            allow: Vec::new(),
            deny: Vec::new(),
            shorteners: Shorteners::Warn,
        }
    }
}

/// A link found in a post: its byte span in the text and its host, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub span: Range<usize>,
    pub host: String,
}

/// What a rule says about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Denied(String),
    NotAllowed,
    Shortener(Shorteners),
}

impl LinkRules {
    /// Every link that a rule objects to, with why.
    pub fn judge(&self, text: &str) -> Vec<(Link, Judgement)> {
        let shortener = |host: &str| {
            SHORTENERS.iter().any(|s| {
                host.strip_suffix(s)
                    .is_some_and(|p| p.is_empty() || p.ends_with('.'))
            })
        };
        let mut out = Vec::new();
        for link in find_links(text, |host| {
            shortener(host) || self.deny.iter().any(|p| p.matches(host))
        }) {
            let host = link.host.as_str();
            if let Some(p) = self.deny.iter().find(|p| p.matches(host)) {
                let written = if p.subdomains_only {
                    format!("*.{}", p.domain)
                } else {
                    p.domain.clone()
                };
                out.push((link, Judgement::Denied(written)));
            } else if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(host)) {
                out.push((link, Judgement::NotAllowed));
            } else if shortener(host) && self.shorteners != Shorteners::Allow {
                out.push((link, Judgement::Shortener(self.shorteners)));
            }
        }
        out
    }
}

/// Links in `text`: anything starting `http://`, `https://` or `www.` up to white space (less
/// trailing sentence punctuation), and bare `domain/...` words that `bare` accepts.
pub fn find_links(text: &str, bare: impl Fn(&str) -> bool) -> Vec<Link> {
    let mut links = Vec::new();
    // Every link has a dot in its host (`://` and `www.` included): only the words around a
    // dot are looked at, so a post costs a `memchr` pass plus a little per dotted word.
    let mut from = 0;
    while let Some(offset) = memchr::memchr(b'.', &text.as_bytes()[from..]) {
        let dot = from + offset;
        let start = text[..dot].rfind(char::is_whitespace).map_or(0, |i| {
            i + text[i..].chars().next().map_or(1, char::len_utf8)
        });
        let end = text[dot..]
            .find(char::is_whitespace)
            .map_or(text.len(), |i| dot + i);
        if let Some(link) = link_in(text, start, end, &bare) {
            links.push(link);
        }
        from = end;
    }
    links
}

/// The link the word `text[start..end]` holds, if any: `http://`, `https://` or `www.` up to
/// its end (less trailing sentence punctuation), or a bare `domain/...` that `bare` accepts.
fn link_in(text: &str, start: usize, end: usize, bare: &impl Fn(&str) -> bool) -> Option<Link> {
    let word = &text[start..end];
    // Leading punctuation such as `(` or `"` is not part of a link.
    let lead = word.len()
        - word
            .trim_start_matches(['(', '[', '"', '\'', '<', '«', '“'])
            .len();
    let candidate = word[lead..].trim_end_matches([
        '.', ',', ';', ':', '!', '?', ')', ']', '"', '\'', '>', '»', '”',
    ]);
    if !candidate.contains('.') {
        return None;
    }
    let lower = candidate.to_lowercase();
    let span = start + lead..start + lead + candidate.len();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest) => host_of(rest).map(|host| Link { span, host }),
        None if lower.starts_with("www.") => host_of(&lower).map(|host| Link { span, host }),
        None => host_of(&lower)
            .filter(|h| h.contains('.') && bare(h))
            .map(|host| Link { span, host }),
    }
}

/// The host of `rest` = what follows the scheme: up to `/`, `?`, `#` or a port, without
/// user info, lower-cased, without a trailing dot.
fn host_of(rest: &str) -> Option<String> {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("").trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str], shorteners: Shorteners) -> LinkRules {
        LinkRules {
            allow: allow
                .iter()
                .map(|d| DomainPattern::parse(d).unwrap())
                .collect(),
            deny: deny
                .iter()
                .map(|d| DomainPattern::parse(d).unwrap())
                .collect(),
            shorteners,
        }
    }

    #[test]
    fn finds_links_with_spans() {
        let text =
            "See (https://Example.com/a?b=1). Or www.shop.example.com, bit.ly/x and v2.0 notes.txt";
        let links = find_links(text, |h| SHORTENERS.contains(&h));
        let found: Vec<(&str, &str)> = links
            .iter()
            .map(|l| (&text[l.span.clone()], l.host.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("https://Example.com/a?b=1", "example.com"),
                ("www.shop.example.com", "www.shop.example.com"),
                ("bit.ly/x", "bit.ly"),
            ]
        );
    }

    #[test]
    fn hosts_drop_user_info_ports_and_trailing_dots() {
        assert_eq!(
            host_of("user:pw@Evil.example:8443/x").as_deref(),
            Some("Evil.example")
        );
        assert_eq!(host_of("example.com./").as_deref(), Some("example.com"));
        assert_eq!(host_of("/nothing"), None);
    }

    #[test]
    fn domain_patterns() {
        let apex = DomainPattern::parse("Example.com").unwrap();
        assert!(apex.matches("example.com"));
        assert!(apex.matches("shop.example.com"));
        assert!(!apex.matches("badexample.com"));
        assert!(!apex.matches("example.com.evil.net"));
        let sub = DomainPattern::parse("*.example.com").unwrap();
        assert!(sub.matches("a.b.example.com"));
        assert!(!sub.matches("example.com"));
        for bad in [
            "",
            "example",
            ".com",
            "exa mple.com",
            "-a.com",
            "a..com",
            "*.",
            "http://x.com",
        ] {
            assert_eq!(DomainPattern::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn judgements() {
        let r = rules(&["example.com"], &["*.evil.example"], Shorteners::Warn);
        let text = "https://example.com/ok https://news.example.com https://other.org https://x.evil.example bit.ly/abc";
        let got: Vec<(&str, Judgement)> = r
            .judge(text)
            .into_iter()
            .map(|(l, j)| (&text[l.span], j))
            .collect();
        assert_eq!(
            got,
            [
                ("https://other.org", Judgement::NotAllowed),
                (
                    "https://x.evil.example",
                    Judgement::Denied("*.evil.example".into())
                ),
                ("bit.ly/abc", Judgement::NotAllowed),
            ]
        );
        // Without an allow list, the shortener is flagged as such; `allow` silences it.
        let r = rules(&[], &[], Shorteners::Deny);
        assert_eq!(r.judge("go to https://t.co/xyz").len(), 1);
        assert_eq!(
            rules(&[], &[], Shorteners::Allow).judge("https://t.co/xyz"),
            []
        );
    }
}
