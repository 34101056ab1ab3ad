//! Scheduling end to end (SPEC §7): post windows judged by `gate check --now` and shown by
//! `gate plan --now` at their edges and across a DST change, `gate post --due` with the real
//! clock against the fake Mastodon server and a real keychain (windows a few seconds wide),
//! two sweeps at once, a `--wait` whose window closes while it sleeps, and the exit code of a
//! mixed folder.

use crate::common;
use crate::fake;

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use common::setup::{Fake, Keychain, wait_for};
use common::{Run, Sandbox};
use fake::Kind;

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `now` plus `s` seconds, on a whole second.
fn in_secs(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp() + s, 0).unwrap()
}

fn post_file(text: &str, account: &str, window: (Option<&str>, Option<&str>)) -> String {
    let mut out = format!("account = \"{account}\"\ntext = \"{text}\"\n");
    if let Some(t) = window.0 {
        out.push_str(&format!("not_before = {t}\n"));
    }
    if let Some(t) = window.1 {
        out.push_str(&format!("not_after = {t}\n"));
    }
    out
}

const OFFLINE_POLICY: &str = r#"version = 1
timezone = "UTC"

[accounts.brand]
platform = "mastodon"
server = "https://mastodon.example"
"#;

fn check_at(s: &Sandbox, file: &str, now: &str) -> (i32, serde_json::Value) {
    let run = s.run(&["check", "--json", "--now", now, "--file", file]);
    (run.code, run.json())
}

fn plan_at(s: &Sandbox, now: &str) -> serde_json::Value {
    let run = s.run(&["plan", "posts", "--json", "--now", now]);
    assert_eq!(run.code, 0, "{run:?}");
    run.json()
}

