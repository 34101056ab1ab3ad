//! The evaluator, case by case: each row is a policy, a post's text, the world at that moment
//! (the time, a freeze, the sends of the hour) and the verdict with the rules that must be
//! found, in order.

use chrono::{DateTime, Duration, Utc};

use super::diagnostic::Source;
use super::evaluate::{Context, Engine, LocalFreeze, Rule};
use super::limits::{Send, Sends};
use super::policy;
use super::post::{Origin, Post};
use super::verdict::Verdict;

const POLICY: &str = r#"version = 1
timezone = "Europe/London"

[accounts.brand]
platform = "mastodon"
server = "https://m.example"
max_chars = 60

[accounts.brand-x]
platform = "x"
max_posts_per_hour = 1

[accounts.brand-x.banned_terms]
deny = ["giveaway"]

[banned_terms]
deny = ["layoffs", "ass"]
warn = ["guaranteed"]
allow = ["kill switch"]
regex = ['free\s+i?phones?']

[links]
deny = ["*.example.net"]
shorteners = "warn"

[limits]
max_posts_per_hour = 3

[[quiet_hours]]
from = "22:00"
to = "07:00"

[[blackouts]]
from = 2026-12-24T00:00:00Z
to = 2026-12-27T00:00:00Z
reason = "holidays"
"#;

/// The world a row is judged in.
#[derive(Clone, Copy)]
enum World {
    /// A Wednesday at noon in London, nothing sent, no freeze.
    Noon,
    /// 23:30 in London: quiet hours.
    Night,
    /// Inside the blackout.
    Holiday,
    /// A freeze in force.
    FreezeOn,
    /// Three sends in the last hour (every account together).
    Busy,
    /// One send to `brand-x` ten minutes ago.
    XSentOnce,
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn context(world: World) -> Context {
    let noon = at("2026-12-02T12:00:00Z");
    let send = |account: &str, minutes: i64, digest: &str| Send {
        digest: digest.into(),
        account: account.into(),
        at: noon - Duration::minutes(minutes),
    };
    let mut c = Context {
        now: noon,
        local_freeze: None,
        sends: Sends::default(),
        instances: Default::default(),
    };
    match world {
        World::Noon => {}
        World::Night => c.now = at("2026-12-02T23:30:00Z"),
        World::Holiday => c.now = at("2026-12-25T12:00:00Z"),
        World::FreezeOn => {
            c.local_freeze = Some(LocalFreeze {
                reason: "incident".into(),
                since: Some(noon),
                by: None,
            })
        }
        World::Busy => {
            c.sends = Sends(
                (0..3)
                    .map(|i| send("brand", 10 + i, &format!("d{i}")))
                    .collect(),
            )
        }
        World::XSentOnce => c.sends = Sends(vec![send("brand-x", 10, "other")]),
    }
    c
}

use Rule::*;
use Verdict::*;
use World::*;

/// What a row says: what it is, the account, the text, the world, the verdict, the rules.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    World,
    Verdict,
    Vec<Rule>,
);

fn cases() -> Vec<Row> {
    vec![
        (
            "plain text goes",
            "brand",
            "Version 2.0 is out today.",
            Noon,
            Allow,
            vec![],
        ),
        (
            "a denied term",
            "brand",
            "No layoffs here.",
            Noon,
            Deny,
            vec![BannedTerm],
        ),
        (
            "a denied term in capitals",
            "brand",
            "LAYOFFS",
            Noon,
            Deny,
            vec![BannedTerm],
        ),
        (
            "a look-alike letter",
            "brand",
            "Big l\u{0430}yoffs",
            Noon,
            Deny,
            vec![BannedTerm],
        ),
        (
            "a word that contains a term",
            "brand",
            "A class act.",
            Noon,
            Allow,
            vec![],
        ),
        (
            "an allowed phrase covers a term",
            "brand",
            "Use the kill switch.",
            Noon,
            Allow,
            vec![],
        ),
        (
            "a warned term is a finding, not a block",
            "brand",
            "Results guaranteed.",
            Noon,
            Allow,
            vec![BannedTerm],
        ),
        (
            "a regex",
            "brand",
            "Free  iPhones for all",
            Noon,
            Deny,
            vec![BannedTerm],
        ),
        (
            "an account's own term",
            "brand-x",
            "A giveaway today",
            Noon,
            Deny,
            vec![BannedTerm],
        ),
        (
            "an account's own term is not global",
            "brand",
            "A giveaway today",
            Noon,
            Allow,
            vec![],
        ),
        (
            "over the account's length",
            "brand",
            "This text is written to be well over sixty characters long, on purpose.",
            Noon,
            Deny,
            vec![Length],
        ),
        (
            "a denied link",
            "brand",
            "See https://www.example.net/x",
            Noon,
            Deny,
            vec![Link],
        ),
        (
            "a shortener warns",
            "brand",
            "See https://bit.ly/abc",
            Noon,
            Allow,
            vec![Link],
        ),
        (
            "quiet hours hold",
            "brand",
            "Good night.",
            Night,
            Hold,
            vec![QuietHours],
        ),
        (
            "a blackout holds",
            "brand",
            "Merry Christmas.",
            Holiday,
            Hold,
            vec![Blackout],
        ),
        (
            "a freeze stops everything",
            "brand",
            "Version 2.0 is out today.",
            FreezeOn,
            Frozen,
            vec![Freeze],
        ),
        (
            "a freeze outranks a denied term",
            "brand",
            "No layoffs here.",
            FreezeOn,
            Frozen,
            vec![Freeze, BannedTerm],
        ),
        (
            "the team's hourly limit holds",
            "brand",
            "One more.",
            Busy,
            Hold,
            vec![RateLimit],
        ),
        (
            "the account's hourly limit holds",
            "brand-x",
            "One more.",
            XSentOnce,
            Hold,
            vec![RateLimit],
        ),
        (
            "another account's send does not count for it",
            "brand",
            "One more.",
            XSentOnce,
            Allow,
            vec![],
        ),
        (
            "a denied term in quiet hours is denied",
            "brand",
            "No layoffs here.",
            Night,
            Deny,
            vec![BannedTerm, QuietHours],
        ),
    ]
}

#[test]
fn every_row_is_judged_as_expected() {
    let (policy, diagnostics) = policy::parse(&Source::new("gate.toml", POLICY));
    let policy = policy.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let engine = Engine::new(&policy);
    let mut wrong = Vec::new();
    for (what, account, text, world, verdict, rules) in cases() {
        let post = Post::inline(Origin::Argument, text.into());
        let accounts = [policy.account(account).unwrap()];
        let evaluations = engine.evaluate(&post, &accounts, &context(world));
        let e = &evaluations[0];
        let mut found: Vec<Rule> = Vec::new();
        for f in &e.findings {
            if !found.contains(&f.rule) {
                found.push(f.rule);
            }
        }
        let mut expected = rules.clone();
        expected.sort_by_key(|r| format!("{r:?}"));
        found.sort_by_key(|r| format!("{r:?}"));
        if e.verdict != verdict || found != expected {
            wrong.push(format!(
                "{what}: expected {verdict:?} {expected:?}, got {:?} {found:?}",
                e.verdict
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
