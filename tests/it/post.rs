//! `gate post` end to end: the built binary, a real keychain (gnome-keyring on a private
//! session bus, token stored with `gate auth login --with-token`), and hand-controlled fake
//! Mastodon and X servers on 127.0.0.1 that assert each documented request and inject faults.

use crate::common;
use crate::fake;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::keychain::{SessionBus, canary};
use common::setup::{Builder, Fake, Keychain, Policy, finish, wait_for};
use common::{Run, Sandbox};
use fake::{Fault, Kind, Server};

/// A fresh fake server for `brand`; `Deref` gives the shared setup's `sandbox`, `server`,
/// `bus` and token-checked `run`.
struct Setup(Fake);

impl std::ops::Deref for Setup {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

fn policy(kind: Kind, url: &str) -> String {
    Policy::new("brand", kind.name(), url)
        .timezone("UTC")
        .then("\n[banned_terms]\ndeny = [\"layoffs\"]\n")
        .text()
}

/// A sandbox whose policy points `brand` at a fresh fake server; with `keychain`, a private
/// gnome-keyring holding the server's token, stored through `gate auth login --with-token`.
fn setup(kind: Kind, keychain: bool) -> Setup {
    let keychain = if keychain {
        Keychain::Own
    } else {
        Keychain::None
    };
    Setup(Fake::start(kind, keychain, &["brand"], |url| {
        policy(kind, url)
    }))
}

impl Setup {
    fn post(&self, text: &str) -> Run {
        self.run(&["post", "--yes", text])
    }