fn rules(doc: &serde_json::Value) -> Vec<String> {
    doc["posts"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}/{}",
                f["rule"].as_str().unwrap(),
                f["severity"].as_str().unwrap()
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Windows at their edges: `gate check --now` and `gate plan --now`.

#[test]
fn a_window_opens_exactly_at_not_before_and_expires_exactly_at_not_after() {
    let s = Sandbox::new();
    s.write("gate.toml", OFFLINE_POLICY);
    s.write(
        "posts/launch.post.toml",
        &post_file(
            "Launch day",
            "brand",
            (
                Some("2026-12-01T09:00:00+01:00"),
                Some("2026-12-01T12:00:00+01:00"),
            ),
        ),
    );
    let file = "posts/launch.post.toml";
    let cases = [
        // (now, exit, findings, plan state)
        (
            "2026-12-01T07:59:59Z",
            5,
            vec!["not_before/hold"],
            "not-yet",
        ),
        ("2026-12-01T08:00:00Z", 0, vec![], "due"),
        ("2026-12-01T09:30:00+01:00", 0, vec![], "due"),
        ("2026-12-01T10:59:59Z", 0, vec![], "due"),
        ("2026-12-01T11:00:00Z", 4, vec!["not_after/deny"], "expired"),
        ("2026-12-02T00:00:00Z", 4, vec!["not_after/deny"], "expired"),
    ];
    for (now, code, findings, state) in cases {
        let (got, doc) = check_at(&s, file, now);
        assert_eq!(got, code, "check at {now}: {doc}");
        assert_eq!(rules(&doc), findings, "check at {now}: {doc}");
        let plan = plan_at(&s, now);
        assert_eq!(plan["posts"][0]["state"], state, "plan at {now}: {plan}");
        assert_eq!(plan["posts"][0]["not_before"], "2026-12-01T08:00:00Z");
        assert_eq!(plan["posts"][0]["not_after"], "2026-12-01T11:00:00Z");
    }
    // Before the window the hold ends when it opens (so `--wait` sleeps until then).
    let (_, doc) = check_at(&s, file, "2026-12-01T07:00:00Z");
    assert_eq!(
        doc["posts"][0]["findings"][0]["until"],
        "2026-12-01T08:00:00Z"
    );
    // `gate plan` only reads: no state store was created.
    assert!(
        !s.path().join("state").exists(),
        "gate plan created the state folder"
    );
}

/// Berlin leaves summer time on the last Sunday of October (2026-10-25, 03:00 CEST → 02:00
/// CET). The window is written with the offsets on each side, and quiet hours 01:00–03:00
/// (local) cover three real hours that night: the post is held across them, inside its window.
#[test]
fn a_window_across_the_dst_change_and_quiet_hours_inside_it() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        r#"version = 1
timezone = "Europe/Berlin"

[accounts.brand]
platform = "mastodon"
server = "https://mastodon.example"

[[quiet_hours]]
from = "01:00"
to = "03:00"
reason = "Night"
"#,
    );
    s.write(
        "posts/night.post.toml",
        &post_file(
            "Clocks go back tonight",
            "brand",
            (
                Some("2026-10-25T00:30:00+02:00"),
                Some("2026-10-25T04:00:00+01:00"),
            ),
        ),
    );
    let file = "posts/night.post.toml";
    let quiet_until = "2026-10-25T02:00:00Z"; // 03:00 CET
    let cases: [(&str, i32, &[&str], &str); 8] = [
        ("2026-10-24T22:29:59Z", 5, &["not_before/hold"], "not-yet"),
        ("2026-10-25T00:30:00+02:00", 0, &[], "due"),
        ("2026-10-25T00:59:59+02:00", 0, &[], "due"),
        (
            "2026-10-25T01:00:00+02:00",
            5,
            &["quiet_hours/hold"],
            "held",
        ),
        // 02:30 happens twice; both are quiet.
        (
            "2026-10-25T02:30:00+02:00",
            5,
            &["quiet_hours/hold"],
            "held",
        ),
        (
            "2026-10-25T02:30:00+01:00",
            5,
            &["quiet_hours/hold"],
            "held",
        ),
        ("2026-10-25T03:00:00+01:00", 0, &[], "due"),
        (
            "2026-10-25T04:00:00+01:00",
            4,
            &["not_after/deny"],
            "expired",
        ),
    ];
    for (now, code, findings, state) in cases {
        let (got, doc) = check_at(&s, file, now);
        assert_eq!(got, code, "check at {now}: {doc}");
        assert_eq!(rules(&doc), findings, "check at {now}: {doc}");
        if state == "held" {
            assert_eq!(
                doc["posts"][0]["findings"][0]["until"], quiet_until,
                "{doc}"
            );
        }
        let plan = plan_at(&s, now);
        assert_eq!(plan["posts"][0]["state"], state, "plan at {now}: {plan}");
        if state == "held" {
            assert_eq!(plan["posts"][0]["until"], quiet_until, "{plan}");
        }
    }
    // The window is 4.5 real hours (22:30Z to 03:00Z), not the 3.5 its wall-clock times suggest.
    let plan = plan_at(&s, "2026-10-24T12:00:00Z");
    assert_eq!(plan["posts"][0]["not_before"], "2026-10-24T22:30:00Z");
    assert_eq!(plan["posts"][0]["not_after"], "2026-10-25T03:00:00Z");
    // The human calendar shows the window as written, and what it waits on.
    let run = s.run(&["plan", "posts", "--now", "2026-10-25T01:30:00+02:00"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "2026-10-25T00:30:00+02:00 – 2026-10-25T04:00:00+01:00  posts/night.post.toml → brand  held until 2026-10-25T02:00:00Z by quiet_hours (Night)\n"
    );
}

/// The digest signs the window (a reviewer approves the time too); a post without one keeps its
/// old message, byte for byte.
#[test]
fn the_digest_covers_the_window_only_when_present() {
    let s = Sandbox::new();
    s.write("gate.toml", OFFLINE_POLICY);
    s.write(
        "plain.post.toml",
        &post_file("Hello", "brand", (None, None)),
    );
    s.write(
        "timed.post.toml",
        &post_file(
            "Hello",
            "brand",
            (
                Some("2026-12-01T09:00:00+01:00"),
                Some("2026-12-01T12:00:00Z"),
            ),
        ),
    );
    s.write(
        "end.post.toml",
        &post_file("Hello", "brand", (None, Some("2026-12-01T13:00:00+01:00"))),
    );
    s.write(
        "quoted.post.toml",
        &post_file("Hello", "brand", (None, Some("\"2026-12-01T12:00:00Z\""))),
    );
    let plain = "gate-post-v1\naccounts 1\naccount 5\nbrand\ntext 5\nHello\nmedia 0\n";
    let digest = |f: &str| {
        let run = s.run(&["digest", "--file", f]);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
    };
    assert_eq!(digest("plain.post.toml"), plain);
    assert_eq!(
        digest("timed.post.toml"),
        format!("{plain}not_before 20\n2026-12-01T08:00:00Z\nnot_after 20\n2026-12-01T12:00:00Z\n")
    );
    // The same instant written with another offset is the same message.
    assert_eq!(
        digest("end.post.toml"),
        format!("{plain}not_after 20\n2026-12-01T12:00:00Z\n")
    );
    // Written as a string, it is the same instant too.
    assert_eq!(digest("quoted.post.toml"), digest("end.post.toml"));
}

