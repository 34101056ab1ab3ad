//! The policy reader, case by case: each row is a policy and what `policy::parse` must say of
//! it: the first error's line, column and words, or that it is valid.

use super::diagnostic::Source;
use super::policy::{self, Platform};

/// What a row expects.
enum Expect {
    /// Valid, and this holds of the policy.
    Valid(fn(&policy::Policy) -> bool),
    /// Invalid: an error at (line, column) whose message contains the words.
    Error(usize, usize, &'static str),
    /// Valid, with a warning at (line, column) whose message contains the words.
    Warning(usize, usize, &'static str),
}
use Expect::{Error, Valid, Warning};

const MASTODON: &str =
    "[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n";

fn cases() -> Vec<(&'static str, String, Expect)> {
    let v = |rest: &str| format!("version = 1\n{rest}");
    vec![
        (
            "the smallest policy",
            v(""),
            Valid(|p| p.accounts.is_empty()),
        ),
        (
            "no version",
            "timezone = \"UTC\"\n".into(),
            Error(1, 1, "no `version`"),
        ),
        (
            "a version that is not 1",
            "version = 2\n".into(),
            Error(1, 11, "version"),
        ),
        (
            "a version that is a string",
            "version = \"1\"\n".into(),
            Error(1, 11, "version"),
        ),
        (
            "not TOML",
            "version = 1\n[accounts\n".into(),
            Error(2, 10, ""),
        ),
        (
            "an unknown top-level key",
            v("colour = \"red\"\n"),
            Error(2, 1, "colour"),
        ),
        (
            "a mastodon account",
            v(MASTODON),
            Valid(|p| {
                p.account("brand").is_some_and(|a| {
                    a.platform == Platform::Mastodon && a.server == "https://m.example"
                })
            }),
        ),
        (
            "a mastodon account without a server",
            v("[accounts.brand]\nplatform = \"mastodon\"\n"),
            Error(2, 11, "has no `server`"),
        ),
        (
            "an unknown platform",
            v("[accounts.brand]\nplatform = \"myspace\"\n"),
            Error(3, 12, "myspace"),
        ),
        (
            "bluesky's server defaults",
            v("[accounts.b]\nplatform = \"bluesky\"\nhandle = \"b.bsky.social\"\n"),
            Valid(|p| {
                p.account("b")
                    .is_some_and(|a| a.server == "https://bsky.social")
            }),
        ),
        (
            "x's server defaults",
            v("[accounts.x]\nplatform = \"x\"\n"),
            Valid(|p| {
                p.account("x")
                    .is_some_and(|a| a.server == "https://api.x.com")
            }),
        ),
        (
            "an unknown account key",
            v(&format!("{MASTODON}colour = 1\n")),
            Error(5, 1, "colour"),
        ),
        (
            "banned terms, every list",
            v(
                "[banned_terms]\ndeny = [\"layoffs\"]\nwarn = [\"guaranteed\"]\nallow = [\"kill switch\"]\nregex = ['free\\s+phones?']\n",
            ),
            Valid(|p| {
                p.banned_terms.deny.len() == 1
                    && p.banned_terms.warn.len() == 1
                    && p.banned_terms.allow.len() == 1
            }),
        ),
        (
            "a term that is not a string",
            v("[banned_terms]\ndeny = [\"ok\", 3]\n"),
            Error(3, 15, "string"),
        ),
        (
            "a term with no letters",
            v("[banned_terms]\ndeny = [\"--\"]\n"),
            Warning(3, 9, "never matches"),
        ),
        (
            "a regex that does not compile",
            v("[banned_terms]\nregex = ['(unclosed']\n"),
            Error(3, 10, ""),
        ),
        (
            "quiet hours need a time zone",
            v("[[quiet_hours]]\nfrom = \"22:00\"\nto = \"07:00\"\n"),
            Error(2, 1, "time zone"),
        ),
        (
            "an unknown time zone",
            v("timezone = \"Mars/Olympus\"\n"),
            Error(2, 12, "Mars/Olympus"),
        ),
        (
            "quiet hours with a zone",
            v("timezone = \"Europe/London\"\n[[quiet_hours]]\nfrom = \"22:00\"\nto = \"07:00\"\n"),
            Valid(|p| p.timezone.is_some()),
        ),
        (
            "a quiet hour that is not a time",
            v("timezone = \"UTC\"\n[[quiet_hours]]\nfrom = \"25:00\"\nto = \"07:00\"\n"),
            Error(4, 8, "25:00"),
        ),
        (
            "a rate limit of zero",
            v("[limits]\nmax_posts_per_hour = 0\n"),
            Error(3, 22, ""),
        ),
        (
            "a rate limit",
            v("[limits]\nmax_posts_per_hour = 3\n"),
            Valid(|p| p.limits.per_hour == Some(3)),
        ),
        (
            "a reviewer key that is not ed25519",
            v("[reviewers.keys]\ncarol = \"ssh-rsa AAAA carol\"\n"),
            Error(3, 9, ""),
        ),
        (
            "more reviewers required than listed",
            v("[reviewers]\nrequired = 2\n"),
            Error(3, 12, ""),
        ),
        (
            "a state url with a password",
            v("[state]\nurl = \"postgres://gate:hunter2@db.example/gate\"\n"),
            Error(3, 7, "password"),
        ),
        (
            "shorteners, a bad value",
            v("[links]\nshorteners = \"sometimes\"\n"),
            Error(3, 14, "sometimes"),
        ),
        (
            "a link pattern",
            v("[links]\ndeny = [\"*.example.net\"]\n"),
            Valid(|_| true),
        ),
    ]
}

#[test]
fn every_row_reads_as_expected() {
    let mut wrong = Vec::new();
    for (what, text, expect) in cases() {
        let (policy, diagnostics) = policy::parse(&Source::new("gate.toml", text.clone()));
        let first_error = diagnostics.iter().find(|d| d.is_error());
        match (&expect, &policy, first_error) {
            (Valid(holds), Some(p), None) => {
                if !holds(p) {
                    wrong.push(format!("{what}: valid, but not as expected"));
                }
            }
            (Error(line, column, words), None, Some(d)) => {
                if (d.line, d.column) != (*line, *column) || !d.message.contains(words) {
                    wrong.push(format!(
                        "{what}: expected {line}:{column} `{words}`, got {}:{} `{}`",
                        d.line, d.column, d.message
                    ));
                }
                if d.hint.is_none() && d.snippet.is_none() && d.line != 0 {
                    wrong.push(format!(
                        "{what}: a positioned error without a snippet or hint"
                    ));
                }
            }
            (Warning(line, column, words), Some(_), None) => {
                let found = diagnostics
                    .iter()
                    .any(|d| (d.line, d.column) == (*line, *column) && d.message.contains(words));
                if !found {
                    wrong.push(format!("{what}: no warning at {line}:{column} `{words}`"));
                }
            }
            (_, _, d) => wrong.push(format!(
                "{what}: got policy {} and error {:?}",
                policy.is_some(),
                d.map(|d| (d.line, d.column, &d.message))
            )),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