    fn spawn(&self, args: &[&str], fault: Option<&str>) -> Child {
        let mut cmd = self.sandbox.command(args);
        if let Some(point) = fault {
            cmd.env("GATE_TEST_FAULT", point);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Starts `gate post --yes TEXT` with a fault point, waits until it reaches it, and
    /// SIGKILLs it there.
    fn kill_at(&self, text: &str, point: &str) {
        self.sandbox.kill_at(&["post", "--yes", text], point);
    }

    /// Whether the journal holds any delivery (the audit trail shares its file, so the file
    /// alone proves nothing).
    fn journaled(&self) -> bool {
        let path = self.sandbox.path().join("state/journal.sqlite3");
        path.exists()
            && rusqlite::Connection::open(path)
                .unwrap()
                .query_row("SELECT count(*) FROM deliveries", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
                > 0
    }
}

fn sent_url(run: &Run) -> String {
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one URL on stdout: {run:?}");
    lines[0].to_owned()
}

// ---------------------------------------------------------------------------------------------
// Nothing is sent unless it may be.

#[test]
fn unattended_without_yes_refuses_before_the_keychain_and_the_network() {
    for kind in [Kind::Mastodon, Kind::X] {
        // No session bus at all: reading the keychain would fail with exit 8, so exit 2 proves
        // gate refused before touching it.
        let s = setup(kind, false);
        let run = s.run(&["post", "Our release is out"]);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(
            run.stderr
                .contains("refusing to send without confirmation: stdin is not a terminal"),
            "{run:?}"
        );
        assert!(run.stderr.contains("hint: pass `--yes`"), "{run:?}");
        assert!(s.server.requests().is_empty());
        assert!(!s.journaled());
        // Text from stdin is unattended too.
        let run = s
            .sandbox
            .run_with_stdin(&["post", "-"], "Our release is out");
        assert_eq!(run.code, 2, "{run:?}");
        assert!(s.server.requests().is_empty());
    }
}

#[test]
fn dry_run_reads_the_credential_and_sends_nothing() {
    let s = setup(Kind::Mastodon, true);
    let run = s.run(&["post", "--dry-run", "Our release is out"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("dry run: would send to `brand`"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "");
    let run = s.run(&["post", "--dry-run", "--json", "Our release is out"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["verdict"], "allow");
    assert_eq!(doc["sent"], serde_json::json!([]));
    assert_eq!(doc["dry_run"][0]["action"], "would send");
    // Only the instance's public length limit was asked (a dry run judges as a send would).
    assert!(
        s.server.account_requests().is_empty(),
        "{:?}",
        s.server.requests()
    );
    assert!(!s.journaled(), "a dry run wrote the journal");

    // After a real send, a dry run reports it from the journal, still without the network.
    let url = sent_url(&s.post("Our release is out"));
    let before = s.server.requests().len();
    let run = s.run(&["post", "--dry-run", "Our release is out"]);
    assert!(
        run.stderr
            .contains(&format!("dry run: already sent to `brand`: {url}")),
        "{run:?}"
    );
    assert_eq!(s.server.requests().len(), before);
}

#[test]
fn a_missing_credential_is_exit_8_and_sends_nothing() {
    let token = canary();
    let server = Server::start(Kind::Mastodon, &token);
    let mut sandbox = Sandbox::new();
    sandbox.write("gate.toml", &policy(Kind::Mastodon, &server.url));
    let bus = SessionBus::with_gnome_keyring();
    bus.attach(&mut sandbox);
    let run = sandbox.run(&["post", "--yes", "Our release is out"]);
    assert_eq!(run.code, 8, "{run:?}");
    assert!(
        run.stderr
            .contains("`brand` has no token stored (user `brand@127.0.0.1:"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("hint: run `gate auth login brand`"),
        "{run:?}"
    );
    assert!(server.account_requests().is_empty());
}

#[test]
fn denied_held_review_and_frozen_posts_send_nothing() {
    let s = setup(Kind::Mastodon, true);
    let run = s.post("Layoffs start today");
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr.contains("not sent: the post is `deny`"),
        "{run:?}"
    );
    let run = s.run(&["post", "--yes", "--json", "Layoffs start today"]);
    assert_eq!(run.code, 4);
    assert_eq!(run.json()["posts"][0]["findings"][0]["rule"], "banned_term");

    // Quiet all day: held, with `until`.
    let held = s.sandbox.write(
        "held.toml",
        &format!(
            "{}\n[[quiet_hours]]\nreason = \"Always\"\n",
            policy(Kind::Mastodon, &s.server.url)
        ),
    );
    let run = s.run(&[
        "--policy",
        held.to_str().unwrap(),
        "post",
        "--yes",
        "Our release is out",
    ]);
    assert_eq!(run.code, 5, "{run:?}");
    // `--wait` with a short `--max-wait` does not sleep past it.
    let started = Instant::now();
    let run = s.run(&[
        "--policy",
        held.to_str().unwrap(),
        "post",
        "--yes",
        "--wait",
        "--max-wait",
        "1s",
        "Our release is out",
    ]);
    assert_eq!(run.code, 5, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Needs a reviewer's signature that inline text cannot carry.
    let (_, public) = common::keygen(s.sandbox.path(), "carol", "");
    let review = s.sandbox.write(
        "review.toml",
        &format!(
            "{}\n[reviewers]\nrequired = 1\n[reviewers.keys]\ncarol = \"{public}\"\n",
            policy(Kind::Mastodon, &s.server.url)
        ),
    );
    let run = s.run(&[
        "--policy",
        review.to_str().unwrap(),
        "post",
        "--yes",
        "Our release is out",
    ]);
    assert_eq!(run.code, 6, "{run:?}");

    let run = s.run(&["freeze", "--reason", "incident"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.post("Our release is out");
    assert_eq!(run.code, 7, "{run:?}");
    assert!(s.server.requests().is_empty(), "{:?}", s.server.requests());
    assert!(!s.journaled());
}

// ---------------------------------------------------------------------------------------------
// What goes over the wire.

#[test]
fn mastodon_status_request_is_as_documented_and_a_second_run_sends_nothing() {
    let s = setup(Kind::Mastodon, true);
    let text = "Our release is out & it's \"great\" <3\nSecond line";
    let run = s.run(&["post", "--yes", "--json", text]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    let posts = s.server.posts();
    assert_eq!(posts.len(), 1);
    let url = s.server.post_url(&posts[0].id);
    assert_eq!(doc["verdict"], "allow");
    assert_eq!(doc["sent"][0]["account"], "brand");
    assert_eq!(doc["sent"][0]["id"], posts[0].id.as_str());
    assert_eq!(doc["sent"][0]["url"], url.as_str());

    let creates = s.server.creates();
    assert_eq!(creates.len(), 1);
    let r = &creates[0];
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.server.token()).as_str())
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let key = r
        .header("idempotency-key")
        .expect("an Idempotency-Key")
        .to_owned();
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(r.form_values("status"), vec![text.to_owned()]);
    assert_eq!(r.form_values("visibility"), vec!["public".to_owned()]);
    assert_eq!(posts[0].key.as_deref(), Some(key.as_str()));

    // Again: the journal answers, nothing goes out, same URL, exit 0 (safe for cron).
    let before = s.server.requests().len();
    let again = s.post(text);
    assert_eq!(sent_url(&again), url);
    assert!(
        again.stderr.contains("already sent to `brand`"),
        "{again:?}"
    );
    assert_eq!(
        s.server.requests().len(),
        before,
        "the second run used the network"
    );
    assert_eq!(s.server.posts().len(), 1);
    // A journaled delivery needs neither the network nor the keychain (here: no bus at all).
    let out = s
        .sandbox
        .command(&["post", "--yes", text])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{url}\n"));
}

#[test]
fn x_tweet_request_is_as_documented_and_a_second_run_sends_nothing() {
    let s = setup(Kind::X, true);
    let text = "Our release is out: https://example.com/notes";
    let url = sent_url(&s.post(text));
    let posts = s.server.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(url, format!("https://x.com/i/web/status/{}", posts[0].id));
    let creates = s.server.creates();
    assert_eq!(creates.len(), 1);
    let r = &creates[0];
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", s.server.token()).as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), serde_json::json!({"text": text}));
    assert_eq!(r.header("idempotency-key"), None);

    let before = s.server.requests().len();
    assert_eq!(sent_url(&s.post(text)), url);
    assert_eq!(s.server.requests().len(), before);
}

/// A post file with an image and alt text: uploaded, described, attached.
#[test]
fn media_is_uploaded_with_alt_text() {
    for kind in [Kind::Mastodon, Kind::X] {
        let s = setup(kind, true);
        let png: &[u8] = b"\x89PNG\r\n\x1a\nnot really a picture";
        std::fs::write(s.sandbox.path().join("release.png"), png).unwrap();
        let file = s.sandbox.write(
            "launch.post.toml",
            "account = \"brand\"\ntext = \"Release notes attached\"\n[[media]]\npath = \"release.png\"\nalt = \"Screenshot of the release notes\"\n",
        );
        let run = s.run(&["post", "--yes", "--file", file.to_str().unwrap()]);
        sent_url(&run);
        let posts = s.server.posts();
        assert_eq!(posts.len(), 1, "{kind:?}");
        assert_eq!(posts[0].media_ids.len(), 1, "{kind:?}");
        let media_id = &posts[0].media_ids[0];
        assert_eq!(
            s.server.media_alt(media_id).as_deref(),
            Some("Screenshot of the release notes"),
            "{kind:?}"
        );
        let requests = s.server.requests();
        let paths: Vec<String> = requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        match kind {
            Kind::Mastodon => {
                let upload = requests.iter().find(|r| r.path == "/api/v2/media").unwrap();
                assert!(
                    upload
                        .header("content-type")
                        .unwrap()
                        .starts_with("multipart/form-data")
                );
                assert!(upload.body.windows(png.len()).any(|w| w == png));
                // 202, then polled while 206, then attached.
                assert_eq!(
                    paths,
                    vec![
                        "GET /api/v2/instance".to_owned(),
                        "POST /api/v2/media".to_owned(),
                        format!("GET /api/v1/media/{media_id}"),
                        format!("GET /api/v1/media/{media_id}"),
                        "POST /api/v1/statuses".to_owned(),
                    ]
                );
                assert_eq!(
                    s.server.creates()[0].form_values("media_ids[]"),
                    vec![media_id.clone()]
                );
            }
            Kind::X => {
                let upload = requests
                    .iter()
                    .find(|r| r.path == "/2/media/upload")
                    .unwrap();
                assert_eq!(
                    upload.multipart_field("media_category").as_deref(),
                    Some("tweet_image")
                );
                assert_eq!(
                    paths,
                    vec![
                        "POST /2/media/upload",
                        "POST /2/media/metadata",
                        "POST /2/tweets"
                    ]
                );
                assert_eq!(
                    s.server.creates()[0].json(),
                    serde_json::json!({"text": "Release notes attached", "media": {"media_ids": [media_id]}})
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exactly once, under faults.

#[derive(Debug, Clone, Copy)]
enum Injected {
    DropBeforeCreate,
    DropAfterCreate,
    KillAfterJournal,
    KillAfterPublish,
}

const RUNS: usize = 52;

/// Each run posts a new text under one injected fault, then (when the first process did not
/// finish) runs the same `gate post` again, then a third time; the server must hold exactly one
/// post with that text and every finishing run must print its URL.
fn faults(kind: Kind) {
    let s = setup(kind, true);
    let modes = [
        Injected::DropBeforeCreate,
        Injected::DropAfterCreate,
        Injected::KillAfterJournal,
        Injected::KillAfterPublish,
    ];
    let (mut duplicates, mut lost, mut wrong_url) = (0, 0, 0);
    let mut per_mode = [0usize; 4];
    for i in 0..RUNS {
        let mode = modes[i % modes.len()];
        per_mode[i % modes.len()] += 1;
        let text = format!("Release note {i} for {} ({mode:?})", kind.name());
        let mut urls = Vec::new();
        match mode {
            Injected::DropBeforeCreate | Injected::DropAfterCreate => {
                s.server
                    .fault(if matches!(mode, Injected::DropBeforeCreate) {
                        Fault::DropBeforeCreate
                    } else {
                        Fault::DropAfterCreate
                    });
                let run = s.post(&text);
                assert_eq!(run.code, 0, "run {i}: {run:?}");
                urls.push(sent_url(&run));
            }
            Injected::KillAfterJournal => s.kill_at(&text, "after-journal"),
            Injected::KillAfterPublish => s.kill_at(&text, "after-publish"),
        }
        let run = s.post(&text);
        urls.push(sent_url(&run));
        let posts = s.server.posts_with(&text);
        match posts.len() {
            0 => lost += 1,
            1 => {
                let want = s.server.post_url(&posts[0].id);
                wrong_url += urls.iter().filter(|u| **u != want).count();
            }
            _ => duplicates += 1,
        }
    }
    println!(
        "{}: {RUNS} faulted runs (drop before create {}, drop after create {}, SIGKILL after journal {}, SIGKILL after publish {}): {duplicates} duplicates, {lost} lost, {wrong_url} wrong URLs",
        kind.name(),
        per_mode[0],
        per_mode[1],
        per_mode[2],
        per_mode[3]
    );
    assert_eq!((duplicates, lost, wrong_url), (0, 0, 0));
    assert_eq!(s.server.posts().len(), RUNS);
}

#[test]
fn mastodon_faults_never_duplicate_or_lose_a_post() {
    faults(Kind::Mastodon);
}

#[test]
fn x_faults_never_duplicate_or_lose_a_post() {
    faults(Kind::X);
}

fn concurrent(kind: Kind) {
    let s = setup(kind, true);
    let text = "Twenty processes, one post";
    let children: Vec<Child> = (0..20)
        .map(|_| s.spawn(&["post", "--yes", text], None))
        .collect();
    let mut urls = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let run = Run {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        };
        s.no_token(&run);
        urls.push(sent_url(&run));
    }
    let posts = s.server.posts();
    assert_eq!(posts.len(), 1, "{kind:?}: {posts:?}");
    assert_eq!(s.server.creates().len(), 1, "{kind:?}");
    let want = s.server.post_url(&posts[0].id);
    assert!(urls.iter().all(|u| *u == want), "{urls:?}");
}

#[test]
fn twenty_concurrent_mastodon_posts_make_one() {
    concurrent(Kind::Mastodon);
}

#[test]
fn twenty_concurrent_x_posts_make_one() {
    concurrent(Kind::X);
}

// ---------------------------------------------------------------------------------------------
// Rate limits, server errors, refusals.

#[test]
fn rate_limited_with_retry_after_then_sent() {
    for kind in [Kind::Mastodon, Kind::X] {
        let s = setup(kind, true);
        s.server.fault(Fault::Status(
            429,
            vec![("Retry-After".into(), "1".into())],
            r#"{"error":"Too many requests"}"#.into(),
        ));
        let url = sent_url(&s.post("After the rate limit"));
        let creates = s.server.creates();
        assert_eq!(creates.len(), 2, "{kind:?}");
        assert!(
            creates[1].at - creates[0].at >= Duration::from_millis(950),
            "{kind:?}: did not wait"
        );
        assert_eq!(s.server.posts().len(), 1);
        assert_eq!(url, s.server.post_url(&s.server.posts()[0].id));
        if kind == Kind::Mastodon {
            assert_eq!(
                creates[0].header("idempotency-key"),
                creates[1].header("idempotency-key")
            );
        }
    }
}

#[test]
fn x_rate_limit_reset_header_is_honoured() {
    let s = setup(Kind::X, true);
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 4;
    s.server.fault(Fault::Status(
        429,
        vec![
            ("x-rate-limit-reset".into(), reset.to_string()),
            ("x-rate-limit-remaining".into(), "0".into()),
        ],
        r#"{"title":"Too Many Requests"}"#.into(),
    ));
    sent_url(&s.post("After the reset"));
    let creates = s.server.creates();
    assert_eq!(creates.len(), 2);
    // The retry waits for the second X names, however long the first attempt took to start.
    let reset_at = std::time::UNIX_EPOCH + Duration::from_secs(reset);
    assert!(
        creates[1].wall >= reset_at,
        "retried {:?} before the reset",
        reset_at.duration_since(creates[1].wall).unwrap_or_default()
    );
    assert!(
        creates[0].wall < reset_at,
        "the first attempt came after the reset"
    );
}

#[test]
fn mastodon_5xx_is_retried_with_the_same_idempotency_key() {
    let s = setup(Kind::Mastodon, true);
    s.server.fault(Fault::Status(
        503,
        vec![],
        "<html>Service Unavailable</html>".into(),
    ));
    s.server.fault(Fault::Status(502, vec![], "".into()));
    sent_url(&s.post("Through two server errors"));
    let creates = s.server.creates();
    assert_eq!(creates.len(), 3);
    let keys: Vec<_> = creates
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(s.server.posts().len(), 1);
}

#[test]
fn x_duplicate_403_is_resolved_by_looking_not_by_retrying() {
    let s = setup(Kind::X, true);
    let text = "Posted, then the journal was lost";
    let url = sent_url(&s.post(text));
    // Lose the journal: gate no longer knows it sent this.
    for f in [
        "journal.sqlite3",
        "journal.sqlite3-wal",
        "journal.sqlite3-shm",
    ] {
        let _ = std::fs::remove_file(s.sandbox.path().join("state").join(f));
    }
    let run = s.post(text);
    assert_eq!(sent_url(&run), url, "{run:?}");
    let creates = s.server.creates();
    assert_eq!(creates.len(), 2, "one refused duplicate, no blind retry");
    assert_eq!(s.server.posts().len(), 1);
    assert!(
        s.server
            .requests()
            .iter()
            .any(|r| r.path == "/2/users/42/tweets")
    );
}

/// X refuses a copy of an older post with the same words (made by hand on the website, or a
/// week ago). That post is not this delivery's: gate says so and how to post (change the
/// text), once, without resending the copy again and again, and the delivery is `failed`.
#[test]
fn x_duplicate_of_an_older_post_is_refused_once_with_change_the_text() {
    let s = setup(Kind::X, true);
    let text = "We said this last week";
    s.server
        .seed(text, s.server.now() - chrono::Duration::days(7));
    let run = s.run(&["post", "--yes", "--json", text]);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(
        run.stderr.contains("duplicate content")
            && run.stderr.contains(
                "hint: the account already has an older post with these very words, and the network refuses a copy; to post it, change its text; nothing was sent"
            ),
        "{run:?}"
    );
    assert_eq!(run.json()["failed"][0]["maybe_sent"], false, "{run:?}");
    assert_eq!(
        s.server.creates().len(),
        1,
        "the refused copy is not sent again"
    );
    assert_eq!(s.server.posts_with(text).len(), 1);
    let state: String = rusqlite::Connection::open(s.sandbox.path().join("state/journal.sqlite3"))
        .unwrap()
        .query_row("SELECT state FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "failed");
}

#[test]
fn a_refusal_is_exit_9_and_a_rejected_token_exit_8() {
    for kind in [Kind::Mastodon, Kind::X] {
        let s = setup(kind, true);
        s.server.fault(Fault::Status(
            422,
            vec![],
            r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#.into(),
        ));
        let run = s.post("Refused once");
        assert_eq!(run.code, 9, "{run:?}");
        assert!(
            run.stderr
                .contains("answered 422: Validation failed: Text character limit of 500 exceeded"),
            "{run:?}"
        );
        assert!(
            run.stderr
                .contains("hint: the network refused the post; nothing was sent"),
            "{run:?}"
        );
        assert_eq!(s.server.creates().len(), 1, "a refusal is not retried");
        // The same command later sends it (once).
        sent_url(&s.post("Refused once"));
        assert_eq!(s.server.posts().len(), 1);

        s.server.fault(Fault::Status(
            401,
            vec![],
            r#"{"error":"The access token was revoked"}"#.into(),
        ));
        let run = s.run(&["post", "--yes", "--json", "Token revoked"]);
        assert_eq!(run.code, 8, "{run:?}");
        assert!(
            run.stderr.contains("run `gate auth login brand`"),
            "{run:?}"
        );
        let doc = run.json();
        assert_eq!(doc["failed"][0]["account"], "brand");
        assert_eq!(doc["failed"][0]["code"], 8);
        assert_eq!(doc["sent"], serde_json::json!([]));
    }
}

#[test]
fn wait_sleeps_through_a_blackout_then_sends() {
    let s = setup(Kind::Mastodon, true);
    let now = chrono::Utc::now();
    // Whole seconds, as the policy writes it.
    let end = chrono::DateTime::from_timestamp(now.timestamp() + 3, 0).unwrap();
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let held = s.sandbox.write(
        "blackout.toml",
        &format!(
            "{}\n[[blackouts]]\nfrom = \"{}\"\nto = \"{}\"\nreason = \"Launch embargo\"\n",
            policy(Kind::Mastodon, &s.server.url),
            fmt(now - chrono::Duration::seconds(60)),
            fmt(end)
        ),
    );
    let policy_flag = held.to_str().unwrap();
    let run = s.run(&[
        "--policy",
        policy_flag,
        "post",
        "--yes",
        "--json",
        "After the embargo",
    ]);
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(
        run.json()["posts"][0]["findings"][0]["until"],
        fmt(end).as_str()
    );
    assert!(s.server.requests().is_empty());

    let run = s.run(&[
        "--policy",
        policy_flag,
        "post",
        "--yes",
        "--wait",
        "--max-wait",
        "1m",
        "After the embargo",
    ]);
    sent_url(&run);
    assert!(run.stderr.contains("held until"), "{run:?}");
    assert!(chrono::Utc::now() >= end);
    assert_eq!(s.server.posts().len(), 1);
}

/// On a terminal (a pseudo-terminal from `script`), gate shows the exact post and asks; "no"
/// sends nothing, "yes" sends it.
#[test]
fn a_terminal_is_asked_and_no_sends_nothing() {
    common::require_tool("script");
    let s = setup(Kind::Mastodon, true);
    // `script -e` gives gate a terminal and returns its exit code; the answer is typed after
    // the prompt is up.
    let ask = |answer: &str| {
        on_a_terminal(
            &s,
            &format!("sleep 1; printf '{answer}'"),
            "Asked on a terminal",
        )
    };
    // The answer takes Enter (item 4 of the first-user papercuts: one key used to send).
    let run = ask("n\\r");
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains("Asked on a terminal\n---\nto: `brand` (mastodon at "),
        "{run:?}"
    );
    assert!(run.stdout.contains("Send this post to `brand`?"), "{run:?}");
    assert!(run.stdout.contains("not sent"), "{run:?}");
    assert!(s.server.account_requests().is_empty());
    let run = ask("y\\r");
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(s.server.posts().len(), 1);
    assert!(
        run.stdout
            .contains(&s.server.post_url(&s.server.posts()[0].id)),
        "{run:?}"
    );
}

/// `brand` on a fake Mastodon and `brand-x` on a fake X, both signed in to one keychain.
struct TwoNetworks {
    mastodon: Server,
    x: Server,
    sandbox: Sandbox,
    _bus: SessionBus,
    mastodon_token: String,
    x_token: String,
}

fn two_networks() -> TwoNetworks {
    let (mastodon_token, x_token) = (canary(), format!("{}-x", canary()));
    let mastodon = Server::start(Kind::Mastodon, &mastodon_token);
    let x = Server::start(Kind::X, &x_token);
    let (sandbox, bus) = Builder::new(format!(
        "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"{}\"\n[accounts.brand-x]\nplatform = \"x\"\nserver = \"{}\"\n",
        mastodon.url, x.url
    ))
    .keychain(Keychain::Own)
    .token("brand", &mastodon_token)
    .token("brand-x", &x_token)
    .build();
    TwoNetworks {
        mastodon,
        x,
        sandbox,
        _bus: bus.unwrap(),
        mastodon_token,
        x_token,
    }
}

/// One post file for two accounts on two networks: each is reported; a failure on one does
/// not stop the other, and the exit code is the failure's.
#[test]
fn several_accounts_are_reported_each() {
    let TwoNetworks {
        mastodon,
        x,
        sandbox,
        _bus,
        mastodon_token,
        x_token,
    } = two_networks();
    let file = sandbox.write(
        "both.post.toml",
        "accounts = [\"brand\", \"brand-x\"]\ntext = \"On both networks\"\n",
    );
    x.fault(Fault::Status(
        503,
        vec![],
        "{\"title\":\"Service Unavailable\"}".into(),
    ));
    x.fault(Fault::Status(
        401,
        vec![],
        "{\"title\":\"Unauthorized\"}".into(),
    ));
    let file = file.to_str().unwrap();
    let run = sandbox.run(&["post", "--yes", "--json", "--file", file]);
    assert_eq!(run.code, 8, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["posts"].as_array().unwrap().len(), 2);
    assert_eq!(doc["sent"][0]["account"], "brand");
    assert_eq!(
        doc["sent"][0]["url"],
        mastodon.post_url(&mastodon.posts()[0].id).as_str()
    );
    assert_eq!(doc["failed"][0]["account"], "brand-x");
    assert_eq!(doc["failed"][0]["code"], 8);
    assert!(x.posts().is_empty());
    // Again: Mastodon's delivery is journaled, X's is sent now; each exactly once.
    let run = sandbox.run(&["post", "--yes", "--file", file]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 2, "{run:?}");
    assert_eq!((mastodon.posts().len(), x.posts().len()), (1, 1));
    assert_eq!(mastodon.creates().len(), 1);
    for run_output in [&run.stdout, &run.stderr] {
        assert!(!run_output.contains(&mastodon_token) && !run_output.contains(&x_token));
    }
}

/// The adapters through the trait, without the command: who am I, publish, find, delete.
#[test]
fn adapters_publish_find_and_delete_through_the_trait() {
    use gate::platforms::{Lookup, Outgoing, SendError};
    use secrecy::SecretString;
    for kind in [Kind::Mastodon, Kind::X] {
        let token = canary();
        let server = Server::start(kind, &token);
        let (policy, diagnostics) = gate::core::policy::parse(
            &gate::core::diagnostic::Source::new("gate.toml", policy(kind, &server.url)),
        );
        let policy = policy.unwrap_or_else(|| panic!("{diagnostics:?}"));
        let account = policy.account("brand").unwrap();
        let connect = |token: &str| {
            let credential = gate::credential::Credential::from_token(SecretString::from(token));
            gate::platforms::connect(account, credential, gate::http::client().unwrap()).unwrap()
        };
        let platform = connect(&token);
        assert_eq!(platform.whoami().unwrap(), "brand", "{kind:?}");
        let key = platform.new_key("d/brand");
        assert_ne!(key, platform.new_key("e/brand"), "{kind:?}");
        if kind == Kind::Mastodon {
            // The key is the delivery's: every journal sends it with the same one.
            assert_eq!(key, platform.new_key("d/brand"));
        }
        let since = chrono::Utc::now();
        let text = "Through the trait <&> \"quoted\"";
        let out = Outgoing {
            text,
            media: &[],
            reply_to: None,
            language: Some("en"),
            key: &key,
            visibility: None,
            progress: &gate::platforms::Progress::HIDDEN,
        };
        assert_eq!(
            platform.find(&out, since).unwrap(),
            Lookup::Absent,
            "{kind:?}"
        );
        let published = platform.publish(&out).unwrap();
        assert_eq!(published.url, server.post_url(&published.id));
        assert_eq!(
            platform.find(&out, since).unwrap(),
            Lookup::Found(published.clone()),
            "{kind:?}"
        );
        match kind {
            // The same key again: the server's original status, not a new one.
            Kind::Mastodon => {
                assert_eq!(platform.publish(&out).unwrap(), published);
                assert_eq!(
                    server.creates()[0].form_values("language"),
                    vec!["en".to_owned()]
                );
            }
            // A duplicate text: a copy refused, for the caller to resolve by looking, never a
            // retry.
            Kind::X => {
                let e = platform.publish(&out).unwrap_err();
                assert!(
                    matches!(&e, SendError::Duplicate { message } if message.contains("duplicate content")),
                    "{e:?}"
                );
                assert_eq!(server.creates().len(), 2);
            }
        }
        assert_eq!(server.posts().len(), 1);
        platform.delete(&published.id).unwrap();
        assert!(server.posts().is_empty());
        assert_eq!(platform.find(&out, since).unwrap(), Lookup::Absent);
        let e = connect("wrong-token").whoami().unwrap_err();
        assert!(matches!(e, SendError::Credentials { .. }), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Language, visibility, replies.

/// A post file's `language`, `visibility` and `reply_to` reach Mastodon's form exactly; the
/// flags do the same for inline text and override a post file's keys.
#[test]
fn mastodon_gets_language_visibility_and_in_reply_to_id() {
    let s = setup(Kind::Mastodon, true);
    let file = s.sandbox.write(
        "reply.post.toml",
        "account = \"brand\"\ntext = \"Obrigado!\"\nlanguage = \"pt-BR\"\nvisibility = \"unlisted\"\nreply_to = \"110123456789012345\"\n",
    );
    let file = file.to_str().unwrap();
    let run = s.run(&["post", "--yes", "--json", "--file", file]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["posts"][0]["language"], "pt-BR");
    assert_eq!(doc["posts"][0]["visibility"], "unlisted");
    assert_eq!(doc["posts"][0]["reply_to"], "110123456789012345");
    let r = &s.server.creates()[0];
    assert_eq!(r.form_values("status"), vec!["Obrigado!".to_owned()]);
    assert_eq!(r.form_values("language"), vec!["pt-BR".to_owned()]);
    assert_eq!(r.form_values("visibility"), vec!["unlisted".to_owned()]);
    assert_eq!(
        r.form_values("in_reply_to_id"),
        vec!["110123456789012345".to_owned()]
    );

    // Flags: the address of a status on the account's own instance names its id.
    let parent = format!("{}/@brand/777", s.server.url);
    let run = s.run(&[
        "post",
        "--yes",
        "--language",
        "en-gb",
        "--visibility",
        "private",
        "--reply-to",
        &parent,
        "Thanks for asking",
    ]);
    sent_url(&run);
    let r = &s.server.creates()[1];
    assert_eq!(r.form_values("language"), vec!["en-GB".to_owned()]);
    assert_eq!(r.form_values("visibility"), vec!["private".to_owned()]);
    assert_eq!(r.form_values("in_reply_to_id"), vec!["777".to_owned()]);

    // The flag overrides the file (a new text: the same post is sent once).
    s.sandbox.write(
        "other.post.toml",
        "account = \"brand\"\ntext = \"Gracias\"\nlanguage = \"pt-BR\"\nvisibility = \"unlisted\"\n",
    );
    let run = s.run(&[
        "post",
        "--yes",
        "--language",
        "es",
        "--visibility",
        "direct",
        "--file",
        "other.post.toml",
    ]);
    sent_url(&run);
    let r = &s.server.creates()[2];
    assert_eq!(r.form_values("language"), vec!["es".to_owned()]);
    assert_eq!(r.form_values("visibility"), vec!["direct".to_owned()]);
    assert_eq!(r.form_values("in_reply_to_id"), Vec::<String>::new());

    // A post without options is public, with no language and no parent.
    sent_url(&s.post("Plain"));
    let r = &s.server.creates()[3];
    assert_eq!(r.form_values("visibility"), vec!["public".to_owned()]);
    assert!(r.form_values("language").is_empty() && r.form_values("in_reply_to_id").is_empty());

    // The dry run says what it would send with.
    let run = s.run(&[
        "post",
        "--dry-run",
        "--language",
        "de",
        "--reply-to",
        "9",
        "Noch nicht",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("dry run: would send to `brand` (language de, in reply to 9)"),
        "{run:?}"
    );

    // A bad flag is a usage error, before anything.
    let before = s.server.requests().len();
    let run = s.run(&["post", "--yes", "--language", "en_GB", "Bad tag"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid value for `--language`: `en_GB` is not a language tag: subtags are joined with `-`, not `_`\n  hint: write a BCP 47 language tag: a 2- or 3-letter language, then subtags joined with `-`, e.g. `en`, `en-GB`, `pt-BR`\n"
    );
    let run = s.run(&[
        "post",
        "--yes",
        "--reply-to",
        "https://elsewhere.example/@a/1",
        "Bad parent",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("is not on the account's instance"),
        "{run:?}"
    );
    assert_eq!(s.server.requests().len(), before);
}

/// X: the parent goes in `reply.in_reply_to_tweet_id`; X has no language field, so none is
/// sent (and gate says so).
#[test]
fn x_gets_reply_in_reply_to_tweet_id_and_no_language() {
    let s = setup(Kind::X, true);
    let run = s.run(&[
        "post",
        "--yes",
        "--language",
        "pt-BR",
        "--reply-to",
        "https://x.com/someone/status/1790000000000000000",
        "Obrigado!",
    ]);
    sent_url(&run);
    assert!(
        run.stderr.contains(
            "note: X posts carry no language; `brand` gets the post without `pt-BR` (X detects it)"
        ),
        "{run:?}"
    );
    assert_eq!(
        s.server.creates()[0].json(),
        serde_json::json!({"text": "Obrigado!", "reply": {"in_reply_to_tweet_id": "1790000000000000000"}})
    );
}

/// Bluesky and X have no visibility: anything but `public` is refused before the keychain, the
/// journal or the network; the servers see no request at all.
#[test]
fn a_visibility_bluesky_and_x_cannot_honour_is_refused_before_anything() {
    let s = setup(Kind::X, true);
    let run = s.run(&["post", "--yes", "--visibility", "unlisted", "Only for some"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: visibility `unlisted` is for Mastodon only; `brand` is an X account, which has no such thing\n  hint: X posts are public: remove the visibility, or post to Mastodon accounts only\n"
    );
    // `public` is what X does anyway.
    sent_url(&s.run(&["post", "--yes", "--visibility", "public", "For everyone"]));
    assert_eq!(s.server.creates().len(), 1);

    // Bluesky, as a post file naming a Mastodon account too: nothing goes to either.
    let pds = common::fake_http::FakeServer::start(|_| {
        common::fake_http::json(500, serde_json::json!({}))
    });
    let mastodon = Server::start(Kind::Mastodon, &canary());
    let sandbox = Sandbox::new();
    sandbox.write(
        "gate.toml",
        &format!(
            "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"{}\"\n[accounts.brand-bsky]\nplatform = \"bluesky\"\nserver = \"{}\"\nhandle = \"brand.test\"\n",
            mastodon.url, pds.url
        ),
    );
    sandbox.write(
        "both.post.toml",
        "accounts = [\"brand\", \"brand-bsky\"]\ntext = \"Followers only\"\nvisibility = \"private\"\n",
    );
    let run = sandbox.run(&["post", "--yes", "--file", "both.post.toml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: visibility `private` is for Mastodon only; `brand-bsky` is a Bluesky account, which has no such thing\n --> both.post.toml:3:14\n"
        ),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("= hint: Bluesky posts are public: remove the visibility, or post to Mastodon accounts only"),
        "{run:?}"
    );
    // The flag on inline text to the Bluesky account.
    let run = sandbox.run(&[
        "post",
        "--yes",
        "--account",
        "brand-bsky",
        "--visibility",
        "direct",
        "Hi",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("`brand-bsky` is a Bluesky account"),
        "{run:?}"
    );
    assert!(pds.requests().is_empty(), "{:?}", pds.requests());
    assert!(mastodon.requests().is_empty(), "{:?}", mastodon.requests());
    assert!(!sandbox.path().join("state/journal.sqlite3").exists());
}

/// A post id belongs to one network: a reply to several accounts is refused, nothing sent.
#[test]
fn a_reply_to_several_accounts_is_refused() {
    let (mastodon, x) = (
        Server::start(Kind::Mastodon, &canary()),
        Server::start(Kind::X, &canary()),
    );
    let sandbox = Sandbox::new();
    sandbox.write(
        "gate.toml",
        &format!(
            "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"{}\"\n[accounts.brand-x]\nplatform = \"x\"\nserver = \"{}\"\n",
            mastodon.url, x.url
        ),
    );
    let run = sandbox.run(&[
        "post",
        "--yes",
        "--account",
        "brand",
        "--account",
        "brand-x",
        "--reply-to",
        "123",
        "Agreed",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: a reply goes to one account; this post goes to `brand`, `brand-x`\n  hint: a post's id belongs to one network: write one reply per account\n"
    );
    sandbox.write(
        "reply.post.toml",
        "accounts = [\"brand\", \"brand-x\"]\ntext = \"Agreed\"\nreply_to = \"123\"\n",
    );
    let run = sandbox.run(&["post", "--yes", "--file", "reply.post.toml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: a reply goes to one account; this post goes to `brand`, `brand-x`\n --> reply.post.toml:3:12\n"
        ),
        "{run:?}"
    );
    assert!(mastodon.requests().is_empty() && x.requests().is_empty());
    assert!(!sandbox.path().join("state/journal.sqlite3").exists());
}

// ---------------------------------------------------------------------------------------------
// The Mastodon instance's own length limit.

/// `max_characters: 50` at the instance: a 60-character post with an image is denied (exit 4,
/// a `length` finding naming the instance's limit) before the journal and any upload.
#[test]
fn the_instance_limit_denies_before_the_journal_and_any_upload() {
    let s = setup(Kind::Mastodon, true);
    s.server.instance(
        200,
        r#"{"domain":"fake.example","configuration":{"statuses":{"max_characters":50,"max_media_attachments":4,"characters_reserved_per_url":23}}}"#,
    );
    std::fs::write(s.sandbox.path().join("a.png"), b"\x89PNG not really").unwrap();
    let text = "a".repeat(60);
    s.sandbox.write(
        "long.post.toml",
        &format!(
            "account = \"brand\"\ntext = \"{text}\"\n[[media]]\npath = \"a.png\"\nalt = \"A\"\n"
        ),
    );
    let run = s.run(&["post", "--yes", "--json", "--file", "long.post.toml"]);
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["verdict"], "deny");
    let f = &doc["posts"][0]["findings"][0];
    assert_eq!(f["rule"], "length");
    assert_eq!(f["severity"], "deny");
    assert_eq!(f["limit"], 50);
    assert_eq!(f["length"], 60);
    assert_eq!(
        f["message"],
        format!(
            "60 characters, over the instance's limit of 50 (`max_characters` at {}) for mastodon account `brand`",
            s.server.url
        )
        .as_str()
    );
    let paths: Vec<String> = s
        .server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(paths, vec!["GET /api/v2/instance"]);
    // Public: no token goes with it.
    assert_eq!(s.server.requests()[0].header("authorization"), None);
    assert!(!s.journaled());
    // Human output names it too, and the refusal is audited.
    let run = s.run(&["post", "--yes", "--file", "long.post.toml"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr.contains("over the instance's limit of 50"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("not sent: the post is `deny`"),
        "{run:?}"
    );
    // 50 fits; links count what the instance reserves.
    sent_url(&s.post(&"b".repeat(50)));
    assert_eq!(s.server.creates().len(), 1);
}

/// An instance that cannot say (404, 500, not JSON, no limit) leaves the policy's limits in
/// force, silently unless `-v`; the post goes out.
#[test]
fn an_instance_that_cannot_say_falls_back_to_the_policy() {
    let s = setup(Kind::Mastodon, true);
    let text = |n: usize| format!("{n:03} {}", "c".repeat(56));
    // No answer configured: 404.
    let run = s.run(&["post", "--yes", &text(1)]);
    sent_url(&run);
    assert!(!run.stderr.contains("instance"), "{run:?}");
    for (i, (status, body)) in [
        (500, r#"{"error":"boom"}"#),
        (200, "<html>not json</html>"),
        (200, r#"{"configuration":{}}"#),
    ]
    .into_iter()
    .enumerate()
    {
        s.server.instance(status, body);
        let run = s.run(&["-v", "post", "--yes", &text(i + 2)]);
        sent_url(&run);
        assert!(
            run.stderr.contains(&format!(
                "{}: cannot read the instance's length limit (",
                s.server.url
            )) && run.stderr.contains("); using the policy's"),
            "{run:?}"
        );
    }
    assert_eq!(s.server.creates().len(), 4);
    // The policy's own limit still holds when the instance is silent.
    let run = s.post(&"d".repeat(501));
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(s.server.creates().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Upload progress.

/// A spinner per upload on a terminal (a pseudo-terminal from `script`); nothing of it when
/// stderr is not a terminal, or with `--json`.
#[test]
fn upload_progress_shows_on_a_terminal_only() {
    common::require_tool("script");
    let s = setup(Kind::Mastodon, true);
    std::fs::write(s.sandbox.path().join("a.png"), b"\x89PNG not really").unwrap();
    let file = |name: &str, text: &str| {
        s.sandbox.write(
            name,
            &format!(
                "account = \"brand\"\ntext = \"{text}\"\n[[media]]\npath = \"a.png\"\nalt = \"A\"\n"
            ),
        );
    };
    file("piped.post.toml", "Piped");
    let run = s.run(&["post", "--yes", "--file", "piped.post.toml"]);
    sent_url(&run);
    assert!(!run.stderr.contains("upload"), "{run:?}");

    let on_terminal = |args: &str| {
        let mut cmd = s.sandbox.program("sh");
        // indicatif draws nothing when `TERM` is unset or `dumb`; the sandbox clears it.
        cmd.env("TERM", "xterm");
        cmd.args([
            "-c",
            &format!("script -qec \"\\\"$GATE\\\" {args}\" /dev/null"),
        ]);
        let out = cmd.output().unwrap();
        let run = Run {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
            stderr: String::from_utf8_lossy(&out.stderr).replace('\r', ""),
        };
        s.no_token(&run);
        run
    };
    file("tty.post.toml", "On a terminal");
    let run = on_terminal("post --yes --file tty.post.toml");
    assert_eq!(run.code, 0, "{run:?}");
    // The spinner while Mastodon processes the file (the fake makes it wait one poll), then
    // the line it leaves.
    assert!(
        run.stdout.contains("`brand`: uploading a.png (15 B) [1/1]"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("`brand`: uploaded a.png (15 B)"),
        "{run:?}"
    );
    file("quiet.post.toml", "Quietly");
    let run = on_terminal("-q post --yes --file quiet.post.toml");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains("upload"), "{run:?}");
    file("json.post.toml", "As JSON");
    let run = on_terminal("post --yes --json --file json.post.toml");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains("upload"), "{run:?}");
    assert_eq!(s.server.posts().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Maybe sent is never "nothing was sent"; checked at the moment of sending.

/// The server made the status but the answer was lost (a dropped connection), and the retry
/// with the same key is then refused outright (429 with a long `Retry-After`, 401): the first
/// try may have gone out, so the delivery is never `failed` and never "nothing was sent"; gate
/// looks, finds it, and reports it sent, once.
#[test]
fn a_refusal_after_an_unknown_try_is_resolved_by_looking_not_reported_as_not_sent() {
    let s = setup(Kind::Mastodon, true);
    let cases: [(&str, Fault); 2] = [
        (
            "Made, then rate limited",
            Fault::Status(
                429,
                vec![("Retry-After".into(), "3600".into())],
                r#"{"error":"Too many requests"}"#.into(),
            ),
        ),
        (
            "Made, then the token rejected",
            Fault::Status(
                401,
                vec![],
                r#"{"error":"The access token was revoked"}"#.into(),
            ),
        ),
    ];
    for (text, second) in cases {
        s.server.fault(Fault::DropAfterCreate);
        s.server.fault(second);
        let run = s.run(&["post", "--yes", "--json", text]);
        assert!(
            !run.stderr.contains("nothing was sent"),
            "{text}: a post that went out is reported as not sent: {run:?}"
        );
        assert_eq!(run.code, 0, "{text}: {run:?}");
        let posts = s.server.posts_with(text);
        assert_eq!(posts.len(), 1, "{text}");
        assert_eq!(
            run.json()["sent"][0]["url"],
            s.server.post_url(&posts[0].id).as_str()
        );
        let run = s.run(&["post", "--yes", text]);
        assert!(run.stderr.contains("already sent"), "{text}: {run:?}");
        assert_eq!(s.server.posts_with(text).len(), 1, "{text}: sent twice");
    }
}

/// An earlier run died after the post went out (the journal says `pending`), and the next run
/// fails before it can look: its token has expired and the token endpoint is down. The lower
/// layer's "nothing was sent" speaks of its own request; gate must say the post may be out.
#[test]
fn a_failure_before_looking_for_an_earlier_try_never_says_nothing_was_sent() {
    let s = setup(Kind::X, true);
    let text = "Out before the crash";
    s.kill_at(text, "after-publish");
    assert_eq!(s.server.posts_with(text).len(), 1);

    let closed = common::oauth::free_port();
    s.sandbox.write(
        "gate.toml",
        &format!(
            "{}\n[accounts.brand.oauth]\nclient_id = \"gate-test\"\ntoken_url = \"http://127.0.0.1:{closed}/2/oauth2/token\"\n",
            policy(Kind::X, &s.server.url)
        ),
    );
    let bus = s.bus.as_ref().unwrap();
    let user = format!("brand@{}", s.server.url.trim_start_matches("http://"));
    let mut doc = bus.stored(&user);
    doc["refresh_token"] = canary().into();
    doc["expires_at"] = "2001-01-01T00:00:00Z".into();
    bus.store(&user, &doc);

    let run = s.post(text);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(
        !run.stderr.contains("nothing was sent"),
        "a post that went out is reported as not sent: {run:?}"
    );
    assert!(
        run.stderr.contains("an earlier attempt may have gone out"),
        "{run:?}"
    );
    let run = s.run(&["post", "--yes", "--json", text]);
    assert_eq!(run.code, 9, "{run:?}");
    assert_eq!(run.json()["failed"][0]["maybe_sent"], true, "{run:?}");
    assert!(
        !run.json()["failed"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent"),
        "{run:?}"
    );
    assert_eq!(s.server.posts_with(text).len(), 1, "sent twice");
}

/// A policy with `brand` on `server` and a blackout that ends at `end`, plus `extra`.
fn blackout_policy(
    kind: Kind,
    url: &str,
    end: chrono::DateTime<chrono::Utc>,
    extra: &str,
) -> String {
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "{}{extra}\n[[blackouts]]\nfrom = \"{}\"\nto = \"{}\"\nreason = \"Embargo\"\n",
        policy(kind, url),
        fmt(end - chrono::Duration::seconds(120)),
        fmt(end)
    )
}

/// While `--wait` sleeps through a hold, the team commits a `[freeze]`, or a new banned term,
/// to the policy: the post is judged again with it when it wakes, and nothing is sent.
#[test]
fn a_policy_changed_while_wait_sleeps_stops_the_send() {
    let s = setup(Kind::Mastodon, true);
    for (text, change, code) in [
        (
            "Frozen while waiting",
            "\n[freeze]\nreason = \"incident\"\n",
            7,
        ),
        ("Newly banned while waiting", "", 4),
    ] {
        let end = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 3, 0).unwrap();
        let path = s.sandbox.write(
            "gate.toml",
            &blackout_policy(Kind::Mastodon, &s.server.url, end, ""),
        );
        let mut child = s.spawn(
            &[
                "post",
                "--yes",
                "--json",
                "--wait",
                "--max-wait",
                "1m",
                text,
            ],
            None,
        );
        let stderr = wait_for(&mut child, "held until");
        let mut changed = blackout_policy(Kind::Mastodon, &s.server.url, end, change);
        if change.is_empty() {
            changed = changed.replace(
                "deny = [\"layoffs\"]",
                "deny = [\"layoffs\", \"newly banned\"]",
            );
        }
        std::fs::write(&path, changed).unwrap();
        let run = finish(child, stderr);
        assert_eq!(run.code, code, "{text}: {run:?}");
        assert!(s.server.posts().is_empty(), "{text}: sent after the change");
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(doc["failed"][0]["maybe_sent"], false, "{run:?}");
        assert!(doc["sent"].as_array().unwrap().is_empty());
    }
    // Both stops are in the audit trail as refusals.
    let log = s.run(&["log", "--json"]);
    let refused: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "refused")
        .collect();
    assert_eq!(refused.len(), 2, "{log:?}");
    assert_eq!(refused[0]["verdict"], "frozen");
    assert_eq!(refused[1]["verdict"], "deny");
}

/// `gate freeze` while the confirmation prompt is open (a real pseudo-terminal): answering
/// yes afterwards sends nothing.
#[test]
fn a_freeze_while_the_prompt_is_open_stops_the_send() {
    common::require_tool("script");
    let s = setup(Kind::Mastodon, true);
    let run = on_a_terminal(
        &s,
        "sleep 2; \"$GATE\" freeze --reason 'mid-prompt incident' >/dev/null 2>&1; printf 'y\\r'",
        "Asked, then frozen",
    );
    assert!(run.stdout.contains("Send this post to `brand`?"), "{run:?}");
    assert_eq!(run.code, 7, "{run:?}");
    assert!(run.stdout.contains("mid-prompt incident"), "{run:?}");
    assert!(s.server.posts().is_empty(), "sent after the freeze");
    assert!(s.server.creates().is_empty());
}

/// A second process waits for the delivery lock that a first one holds; a freeze is made
/// while it waits; the first dies without sending. The second must not send.
#[test]
fn a_freeze_while_another_process_holds_the_lock_stops_the_send() {
    let s = setup(Kind::Mastodon, true);
    let text = "Waiting on the lock";
    let mut holder = s.spawn(&["post", "--yes", text], Some("locked"));
    let _held = wait_for(&mut holder, "gate-test-fault: locked");
    let waiter = s.spawn(&["post", "--yes", "--json", text], None);
    std::thread::sleep(Duration::from_millis(700));
    let run = s.run(&["freeze", "--reason", "while locked"]);
    assert_eq!(run.code, 0, "{run:?}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    let out = waiter.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["verdict"], "frozen");
    assert_eq!(doc["failed"][0]["code"], 7);
    assert!(s.server.posts().is_empty(), "sent after the freeze");
}

/// A post to two accounts: the freeze made after the first was sent stops the second.
#[test]
fn a_freeze_between_the_accounts_of_a_post_stops_the_rest() {
    let TwoNetworks {
        mastodon,
        x,
        sandbox,
        _bus,
        ..
    } = two_networks();
    let file = sandbox.write(
        "both.post.toml",
        "accounts = [\"brand\", \"brand-x\"]\ntext = \"One of two, then frozen\"\n",
    );
    let mut cmd = sandbox.command(&["post", "--yes", "--json", "--file", file.to_str().unwrap()]);
    cmd.env("GATE_TEST_PAUSE", "after-sent:3000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = wait_for(&mut child, "gate-test-pause: after-sent");
    let run = sandbox.run(&["freeze", "--reason", "between accounts"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = finish(child, stderr);
    assert_eq!(run.code, 7, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["sent"][0]["account"], "brand");
    assert_eq!(doc["failed"][0]["account"], "brand-x");
    assert_eq!(doc["failed"][0]["code"], 7);
    assert_eq!(doc["failed"][0]["maybe_sent"], false);
    assert_eq!((mastodon.posts().len(), x.posts().len()), (1, 0));
    assert!(x.creates().is_empty());
}

/// Ten processes sleep through the same hold with `--wait` and wake together against
/// `max_posts_per_hour = 3`: the claim counts the sends in flight under the journal's lock,
/// so exactly three go out and the others are held.
#[test]
fn ten_processes_woken_together_send_exactly_the_limit() {
    let s = setup(Kind::Mastodon, true);
    let end = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 4, 0).unwrap();
    let policy = blackout_policy(Kind::Mastodon, &s.server.url, end, "").replace(
        "[banned_terms]",
        "[limits]\nmax_posts_per_hour = 3\n\n[banned_terms]",
    );
    s.sandbox.write("gate.toml", &policy);
    let children: Vec<Child> = (0..10)
        .map(|i| {
            s.spawn(
                &[
                    "post",
                    "--yes",
                    "--wait",
                    "--max-wait",
                    "1m",
                    &format!("Announcement {i}"),
                ],
                None,
            )
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    let sent = codes.iter().filter(|c| **c == 0).count();
    let held = codes.iter().filter(|c| **c == 5).count();
    assert_eq!((sent, held), (3, 7), "{codes:?}");
    assert_eq!(s.server.posts().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Hostile servers.

/// A server that echoes the request's `Authorization` header (and the form) in its error
/// bodies (a 422, a 401, a 500): the token appears nowhere gate writes, not on stderr, not in
/// `--json`, not in the journal or its WAL.
#[test]
fn a_server_that_echoes_the_token_never_gets_it_printed_or_stored() {
    use common::fake_http::{FakeServer, json};
    let token = canary();
    for status in [422u16, 401, 500] {
        let server = FakeServer::start(move |r| {
            let echoed = format!(
                "rejected {} with body {}",
                r.header("authorization").unwrap_or_default(),
                r.text()
            );
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", "/api/v1/accounts/verify_credentials") => json(
                    200,
                    serde_json::json!({"id": "7", "username": "brand", "acct": "brand"}),
                ),
                ("GET", "/api/v1/accounts/7/statuses") => json(200, serde_json::json!([])),
                _ => json(status, serde_json::json!({ "error": echoed })),
            }
        });
        let (sandbox, _bus) = Builder::new(policy(Kind::Mastodon, &server.url))
            .keychain(Keychain::Own)
            .token("brand", &token)
            .build();
        for json_flag in [false, true] {
            let mut args = vec!["post", "--yes", "Echo me"];
            if json_flag {
                args.push("--json");
            }
            let run = sandbox.run(&args);
            assert_ne!(run.code, 0, "{status}: {run:?}");
            assert!(
                server
                    .requests()
                    .iter()
                    .any(|r| r.header("authorization") == Some(&format!("Bearer {token}"))),
                "the token was sent"
            );
            assert!(
                !run.stdout.contains(&token) && !run.stderr.contains(&token),
                "{status}: the token leaked: {run:?}"
            );
            assert!(
                run.stderr.contains("****") || run.stdout.contains("****"),
                "{status}: the echo is shown, hidden: {run:?}"
            );
        }
        for file in ["journal.sqlite3", "journal.sqlite3-wal"] {
            let path = sandbox.path().join("state").join(file);
            if let Ok(bytes) = std::fs::read(&path) {
                assert!(
                    !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                    "{status}: the token is stored in {file}"
                );
            }
        }
    }
}

/// A 307 or 308 to another host is an answer, never followed: the token, in its header or a
/// body, is not sent on to wherever the server points.
#[test]
fn a_redirect_is_never_followed_with_a_credential() {
    use common::fake_http::{FakeServer, Reply, json};
    let thief =
        FakeServer::start(|_| json(200, serde_json::json!({"id": "1", "url": "https://x/1"})));
    let token = canary();
    for status in [307u16, 308, 302] {
        let to = format!("{}/api/v1/statuses", thief.url);
        let server = FakeServer::start(move |r| match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v1/accounts/verify_credentials") => json(
                200,
                serde_json::json!({"id": "7", "username": "brand", "acct": "brand"}),
            ),
            ("GET", "/api/v1/accounts/7/statuses") => json(200, serde_json::json!([])),
            _ => Reply {
                status,
                body: String::new(),
                headers: vec![("Location".into(), to.clone())],
            },
        });
        let (sandbox, _bus) = Builder::new(policy(Kind::Mastodon, &server.url))
            .keychain(Keychain::Own)
            .token("brand", &token)
            .build();
        let run = sandbox.run(&["post", "--yes", "Redirected"]);
        assert_eq!(run.code, 9, "{status}: {run:?}");
        assert!(
            thief.requests().is_empty(),
            "{status}: the redirect was followed: {:?}",
            thief.requests()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups after an unknown outcome: never another post taken for ours.

impl Setup {
    /// Moves every delivery's claim back by `by`, as if it had been made that long ago (the
    /// journal's `created_at`, RFC 3339).
    fn backdate_claims(&self, by: Duration) {
        let db =
            rusqlite::Connection::open(self.sandbox.path().join("state/journal.sqlite3")).unwrap();
        let rows: Vec<(i64, String)> = db
            .prepare("SELECT rowid, created_at FROM deliveries")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!rows.is_empty(), "no delivery to backdate");
        for (rowid, created) in rows {
            let then = chrono::DateTime::parse_from_rfc3339(&created)
                .unwrap()
                .to_utc()
                - chrono::Duration::from_std(by).unwrap();
            db.execute(
                "UPDATE deliveries SET created_at = ?1 WHERE rowid = ?2",
                rusqlite::params![
                    then.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    rowid
                ],
            )
            .unwrap();
        }
    }

    fn states(&self) -> Vec<String> {
        let db =
            rusqlite::Connection::open(self.sandbox.path().join("state/journal.sqlite3")).unwrap();
        db.prepare("SELECT state FROM deliveries")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

/// Last week's "New post: <another link>" (and one from two minutes ago, inside the clock-skew
/// margin) is not this post: after a create dropped before it reached X, the new one goes out
/// exactly once and its URL is printed.
#[test]
fn x_an_older_post_with_another_link_is_not_taken_for_this_one() {
    let s = setup(Kind::X, true);
    let now = chrono::Utc::now();
    let week = s.server.seed(
        "New post: https://example.com/old",
        now - chrono::Duration::days(7),
    );
    let recent = s
        .server
        .seed("New post: https://example.com/older", now - minutes(2));
    let text = "New post: https://example.com/new";
    s.server.fault(Fault::DropBeforeCreate);
    let url = sent_url(&s.post(text));
    let posts = s.server.posts_with(text);
    assert_eq!(posts.len(), 1, "{:?}", s.server.posts());
    assert_eq!(url, s.server.post_url(&posts[0].id));
    assert_ne!(url, s.server.post_url(&week));
    assert_ne!(url, s.server.post_url(&recent));
    assert_eq!(s.server.creates().len(), 2);
    assert_eq!(s.server.posts().len(), 3);
    // The lookup asked for the posts since the claim, as documented.
    let lookup = s
        .server
        .requests()
        .into_iter()
        .find(|r| r.path == "/2/users/42/tweets")
        .expect("a lookup");
    assert!(lookup.query.contains("start_time="), "{lookup:?}");
    assert!(lookup.query.contains("max_results=100"), "{lookup:?}");
}

/// A post with a link (`&` in its query), one with media and `& < >`, and a reply: each is
/// found after a create that went out and was not answered, and not sent again.
#[test]
fn x_a_dropped_create_is_found_for_links_media_entities_and_replies() {
    let s = setup(Kind::X, true);
    std::fs::write(s.sandbox.path().join("slides.png"), b"\x89PNG slides").unwrap();
    s.sandbox.write(
        "media.post.toml",
        "account = \"brand\"\ntext = \"Slides & notes <3 > all: https://example.com/s?a=1&b=2\"\n[[media]]\npath = \"slides.png\"\nalt = \"The first slide\"\n",
    );
    // (text, command, whether X shows a text other than the one sent)
    let cases: [(&str, Vec<&str>, bool); 3] = [
        (
            "Release notes: https://example.com/notes?a=1&b=2 (read them).",
            vec![
                "post",
                "--yes",
                "Release notes: https://example.com/notes?a=1&b=2 (read them).",
            ],
            true,
        ),
        (
            "Slides & notes <3 > all: https://example.com/s?a=1&b=2",
            vec!["post", "--yes", "--file", "media.post.toml"],
            true,
        ),
        (
            "Thanks, we are on it",
            vec![
                "post",
                "--yes",
                "--reply-to",
                "https://x.com/someone/status/1790000000000000000",
                "Thanks, we are on it",
            ],
            false,
        ),
    ];
    for (text, args, rebuilt) in cases {
        let creates = s.server.creates().len();
        s.server.fault(Fault::DropAfterCreate);
        let run = s.run(&args);
        let url = sent_url(&run);
        let posts = s.server.posts_with(text);
        assert_eq!(posts.len(), 1, "{text}: {:?}", s.server.posts());
        assert_eq!(url, s.server.post_url(&posts[0].id), "{text}");
        assert_eq!(s.server.creates().len(), creates + 1, "{text}: sent again");
        // What X shows is not what was sent: the lookup had to rebuild it.
        assert_eq!(posts[0].stored != text, rebuilt, "{}", posts[0].stored);
    }
    let reply = &s.server.posts_with("Thanks, we are on it")[0];
    assert_eq!(reply.reply_to.as_deref(), Some("1790000000000000000"));
    assert_eq!(s.server.posts().len(), 3);
}

/// More posts since the claim than one lookup sees: gate cannot tell, says so (exit 9, naming
/// `--force-resend`) and sends nothing; `--force-resend` then sends it, once.
#[test]
fn x_more_candidates_than_one_page_is_undetermined_until_force_resend() {
    let s = setup(Kind::X, true);
    let now = chrono::Utc::now();
    for i in 0..105 {
        s.server.seed(
            &format!("Update {i} from the launch room"),
            now - minutes(1),
        );
    }
    let text = "Launch day recap";
    s.server.fault(Fault::DropBeforeCreate);
    let run = s.post(text);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(
        run.stderr.contains(
            "`brand`: an earlier attempt may have been sent, and gate cannot tell: `@brand` has more than 100 posts since"
        ),
        "{run:?}"
    );
    assert!(run.stderr.contains("`--force-resend`"), "{run:?}");
    assert!(s.server.posts_with(text).is_empty());
    assert_eq!(s.server.creates().len(), 1);
    assert_eq!(
        s.states(),
        vec!["unknown".to_owned()],
        "a try that may have gone out stays unknown"
    );

    // Again without the flag: still undetermined, still nothing sent.
    let run = s.post(text);
    assert_eq!(run.code, 9, "{run:?}");
    assert_eq!(s.server.creates().len(), 1);

    let run = s.run(&["post", "--yes", "--force-resend", text]);
    let url = sent_url(&run);
    assert!(
        run.stderr.contains("sending anyway (`--force-resend`)"),
        "{run:?}"
    );
    let posts = s.server.posts_with(text);
    assert_eq!(posts.len(), 1);
    assert_eq!(url, s.server.post_url(&posts[0].id));
    assert_eq!(s.server.creates().len(), 2);
}

/// A status with a remote mention renders as `@<span>alice</span>`: after a create that went
/// out unanswered and a lookup that failed, an hour passes (the key is gone); the rerun finds
/// the status by its `/source` and does not send it again. The same for one with an image.
#[test]
fn mastodon_a_status_with_a_remote_mention_is_found_by_its_source_after_the_hour() {
    let text = "Thanks @alice@other.example for the fix: https://example.com/changelog";
    for media in [false, true] {
        let s = setup(Kind::Mastodon, true);
        let args: Vec<&str> = if media {
            std::fs::write(s.sandbox.path().join("fix.png"), b"\x89PNG the fix").unwrap();
            s.sandbox.write(
                "fix.post.toml",
                &format!(
                    "account = \"brand\"\ntext = \"{text}\"\n[[media]]\npath = \"fix.png\"\nalt = \"The fix\"\n"
                ),
            );
            vec!["post", "--yes", "--file", "fix.post.toml"]
        } else {
            vec!["post", "--yes", text]
        };
        s.server.fault(Fault::DropAfterCreate);
        for _ in 0..3 {
            s.server.fault(Fault::Status(
                503,
                vec![],
                "<html>Service Unavailable</html>".into(),
            ));
        }
        s.server.fault_lookup(Fault::Status(
            503,
            vec![],
            "<html>Service Unavailable</html>".into(),
        ));
        let run = s.run(&args);
        assert_eq!(run.code, 9, "{run:?}");
        let posts = s.server.posts_with(text);
        assert_eq!(posts.len(), 1, "the first create made it");
        assert_eq!(posts[0].media_ids.len(), usize::from(media));
        assert_eq!(
            s.states(),
            vec!["unknown".to_owned()],
            "a try that may have gone out stays unknown"
        );
        let creates = s.server.creates().len();

        // An hour and more later, for gate and for the server.
        s.backdate_claims(Duration::from_secs(61 * 60));
        s.server.advance(Duration::from_secs(61 * 60));
        let run = s.run(&args);
        let url = sent_url(&run);
        let posts = s.server.posts_with(text);
        assert_eq!(posts.len(), 1, "sent again: {:?}", s.server.posts());
        assert_eq!(url, s.server.post_url(&posts[0].id));
        assert_eq!(s.server.creates().len(), creates, "{run:?}");
        assert!(
            s.server
                .requests()
                .iter()
                .any(|r| r.path == format!("/api/v1/statuses/{}/source", posts[0].id)),
            "not looked up by its source"
        );
        assert_eq!(s.states(), vec!["sent".to_owned()]);
    }
}

/// Past the key's hour with no status that matches, a resend is no longer protected by the
/// key: exit 9 naming `--force-resend`, nothing sent.
#[test]
fn mastodon_past_the_keys_hour_with_no_match_is_undetermined() {
    let s = setup(Kind::Mastodon, true);
    let now = chrono::Utc::now();
    // Older statuses with the same words do not count, and neither does a reply.
    s.server
        .seed("Quarterly update is live", now - chrono::Duration::days(2));
    s.server
        .seed_reply("Quarterly update is live", "1234", now - minutes(1));
    let text = "Quarterly update is live";
    s.kill_at(text, "after-journal");
    assert!(s.server.creates().is_empty());
    s.backdate_claims(Duration::from_secs(61 * 60));
    s.server.advance(Duration::from_secs(61 * 60));
    let run = s.post(text);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(
        run.stderr.contains(
            "`brand`: an earlier attempt may have been sent, and gate cannot tell: no status of `@brand` since"
        ),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("`Idempotency-Key` has expired"),
        "{run:?}"
    );
    assert!(run.stderr.contains("`--force-resend`"), "{run:?}");
    assert!(
        s.server.creates().is_empty(),
        "sent: {:?}",
        s.server.creates()
    );
    assert_eq!(s.server.posts().len(), 2);
    // Whoever has looked at the account says it is not there: `--force-resend` sends it, once.
    let run = s.run(&["post", "--yes", "--force-resend", text]);
    sent_url(&run);
    assert_eq!(s.server.creates().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// First-user papercuts.

/// A post file's multi-line `text` and a line piped on stdin end with a newline that is not
/// part of the post; the digest still covers the text as written, so approvals stay valid.
#[test]
fn the_final_newline_of_a_post_file_and_stdin_is_not_sent() {
    let s = setup(Kind::Mastodon, true);
    s.sandbox.write(
        "release.post.toml",
        "account = \"brand\"\ntext = \"\"\"\nOur release is out.\nSecond line\n\"\"\"\n",
    );
    let run = s.run(&["post", "--yes", "--file", "release.post.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s
        .sandbox
        .run_with_stdin(&["post", "--yes", "-"], "From a pipe\n");
    s.no_token(&run);
    assert_eq!(run.code, 0, "{run:?}");
    let sent: Vec<Vec<String>> = s
        .server
        .creates()
        .iter()
        .map(|r| r.form_values("status"))
        .collect();
    assert_eq!(
        sent,
        [
            vec!["Our release is out.\nSecond line".to_owned()],
            vec!["From a pipe".to_owned()]
        ]
    );
    // Only the one final newline goes; the digest keeps the text exactly as written.
    let digest = s.run(&["digest", "--file", "release.post.toml"]);
    assert_eq!(digest.code, 0, "{digest:?}");
    let written = "Our release is out.\nSecond line\n";
    assert!(
        digest
            .stdout
            .contains(&format!("text {}\n{written}\nmedia 0", written.len())),
        "{digest:?}"
    );
}

/// `--wait` that cannot wait the hold out within `--max-wait` says so and when it ends.
#[test]
fn wait_beyond_max_wait_says_why_it_did_not_wait() {
    let s = setup(Kind::Mastodon, false);
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now = chrono::Utc::now();
    let end = now + chrono::Duration::hours(2);
    let held = s.sandbox.write(
        "held.toml",
        &format!(
            "{}\n[[blackouts]]\nfrom = \"{}\"\nto = \"{}\"\nreason = \"Embargo\"\n",
            policy(Kind::Mastodon, &s.server.url),
            fmt(now - chrono::Duration::minutes(5)),
            fmt(end)
        ),
    );
    let run = s.run(&[
        "--policy",
        held.to_str().unwrap(),
        "post",
        "--yes",
        "--wait",
        "--max-wait",
        "1m",
        "Our release is out",
    ]);
    assert_eq!(run.code, 5, "{run:?}");
    let until = fmt(end);
    assert!(
        run.stderr.contains(&format!(
            "not waiting: the post is held until {until}, later than `--max-wait 1m` allows\n  hint: give a longer `--max-wait`, or send it then\n"
        )),
        "{run:?}"
    );
    assert!(s.server.requests().is_empty());
}

/// A server nobody answers at: "could not connect" with the host and the port, not a refusal.
#[test]
fn an_unreachable_server_is_named_with_its_port_not_called_a_refusal() {
    for kind in [Kind::Mastodon, Kind::X] {
        let s = setup(kind, true);
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        s.sandbox.write(
            "gate.toml",
            &policy(kind, &format!("http://127.0.0.1:{port}")),
        );
        let login = s.sandbox.run_with_stdin(
            &["auth", "login", "brand", "--with-token"],
            s.server.token(),
        );
        assert_eq!(login.code, 0, "{login:?}");
        let run = s.post("Nobody is listening");
        assert_eq!(run.code, 9, "{run:?}");
        assert!(
            run.stderr.contains(&format!(
                "error: `brand`: could not connect to 127.0.0.1:{port}\n"
            )),
            "{kind:?}: {run:?}"
        );
        assert!(
            run.stderr.contains(
                "hint: the server did not answer; check the account's `server` in the policy and the network; nothing was sent"
            ),
            "{kind:?}: {run:?}"
        );
        assert!(!run.stderr.contains("refused the post"), "{run:?}");
    }
}

/// Runs `gate post TEXT` on a terminal (`script`), typing `keys` (a `printf` format, with
/// `sleep`s between) into it.
fn on_a_terminal(s: &Setup, keys: &str, text: &str) -> Run {
    common::require_tool("script");
    let mut cmd = s.sandbox.program("sh");
    cmd.args([
        "-c",
        &format!("({keys}) | script -qec \"\\\"$GATE\\\" post '{text}'\" /dev/null"),
    ]);
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        stderr: String::from_utf8_lossy(&out.stderr).replace('\r', ""),
    };
    s.no_token(&run);
    run
}

/// On a terminal, `y` alone does not send: the answer takes Enter.
#[test]
fn a_prompt_needs_enter_not_one_key() {
    let s = setup(Kind::Mastodon, true);
    // `y`, two seconds without Enter, then Ctrl-C (0x03, what the terminal sends).
    let run = on_a_terminal(
        &s,
        "sleep 1; printf y; sleep 2; printf '\\003'",
        "Asked, never answered",
    );
    assert!(run.stdout.contains("Send this post to `brand`?"), "{run:?}");
    assert!(
        s.server.posts().is_empty(),
        "`y` without Enter sent the post"
    );
    assert!(s.server.creates().is_empty());
    assert_ne!(run.code, 0, "{run:?}");
}

/// Ctrl-C at the prompt leaves the cursor visible (the prompt hides it) and sends nothing.
#[test]
fn ctrl_c_at_a_prompt_gives_the_cursor_back() {
    let s = setup(Kind::Mastodon, true);
    let run = on_a_terminal(&s, "sleep 1; printf '\\003'", "Asked, then interrupted");
    assert!(run.stdout.contains("Send this post to `brand`?"), "{run:?}");
    assert_eq!(run.code, 130, "{run:?}");
    let hidden = run
        .stdout
        .rfind("\x1b[?25l")
        .expect("the prompt hides the cursor");
    let shown = run.stdout.rfind("\x1b[?25h");
    assert!(
        shown.is_some_and(|shown| shown > hidden),
        "the cursor is left hidden: {run:?}"
    );
    assert!(s.server.creates().is_empty());
}

/// `--dry-run` shows the exact text and media that would go, counted as the network counts
/// it (not in bytes), with the `warn` findings; `-v` says what gate does when it sends.
#[test]
fn dry_run_and_verbose_show_what_would_go_and_what_gate_does() {
    let s = setup(Kind::Mastodon, true);
    let url = s.server.url.clone();
    s.sandbox.write(
        "gate.toml",
        &format!(
            "{}warn = [\"guaranteed\"]\n\n[accounts.bsky]\nplatform = \"bluesky\"\n",
            policy(Kind::Mastodon, &url)
        ),
    );
    s.sandbox.write("pic.png", "not really a png");
    s.sandbox.write(
        "p.post.toml",
        "account = \"brand\"\ntext = \"Results guaranteed 👍🏽\"\n[[media]]\npath = \"pic.png\"\nalt = \"A picture\"\n",
    );
    let run = s.run(&["post", "--dry-run", "--file", "p.post.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    // 👍🏽 is 8 bytes, 2 code points (Mastodon counts those) and 1 grapheme (Bluesky).
    assert!(
        run.stderr.starts_with(&format!(
            "--- text (20 characters on Mastodon)\nResults guaranteed 👍🏽\n---\nmedia: pic.png (16 bytes), alt: A picture\nto: `brand` (mastodon at {url})\nwarning: "
        )),
        "{run:?}"
    );
    assert!(run.stderr.contains("`guaranteed`"), "{run:?}");
    assert!(
        run.stderr.contains("dry run: would send to `brand`"),
        "{run:?}"
    );
    assert!(s.server.creates().is_empty());

    // Bluesky counts graphemes.
    let run = s.run(&["post", "--dry-run", "--account", "bsky", "Results 👍🏽"]);
    assert!(
        run.stderr
            .starts_with("--- text (9 graphemes on Bluesky)\nResults 👍🏽\n---\n"),
        "{run:?}"
    );

    let run = s.run(&["-v", "post", "--yes", "--account", "brand", "Said out loud"]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in [
        "looking up `brand`'s credential in the keychain\n",
        "claimed the delivery to `brand` in the journal (digest ",
        &format!("sending to `brand`: mastodon at {url}\n"),
    ] {
        assert!(run.stderr.contains(line), "{line}: {run:?}");
    }
    let quiet = s.run(&["post", "--yes", "--account", "brand", "Said quietly"]);
    assert!(!quiet.stderr.contains("claimed the delivery"), "{quiet:?}");
}