#[test]
fn bad_windows_are_positioned_errors_with_a_hint() {
    let s = Sandbox::new();
    s.write("gate.toml", OFFLINE_POLICY);
    let cases = [
        (
            "not_before = \"tomorrow at 9\"\n",
            "error: `not_before` = \"tomorrow at 9\" is not a date-time\n --> bad.post.toml:3:14",
            "hint: write an offset date-time, e.g. `not_before = 2026-12-01T09:00:00+01:00`",
        ),
        (
            "not_before = 20261201\n",
            "error: `not_before` must be a date-time with an offset, found an integer\n --> bad.post.toml:3:14",
            "hint: write an offset date-time",
        ),
        (
            "not_before = \"2026-12-01T09:00\"\n",
            "error: `not_before` = 2026-12-01T09:00 has no offset: it is no one instant\n --> bad.post.toml:3:14",
            "hint: add the offset it is meant in",
        ),
        (
            "not_after = 2026-12-01T09:00:00\n",
            "error: `not_after` = 2026-12-01T09:00:00 has no offset: it is no one instant\n --> bad.post.toml:3:13",
            "hint: add the offset it is meant in, e.g. `2026-12-01T09:00:00+01:00`",
        ),
        (
            "not_after = 2026-12-01\n",
            "error: `not_after` must be a date and a time of day, found `2026-12-01`\n --> bad.post.toml:3:13",
            "hint: write an offset date-time",
        ),
        (
            "not_before = 2026-12-01T09:00:00Z\nnot_after = 2026-12-01T10:00:00+01:00\n",
            "error: `not_after` (2026-12-01T10:00:00+01:00) is not later than `not_before` (2026-12-01T09:00:00Z)\n --> bad.post.toml:4:13",
            "hint: the window is `[not_before, not_after)`",
        ),
        (
            "not_befor = 2026-12-01T09:00:00Z\n",
            "error: unknown key `not_befor` in a post file\n --> bad.post.toml:3:1",
            "did you mean `not_before`?",
        ),
    ];
    for (keys, error, hint) in cases {
        s.write(
            "bad.post.toml",
            &format!("account = \"brand\"\ntext = \"Hi\"\n{keys}"),
        );
        let run = s.run(&["check", "--file", "bad.post.toml"]);
        assert_eq!(run.code, 2, "{keys}: {run:?}");
        assert!(run.stderr.contains(error), "{keys}: {run:?}");
        assert!(run.stderr.contains(hint), "{keys}: {run:?}");
    }
}

