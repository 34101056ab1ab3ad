//! Property tests that feed arbitrary bytes and structured mutations of valid files to every
//! reader of untrusted input (the policy reader, the post-file reader, the calendar reader,
//! the term normaliser, the digest) and check that each answers in bounded time, never
//! panics, and that every error it reports is placed at a line and column (or names the whole
//! file) with the exit code SPEC §2 pins. `fuzz/` has `cargo fuzz` targets for the same readers.

use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::core::diagnostic::{Diagnostic, Source};

/// How long one reader may take on one input of a few kilobytes.
const BOUND: Duration = Duration::from_secs(2);

const POLICY: &str = r#"version = 1
timezone = "Europe/London"

[accounts.brand]
platform = "mastodon"
server = "https://mastodon.example"
max_posts_per_hour = 3

[banned_terms]
deny = ["layoffs", "kill"]
allow = ["kill switch"]
regex = ['free\s+i?phones?']

[reviewers]
required = 0

[[quiet_hours]]
from = "20:00"
to = "08:00"

[[blackouts]]
from = "2026-12-24T00:00"
to = "2026-12-27T00:00"
"#;

const POST: &str =
    "account = \"brand\"\ntext = \"\"\"\nOur release is out.\n\"\"\"\nlanguage = \"en\"\n";

fn policy() -> crate::core::policy::Policy {
    crate::core::policy::parse(&Source::new("gate.toml", POLICY))
        .0
        .expect("the base policy is valid")
}

/// Every error is placed in the file (line and column within it) or names the whole file.
fn placed(source: &str, diagnostics: &[Diagnostic]) -> Result<(), TestCaseError> {
    let lines = source.split('\n').count().max(1);
    for d in diagnostics.iter().filter(|d| d.is_error()) {
        prop_assert!(
            d.line == 0 || (d.line <= lines + 1 && d.column >= 1),
            "{d:?} is outside a {lines}-line file"
        );
        prop_assert!(!d.message.is_empty());
    }
    Ok(())
}

/// A valid file with one of its bytes replaced, one inserted, or a slice cut out.
fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
    (0..base.len(), any::<u8>(), 0usize..3, 0usize..40).prop_map(move |(at, byte, how, len)| {
        let mut b = base.as_bytes().to_vec();
        match how {
            0 => b[at] = byte,
            1 => b.insert(at, byte),
            _ => {
                let end = (at + len).min(b.len());
                b.drain(at..end);
            }
        }
        b
    })
}

/// Bytes as the shell reads them: UTF-8 or a positioned error.
fn text(name: &str, bytes: Vec<u8>) -> Result<String, Box<Diagnostic>> {
    crate::files::utf8(name, bytes, "the file")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_policy_reader_places_every_error(bytes in prop_oneof![
        mutated(POLICY),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]) {
        let started = Instant::now();
        match text("gate.toml", bytes) {
            Ok(source) => {
                let (policy, diagnostics) = crate::core::policy::parse(&Source::new("gate.toml", source.clone()));
                placed(&source, &diagnostics)?;
                // Invalid (exit 3) always says why.
                prop_assert!(policy.is_some() || diagnostics.iter().any(Diagnostic::is_error));
            }
            Err(d) => prop_assert!(d.line >= 1 && d.column >= 1),
        }
        prop_assert!(started.elapsed() < BOUND);
    }

    #[test]
    fn the_post_reader_places_every_error(bytes in prop_oneof![
        mutated(POST),
        proptest::collection::vec(any::<u8>(), 0..512),
    ]) {
        let started = Instant::now();
        let policy = policy();
        match text("p.post.toml", bytes) {
            Ok(source) => {
                let result = crate::inputs::parse_post(&Source::new("p.post.toml", source.clone()), Path::new("p.post.toml"), &policy);
                match result {
                    Ok(post) => {
                        // A post that reads is judged and digested without trouble.
                        let names: Vec<String> = post.accounts.clone();
                        prop_assert!(post.digest_message(&names).starts_with("gate-post-v1"));
                    }
                    Err(diagnostics) => {
                        placed(&source, &diagnostics)?;
                        prop_assert!(diagnostics.iter().any(Diagnostic::is_error));
                    }
                }
            }
            Err(d) => prop_assert!(d.line >= 1 && d.column >= 1),
        }
        prop_assert!(started.elapsed() < BOUND);
    }

    #[test]
    fn the_calendar_reader_judges_or_places_each_line(lines in proptest::collection::vec(
        prop_oneof![
            Just(b"{\"text\": \"hello\"}".to_vec()),
            Just(b"{\"text\": \"Layoffs\", \"account\": \"brand\"}".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..80),
        ], 1..12)
    ) {
        let policy = policy();
        let mut bytes = lines.join(&b'\n');
        bytes.push(b'\n');
        let mut reader = std::io::BufReader::with_capacity(7, bytes.as_slice());
        let mut raw = Vec::new();
        let mut seen = 0;
        while let Some(line) = crate::commands::check::next_line(&mut reader, &mut raw, 64).unwrap() {
            seen += 1;
            if line.is_err() { continue; }
            if let Ok(text) = std::str::from_utf8(&raw)
                && let Err(d) = crate::commands::check::parse_line(text, seen, Path::new("cal.jsonl"), &policy)
            {
                prop_assert!(d.line == seen && d.column >= 1, "{d:?}");
            }
        }
        // One line for each newline: a line is never lost, merged or split.
        prop_assert_eq!(seen, bytes.iter().filter(|b| **b == b'\n').count());
    }

    #[test]
    fn the_normaliser_and_matcher_take_any_text(text in "\\PC{0,200}", raw in proptest::collection::vec(any::<char>(), 0..200)) {
        let started = Instant::now();
        let policy = policy();
        let engine = crate::core::evaluate::Engine::new(&policy);
        for t in [text, raw.into_iter().collect::<String>()] {
            let post = crate::core::post::Post::inline(crate::core::post::Origin::Argument, t.clone());
            let context = crate::core::evaluate::Context {
                now: chrono::DateTime::UNIX_EPOCH,
                local_freeze: None,
                sends: crate::core::limits::Sends::default(),
                instances: std::collections::BTreeMap::new(),
            };
            let accounts: Vec<&crate::core::policy::Account> = policy.accounts.values().collect();
            for e in engine.evaluate(&post, &accounts, &context) {
                for f in &e.findings {
                    if let (Some(start), Some(end)) = (f.start, f.end) {
                        prop_assert!(start <= end && end <= t.len());
                        prop_assert!(t.is_char_boundary(start) && t.is_char_boundary(end));
                    }
                }
            }
            let _ = post.digest_message(&["brand".to_owned()]);
        }
        prop_assert!(started.elapsed() < BOUND);
    }
}