#[test]
fn require_not_after_makes_a_post_without_one_invalid() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        &format!("{OFFLINE_POLICY}\n[schedule]\nrequire_not_after = true\n"),
    );
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 0, "{run:?}");
    s.write(
        "open.post.toml",
        &post_file("Any time", "brand", (None, None)),
    );
    s.write(
        "stale.post.toml",
        &post_file("Until noon", "brand", (None, Some("2099-12-01T12:00:00Z"))),
    );
    let run = s.run(&["check", "--file", "open.post.toml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "error: the post has no `not_after`, and the policy requires one\n --> open.post.toml:1:1"
        ),
        "{run:?}"
    );
    assert!(run.stderr.contains("hint: add `not_after = "), "{run:?}");
    let run = s.run(&["check", "--file", "stale.post.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    // `gate plan` reports the invalid file too (exit 2, as `gate check`).
    let run = s.run(&["plan", "open.post.toml", "stale.post.toml", "--json"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.json()["invalid"][0], "open.post.toml", "{run:?}");

    for (table, error) in [
        (
            "[schedule]\nrequire_not_after = \"yes\"\n",
            "`require_not_after` must be true or false, found a string",
        ),
        (
            "[schedule]\nrequire_not_afte = true\n",
            "unknown key `require_not_afte` in `[schedule]`",
        ),
    ] {
        s.write("gate.toml", &format!("{OFFLINE_POLICY}\n{table}"));
        let run = s.run(&["policy", "check"]);
        assert_eq!(run.code, 3, "{run:?}");
        assert!(run.stderr.contains(error), "{run:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// `gate post --due` with the real clock.

/// A fresh fake Mastodon server; `Deref` gives the shared setup's `sandbox`, `server`, `bus`
/// and token-checked `run`.
struct Setup(Fake);

impl std::ops::Deref for Setup {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

/// A sandbox whose policy points `brand` (and `slow`, at most one post an hour) at a fresh fake
/// Mastodon server, with both tokens in a private gnome-keyring.
fn setup() -> Setup {
    Setup(Fake::start(
        Kind::Mastodon,
        Keychain::Own,
        &["brand", "slow"],
        |url| {
            format!(
                r#"version = 1
timezone = "UTC"

[accounts.brand]
platform = "mastodon"
server = "{url}"

[accounts.slow]
platform = "mastodon"
server = "{url}"
max_posts_per_hour = 1

[banned_terms]
deny = ["layoffs"]
"#
            )
        },
    ))
}

impl Setup {
    fn due(&self) -> (Run, serde_json::Value) {
        let run = self.run(&["post", "--due", "posts", "--yes", "--json"]);
        let doc = run.json();
        (run, doc)
    }

    fn sent(&self, text: &str) -> usize {
        self.server.posts_with(text).len()
    }
}

/// `{source: status}` of a `--due --json` document.
fn statuses(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["source"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn due_sends_each_open_file_once_never_an_expired_one_and_a_later_one_later() {
    let s = setup();
    let (past, now_start, soon, later) = (in_secs(-120), in_secs(-60), in_secs(3), in_secs(120));
    let sb = &s.sandbox;
    sb.write(
        "posts/a-open.post.toml",
        &post_file(
            "Open now",
            "brand",
            (Some(&rfc(now_start)), Some(&rfc(later))),
        ),
    );
    sb.write(
        "posts/b-expired.post.toml",
        &post_file(
            "Too late",
            "brand",
            (Some(&rfc(past)), Some(&rfc(now_start))),
        ),
    );
    sb.write(
        "posts/c-soon.post.toml",
        &post_file(
            "In a moment",
            "brand",
            (Some(&rfc(soon)), Some(&rfc(later))),
        ),
    );

    // Without `--yes` the sweep refuses before anything (it never asks).
    let run = s.run(&["post", "--due", "posts"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("`gate post --due` never asks"),
        "{run:?}"
    );
    assert!(run.stderr.contains("hint: pass `--yes`"), "{run:?}");
    // `--dry-run` says what would go, and sends nothing.
    let run = s.run(&["post", "--due", "posts", "--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        statuses(&run.json()),
        pairs(&[
            ("posts/a-open.post.toml", "due"),
            ("posts/b-expired.post.toml", "expired"),
            ("posts/c-soon.post.toml", "not-yet"),
        ])
    );
    assert!(s.server.posts().is_empty());

    let (run, doc) = s.due();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        statuses(&doc),
        pairs(&[
            ("posts/a-open.post.toml", "sent"),
            ("posts/b-expired.post.toml", "expired"),
            ("posts/c-soon.post.toml", "not-yet"),
        ]),
        "{run:?}"
    );
    let url = doc["files"][0]["accounts"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&s.server.url), "{doc}");
    assert_eq!(doc["files"][1]["accounts"][0]["not_after"], rfc(now_start));
    assert_eq!(doc["files"][2]["accounts"][0]["not_before"], rfc(soon));
    assert_eq!(
        (
            s.sent("Open now"),
            s.sent("Too late"),
            s.sent("In a moment")
        ),
        (1, 0, 0)
    );

    // Again at once: already sent, with the same URL; nothing new goes out.
    let (run, doc) = s.due();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(doc["files"][0]["status"], "already-sent", "{run:?}");
    assert_eq!(doc["files"][0]["accounts"][0]["url"], url.as_str());
    assert_eq!(s.server.posts().len(), 1);

    // Once the third window opens, a later run sends it; the expired one never goes.
    while Utc::now() < soon {
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = s.run(&["post", "--due", "posts", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{run:?}");
    assert_eq!(
        lines[0],
        format!("already-sent posts/a-open.post.toml → brand  {url}")
    );
    assert_eq!(
        lines[1],
        format!(
            "expired      posts/b-expired.post.toml → brand  window closed at {}; never sent",
            rfc(now_start)
        )
    );
    assert!(
        lines[2].starts_with("sent         posts/c-soon.post.toml → brand  http"),
        "{run:?}"
    );
    assert_eq!(lines[3], "3 files: 1 sent, 1 already-sent, 1 expired");
    assert_eq!(
        (
            s.sent("Open now"),
            s.sent("Too late"),
            s.sent("In a moment")
        ),
        (1, 0, 1)
    );

    // The calendar agrees: sent with their URLs, the expired one expired.
    let run = s.run(&["plan", "posts", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let plan = run.json();
    let states: Vec<&str> = plan["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    // Sorted by `not_before`: the expired one opened first.
    assert_eq!(states, ["expired", "sent", "sent"], "{plan}");
    assert_eq!(plan["posts"][1]["url"], url.as_str());
}

/// Two sweeps at once over the same folder: the delivery's lock and claim make each file go
/// out once, and the run that finds it sent says `already-sent`.
#[test]
fn two_sweeps_at_once_send_each_due_file_exactly_once() {
    let s = setup();
    let (start, end) = (in_secs(-60), in_secs(600));
    for i in 0..4 {
        s.sandbox.write(
            &format!("posts/p{i}.post.toml"),
            &post_file(
                &format!("Due post {i}"),
                "brand",
                (Some(&rfc(start)), Some(&rfc(end))),
            ),
        );
    }
    let spawn = || {
        s.sandbox
            .command(&["post", "--due", "posts", "--yes", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let docs: Vec<serde_json::Value> = [a, b]
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    for i in 0..4 {
        assert_eq!(s.sent(&format!("Due post {i}")), 1, "post {i}");
        let mut got: Vec<String> = docs
            .iter()
            .map(|d| d["files"][i]["status"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        assert_eq!(got, ["already-sent", "sent"], "post {i}: {docs:?}");
    }
    assert_eq!(s.server.posts().len(), 4);
}

/// A folder with a denied file, a held one (the account's hourly limit) and sent ones: every
/// file is tried, and the exit code is the first of SPEC §7's order among them.
#[test]
fn a_mixed_folder_exits_with_the_first_code_of_the_order_and_tries_every_file() {
    let s = setup();
    let (start, end) = (rfc(in_secs(-60)), rfc(in_secs(600)));
    let w = (Some(start.as_str()), Some(end.as_str()));
    let sb = &s.sandbox;
    sb.write("posts/1-ok.post.toml", &post_file("Fine news", "brand", w));
    sb.write(
        "posts/2-denied.post.toml",
        &post_file("Layoffs today", "brand", w),
    );
    sb.write("posts/3-slow.post.toml", &post_file("Slow one", "slow", w));
    sb.write("posts/4-slow.post.toml", &post_file("Slow two", "slow", w));
    sb.write(
        "posts/5-ok.post.toml",
        &post_file("More news", "brand", (None, None)),
    );

    let (run, doc) = s.due();
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        statuses(&doc),
        pairs(&[
            ("posts/1-ok.post.toml", "sent"),
            ("posts/2-denied.post.toml", "refused"),
            ("posts/3-slow.post.toml", "sent"),
            ("posts/4-slow.post.toml", "held"),
            ("posts/5-ok.post.toml", "sent"),
        ]),
        "{run:?}"
    );
    assert_eq!(doc["files"][1]["code"], 4);
    assert_eq!(doc["files"][1]["verdict"], "deny");
    assert_eq!(doc["files"][3]["code"], 5);
    assert!(doc["files"][3]["accounts"][0]["until"].is_string(), "{doc}");
    assert_eq!(s.server.posts().len(), 3);
    assert_eq!(s.sent("Layoffs"), 0);

    // Without the denied file the held one decides: exit 5; what went out stays out.
    std::fs::remove_file(sb.path().join("posts/2-denied.post.toml")).unwrap();
    let (run, doc) = s.due();
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(
        statuses(&doc),
        pairs(&[
            ("posts/1-ok.post.toml", "already-sent"),
            ("posts/3-slow.post.toml", "already-sent"),
            ("posts/4-slow.post.toml", "held"),
            ("posts/5-ok.post.toml", "already-sent"),
        ]),
        "{run:?}"
    );
    // An invalid post file fails the run too, and comes right after 3 (as for `gate check`):
    // it is reported, and the other files are still tried.
    sb.write(
        "posts/0-bad.post.toml",
        "account = \"brand\"\ntext = \"x\"\nnot_after = 2026-01-01T00:00:00\n",
    );
    sb.write(
        "posts/6-ok.post.toml",
        &post_file("After the bad one", "brand", w),
    );
    let (run, doc) = s.due();
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(doc["files"][0]["status"], "failed");
    assert_eq!(doc["files"][0]["verdict"], "invalid");
    assert_eq!(doc["files"][0]["code"], 2);
    assert_eq!(doc["files"][3]["status"], "held");
    assert_eq!(doc["files"][5]["status"], "sent", "{run:?}");
    let run = s.run(&["post", "--due", "posts", "--yes"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("has no offset"), "{run:?}");
    assert!(
        run.stdout.starts_with(
            "failed       posts/0-bad.post.toml  invalid post file (see the errors above)\n"
        ),
        "{run:?}"
    );
    assert_eq!(s.server.posts().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// The window closes while gate waits.

#[test]
fn a_wait_whose_window_closes_while_it_sleeps_sends_nothing_and_says_so() {
    let s = setup();
    // The hold ends when the window opens, 2 s from now; `--wait` wakes 0.5 s after that, when
    // the window (0.3 s wide) has closed.
    let start = Utc::now() + chrono::Duration::seconds(2);
    let end = start + chrono::Duration::milliseconds(300);
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    s.sandbox.write(
        "short.post.toml",
        &post_file(
            "Blink and miss it",
            "brand",
            (Some(&fmt(start)), Some(&fmt(end))),
        ),
    );
    let run = s.run(&["post", "--yes", "--wait", "--file", "short.post.toml"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("waiting ("), "{run:?}");
    assert!(
        run.stderr
            .contains("expired: the post's window closed at `not_after`"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("not sent: the post is `deny`"),
        "{run:?}"
    );
    assert!(s.server.posts().is_empty());

    // A hold that ends after `not_after` is not slept through at all.
    let (soon, late) = (rfc(in_secs(600)), rfc(in_secs(3600)));
    s.sandbox.write(
        "gate.toml",
        &format!(
            "{}\n[[blackouts]]\nfrom = \"{}\"\nto = \"{late}\"\nreason = \"Embargo\"\n",
            s.sandbox.read("gate.toml"),
            rfc(in_secs(-60))
        ),
    );
    s.sandbox.write(
        "embargo.post.toml",
        &post_file("Held past its window", "brand", (None, Some(&soon))),
    );
    let started = std::time::Instant::now();
    let run = s.run(&["post", "--yes", "--wait", "--file", "embargo.post.toml"]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "it slept");
    assert!(
        run.stderr.contains(&format!(
            "not waiting: the post is held until {late}, but its window closes at `not_after` {soon}"
        )),
        "{run:?}"
    );
    assert!(s.server.posts().is_empty());
}

/// The check at the moment of sending: judged `allow`, then held at the delivery's lock past
/// `not_after`: the claim judges it again and nothing goes out, for `gate post` and `--due`.
#[test]
fn a_window_that_closes_at_the_moment_of_sending_stops_the_send() {
    use std::io::Read as _;
    let s = setup();
    for (i, due) in [false, true].into_iter().enumerate() {
        let end = Utc::now() + chrono::Duration::seconds(2);
        let folder = format!("closing{i}");
        let file = format!("{folder}/closing.post.toml");
        s.sandbox.write(
            &file,
            &post_file(
                &format!("Closing soon {i}"),
                "brand",
                (
                    None,
                    Some(&end.to_rfc3339_opts(SecondsFormat::Millis, true)),
                ),
            ),
        );
        let args: Vec<&str> = if due {
            vec!["post", "--due", &folder, "--yes", "--json"]
        } else {
            vec!["post", "--yes", "--json", "--file", &file]
        };
        let mut cmd = s.sandbox.command(&args);
        cmd.env("GATE_TEST_PAUSE", "locked:3000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stderr = wait_for(&mut child, "gate-test-pause: locked");
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        let mut stdout = String::new();
        let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
        let code = child.wait().unwrap().code().unwrap_or(-1);
        let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        if due {
            // The sweep says `expired`, which does not fail it.
            assert_eq!(code, 0, "{doc} {rest}");
            assert_eq!(doc["files"][0]["status"], "expired", "{doc}");
            assert!(
                doc["files"][0]["accounts"][0]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("expired: the post's window closed"),
                "{doc}"
            );
        } else {
            assert_eq!(code, 4, "{doc} {rest}");
            assert_eq!(doc["failed"][0]["code"], 4, "{doc}");
            assert_eq!(doc["failed"][0]["maybe_sent"], false, "{doc}");
            assert!(
                doc["failed"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("became `deny` at the moment of sending: expired"),
                "{doc}"
            );
        }
        assert!(s.server.posts().is_empty(), "{doc}");
    }
}
