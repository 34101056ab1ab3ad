//! `gate retract` and rate limits end to end: the built binary, a private gnome-keyring holding
//! the token, and the fake Mastodon and X servers of `tests/it/fake/` (which serve the documented
//! `DELETE /api/v1/statuses/:id` and `DELETE /2/tweets/:id`).

use crate::common;
use crate::fake;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use common::Sandbox;
use common::setup::{Fake, Keychain, Policy};
use fake::Kind;
use gate::store::Store as _;

/// A fresh fake server for `brand`; `Deref` gives the shared setup's `sandbox`, `server`,
/// `bus` and token-checked `run`.
struct Setup(Fake);

impl std::ops::Deref for Setup {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

fn setup_with(kind: Kind, keychain: bool, extra: &str) -> Setup {
    let keychain = if keychain {
        Keychain::Own
    } else {
        Keychain::None
    };
    Setup(Fake::start(kind, keychain, &["brand"], |url| {
        Policy::new("brand", kind.name(), url).then(extra).text()
    }))
}

fn setup(kind: Kind, keychain: bool) -> Setup {
    setup_with(kind, keychain, "")
}

impl Setup {
    /// Posts `text` and returns the post's id and URL.
    fn post(&self, text: &str) -> (String, String) {
        let run = self.run(&["post", "--yes", "--json", text]);
        assert_eq!(run.code, 0, "{run:?}");
        let doc = run.json();
        let sent = &doc["sent"][0];
        (
            sent["id"].as_str().unwrap().to_owned(),
            sent["url"].as_str().unwrap().to_owned(),
        )
    }

    fn deletes(&self) -> Vec<fake::Request> {
        self.server
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .collect()
    }

    fn delete_path(&self, id: &str) -> String {
        match self.server.kind {
            Kind::Mastodon => format!("/api/v1/statuses/{id}"),
            Kind::X => format!("/2/tweets/{id}"),
        }
    }

    fn journal(&self) -> gate::store::sqlite::Sqlite {
        gate::store::sqlite::Sqlite::open_at(&self.sandbox.path().join("state/journal.sqlite3"))
            .unwrap()
    }
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[test]
fn retract_deletes_as_documented_and_journals_it_once() {
    for kind in [Kind::Mastodon, Kind::X] {
        let s = setup(kind, true);
        let (first_id, first_url) = s.post("The first post");
        let (id, url) = s.post("A post that must go");

        let run = s.run(&["retract", "brand", "--last", "--yes", "--json"]);
        assert_eq!(run.code, 0, "{kind:?} {run:?}");
        let doc = run.json()["retracted"].clone();
        assert_eq!(doc["account"], "brand");
        assert_eq!(doc["id"], id.as_str());
        assert_eq!(doc["url"], url.as_str());
        assert_eq!(doc["earlier"], false);
        // One documented DELETE with the bearer token; the post is gone, the other stays.
        let deletes = s.deletes();
        assert_eq!(deletes.len(), 1, "{kind:?}");
        assert_eq!(deletes[0].path, s.delete_path(&id));
        assert_eq!(
            deletes[0].header("authorization"),
            Some(format!("Bearer {}", s.server.token()).as_str())
        );
        let left: Vec<String> = s.server.posts().into_iter().map(|p| p.id).collect();
        assert_eq!(left, vec![first_id.clone()], "{kind:?}");

        // The journal says so, with the time.
        let row = s.journal().find_sent("brand", &id).unwrap().unwrap();
        assert_eq!(row.state, gate::store::State::Retracted);
        assert_eq!(
            doc["retracted_at"].as_str(),
            row.retracted_at.map(secs).as_deref()
        );

        // Again, by URL: already retracted, exit 0, no request at all.
        let before = s.server.requests().len();
        let again = s.run(&["retract", "brand", &url, "--yes"]);
        assert_eq!(again.code, 0, "{again:?}");
        assert_eq!(again.stdout, format!("{url}\n"));
        assert_eq!(
            again.stderr,
            format!(
                "already retracted from `brand` at {}: {url}\n",
                doc["retracted_at"].as_str().unwrap()
            )
        );
        // `--last` still means the retracted post: a repeated script never deletes an older one.
        let last = s.run(&["retract", "brand", "--last", "--yes"]);
        assert_eq!(last.code, 0, "{last:?}");
        assert!(last.stderr.starts_with("already retracted"), "{last:?}");
        assert_eq!(s.server.requests().len(), before, "{kind:?}");

        // Sending the retracted post again is refused; nothing goes out.
        let repost = s.run(&["post", "--yes", "A post that must go"]);
        assert_eq!(repost.code, 1, "{repost:?}");
        assert!(
            repost.stderr.contains(
                "error: this post to `brand` was retracted with `gate retract`; gate sends a post once\n  hint: to post it again, change its text; nothing was sent"
            ),
            "{repost:?}"
        );
        assert_eq!(s.server.requests().len(), before, "{kind:?}");

        // By id, plain output: the URL on stdout.
        let run = s.run(&["retract", "brand", &first_id, "--yes"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stdout, format!("{first_url}\n"));
        assert_eq!(run.stderr, format!("retracted from `brand`: {first_url}\n"));
        assert_eq!(s.deletes().last().unwrap().path, s.delete_path(&first_id));
        assert!(s.server.posts().is_empty());

        // Each retraction is in the audit trail, after the posts, and the chain holds.
        let log = s.run(&["log", "--json"]);
        assert_eq!(log.code, 0, "{log:?}");
        let events: Vec<(String, Option<String>)> = log
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|e| {
                (
                    e["event"].as_str().unwrap().to_owned(),
                    e["url"].as_str().map(str::to_owned),
                )
            })
            .filter(|(event, _)| event == "post" || event == "retract")
            .collect();
        let retracts: Vec<&Option<String>> = events
            .iter()
            .filter(|(e, _)| e == "retract")
            .map(|(_, u)| u)
            .collect();
        assert_eq!(retracts.len(), 2, "{kind:?} {events:?}");
        assert_eq!(
            retracts.last().unwrap().as_deref(),
            Some(first_url.as_str()),
            "{kind:?}"
        );
        assert_eq!(events.last().unwrap().0, "retract", "{kind:?}");
        let verify = s.run(&["log", "--verify"]);
        assert_eq!(verify.code, 0, "{verify:?}");
    }
}

#[test]
fn a_post_gate_did_not_send_is_refused() {
    let s = setup(Kind::Mastodon, true);
    // No journal yet: signing in wrote one (its audit entry), so take it away first.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(
            s.sandbox
                .path()
                .join(format!("state/journal.sqlite3{suffix}")),
        );
    }
    let run = s.run(&["retract", "brand", "--last", "--yes"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: gate has sent no post to `brand`: gate only retracts posts it sent\n  hint: give the id or URL that `gate post` printed; delete a post made elsewhere on the network itself\n"
    );
    assert!(
        !s.sandbox.path().join("state/journal.sqlite3").exists(),
        "retract created a journal"
    );
    s.post("Something gate did send");
    let elsewhere = format!("{}/@brand/1", s.server.url);
    let run = s.run(&["retract", "brand", &elsewhere, "--yes"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: gate did not send `{elsewhere}` to `brand`: gate only retracts posts it sent\n  hint: give the id or URL that `gate post` printed; delete a post made elsewhere on the network itself\n"
        )
    );
    let run = s.run(&["retract", "nobody", "--last", "--yes"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: unknown account `nobody`\n  hint: the policy defines `brand`\n"
    );
    assert!(s.deletes().is_empty());
    assert_eq!(s.server.posts().len(), 1);
}

#[test]
fn unattended_without_yes_refuses_before_the_keychain_and_the_network() {
    let s = setup(Kind::X, true);
    let (_, url) = s.post("Stays up");
    let before = s.server.requests().len();
    // No session bus at all: a keychain read would be exit 8, so exit 2 shows it came first.
    let out = s
        .sandbox
        .command(&["retract", "brand", "--last"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: refusing to retract without confirmation: stdin is not a terminal\n  hint: pass `--yes` to retract from a script\n"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(s.server.requests().len(), before, "a request was made");
    assert_eq!(s.server.posts().len(), 1);
    let row = s.journal().find_sent("brand", &url).unwrap().unwrap();
    assert_eq!(row.state, gate::store::State::Sent);
}

#[test]
fn a_rejected_token_is_exit_8_and_an_unreachable_server_exit_9() {
    let s = setup(Kind::Mastodon, true);
    let (id, _) = s.post("Rejected, then unreachable");
    // A token the server does not know: 401.
    let run = s
        .sandbox
        .run_with_stdin(&["auth", "login", "brand", "--with-token"], "not-the-token");
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.run(&["retract", "brand", &id, "--yes"]);
    assert_eq!(run.code, 8, "{run:?}");
    assert!(
        run.stderr.ends_with(
            "hint: the token was rejected; run `gate auth login brand`; nothing was retracted\n"
        ),
        "{run:?}"
    );
    assert_eq!(s.server.posts().len(), 1);

    // The server gone: exit 9, still `sent` in the journal.
    let Fake {
        sandbox,
        server,
        bus: _bus,
    } = s.0;
    drop(server);
    let run = sandbox.run(&["retract", "brand", &id, "--yes"]);
    assert_eq!(run.code, 9, "{run:?}");
    assert!(
        run.stderr.contains(
            "hint: the network did not delete the post; run the same `gate retract` again later"
        ) || run
            .stderr
            .contains("hint: the post may or may not be deleted"),
        "{run:?}"
    );
    let journal =
        gate::store::sqlite::Sqlite::open_at(&sandbox.path().join("state/journal.sqlite3"))
            .unwrap();
    let row = journal.find_sent("brand", &id).unwrap().unwrap();
    assert_eq!(row.state, gate::store::State::Sent);
}

#[test]
fn a_third_post_within_the_hour_is_held_and_check_sees_the_same() {
    let s = setup_with(Kind::Mastodon, true, "\n[limits]\nmax_posts_per_hour = 2\n");
    let (first, _) = s.post("One");
    s.post("Two");
    // A retracted post still counts: it went out.
    let run = s.run(&["retract", "brand", &first, "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");

    let run = s.run(&["post", "--yes", "--json", "Three"]);
    assert_eq!(run.code, 5, "{run:?}");
    let sends = s
        .journal()
        .sends_since(Utc::now() - Duration::hours(2))
        .unwrap();
    assert_eq!(sends.len(), 2);
    let until = secs(sends[0].at + Duration::hours(1));
    let expected = serde_json::json!({
        "rule": "rate_limit",
        "severity": "hold",
        "until": until,
        "limit": 2,
        "message": format!("rate limit: 2 posts sent in the last hour, the policy's limit (`[limits] max_posts_per_hour = 2`): held until {until}"),
    });
    let doc = run.json();
    assert_eq!(doc["verdict"], "hold");
    assert_eq!(doc["posts"][0]["findings"], serde_json::json!([expected]));
    assert_eq!(s.server.posts_with("Three").len(), 0);

    // `gate check` reads the same journal and says the same.
    let check = s.run(&["check", "--json", "Three"]);
    assert_eq!(check.code, 5, "{check:?}");
    assert_eq!(
        check.json()["posts"][0]["findings"],
        serde_json::json!([expected])
    );

    // A post that already went out is not held by its own send: a re-run prints its URL.
    let again = s.run(&["post", "--yes", "Two"]);
    assert_eq!(again.code, 0, "{again:?}");
}

/// `check --jsonl` judges batches of lines on several threads, but a line with its own `at`
/// under rate limits needs the journal's ledger of the hour before it, which only the main
/// thread reads. Over a dozen batches, with bad lines, blank lines and such lines among them,
/// every `--jobs` and every format writes what one thread writes, in the same order, and each
/// `at` line is held or not by the sends of the hour before it (not by those of now).
#[test]
fn a_calendar_judged_on_several_threads_is_judged_as_on_one() {
    let s = setup_with(
        Kind::Mastodon,
        true,
        "\n[limits]\nmax_posts_per_hour = 2\n\n[banned_terms]\ndeny = [\"layoffs\"]\n",
    );
    s.post("One");
    s.post("Two");
    let sends = s
        .journal()
        .sends_since(Utc::now() - Duration::hours(2))
        .unwrap();
    assert_eq!(sends.len(), 2);
    let last = sends.iter().map(|send| send.at).max().unwrap();
    // Both sends are in the hour before `soon`; none in the hour before `later`.
    let soon = secs(last + Duration::minutes(1));
    let later = secs(last + Duration::hours(3));
    let mut calendar = Vec::new();
    let mut expected = Vec::new();
    for i in 0..3_000 {
        let (line, verdict): (Vec<u8>, Option<&str>) = match i % 10 {
            0 => (
                format!("{{\"text\": \"Soon {i}\", \"at\": \"{soon}\"}}").into(),
                Some("hold"),
            ),
            1 => (
                format!("{{\"text\": \"Later {i}\", \"at\": \"{later}\"}}").into(),
                Some("allow"),
            ),
            2 => (
                format!("{{\"text\": \"Layoffs {i}\", \"at\": \"{later}\"}}").into(),
                Some("deny"),
            ),
            3 if i % 3 == 0 => (format!("{{\"txt\": \"{i}\"}}").into(), Some("invalid")),
            3 => (Vec::new(), None),
            4 if i % 7 == 0 => (b"{\"text\": \"caf\xe9\"}".to_vec(), Some("invalid")),
            // Now, the journal's two sends are in the last hour.
            _ => (format!("{{\"text\": \"Now {i}\"}}").into(), Some("hold")),
        };
        calendar.extend_from_slice(&line);
        calendar.push(b'\n');
        expected.extend(verdict);
    }
    std::fs::write(s.sandbox.path().join("cal.jsonl"), &calendar).unwrap();

    let one = s.run(&["check", "--jsonl", "cal.jsonl", "--json", "--jobs", "1"]);
    assert_eq!(one.code, 2, "{}", one.stderr);
    let verdicts = one.verdicts();
    assert_eq!(verdicts.len(), expected.len());
    if let Some(k) = (0..expected.len()).find(|&k| verdicts[k] != expected[k]) {
        panic!("result {k}: {} where {} was due", verdicts[k], expected[k]);
    }
    for format in ["json", "github", "markdown", "human"] {
        let run = |jobs: &str| {
            s.run(&[
                "check",
                "--jsonl",
                "cal.jsonl",
                "--format",
                format,
                "--jobs",
                jobs,
            ])
        };
        let one = run("1");
        assert!(
            one.stdout.lines().count() >= 2_000,
            "{format}: {}",
            one.stdout
        );
        for jobs in ["2", "7"] {
            let many = run(jobs);
            assert_eq!(many.code, one.code, "{format} -j {jobs}");
            assert!(
                many.stdout == one.stdout,
                "{format} -j {jobs}: the results differ"
            );
            assert!(
                many.stderr == one.stderr,
                "{format} -j {jobs}: the errors differ"
            );
        }
    }
}

#[test]
fn limit_keys_are_validated_with_their_position() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n\n[accounts.brand]\nplatform = \"x\"\nmax_posts_per_hour = \"two\"\n\n[limits]\nmax_posts_per_hour = 0\nmax_post_per_hour = 3\n",
    );
    let run = s.run(&["policy", "check", "--json"]);
    assert_eq!(run.code, 3, "{run:?}");
    let messages: Vec<String> = run.json()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}:{} {}",
                d["line"],
                d["column"],
                d["message"].as_str().unwrap()
            )
        })
        .collect();
    let mut messages = messages;
    messages.sort();
    assert_eq!(
        messages,
        [
            "5:22 `max_posts_per_hour` must be an integer, found a string",
            "8:22 `max_posts_per_hour` must be a whole number from 1 up",
            "9:1 unknown key `max_post_per_hour` in `[limits]`",
        ]
    );
}

/// The README's crisis playbook, step by step, against the fake Mastodon server: a rogue post
/// is out; freeze, take it down, cut off and rotate the token, check, unfreeze, post again.
/// The audit trail records every step and its chain holds.
#[test]
fn the_crisis_playbook_works_end_to_end() {
    let s = setup(Kind::Mastodon, true);
    let (rogue_id, rogue_url) = s.post("A post that should never have gone out");

    // 1. Stop everything: nothing more goes out, and the network sees no request.
    let run = s.run(&["freeze", "--reason", "account compromised"]);
    assert_eq!(run.code, 0, "{run:?}");
    let before = s.server.requests().len();
    let run = s.run(&["post", "--yes", "Another post"]);
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(
        s.server.requests().len(),
        before,
        "a frozen post reached the network"
    );

    // 2. Take the rogue post down (retracting works while frozen).
    let run = s.run(&["retract", "brand", "--last", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), rogue_url);
    assert_eq!(s.deletes().last().unwrap().path, s.delete_path(&rogue_id));
    assert!(s.server.posts().is_empty());

    // 3. Cut off the token: it leaves the keychain whatever the revocation says.
    let run = s.run(&["auth", "logout", "brand"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.run(&["auth", "status", "brand", "--offline"]);
    assert_eq!(run.code, 8, "{run:?}");

    // 4. Rotate: a credential goes back into the keychain (the fake knows one token).
    let run = s.sandbox.run_with_stdin(
        &["auth", "login", "brand", "--with-token"],
        s.server.token(),
    );
    assert_eq!(run.code, 0, "{run:?}");

    // 5. Resume: the server confirms the token, the freeze is lifted, posting works again.
    let run = s.run(&["auth", "status", "brand"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.run(&["unfreeze"]);
    assert_eq!(run.code, 0, "{run:?}");
    let (_, url) = s.post("Back to normal service");
    assert_eq!(s.server.posts().len(), 1);

    // Every step is in the audit trail, in order, and the chain holds.
    let log = s.run(&["log", "--json"]);
    assert_eq!(log.code, 0, "{log:?}");
    let events: Vec<String> = log
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        events,
        [
            "login", "post", "freeze", "refused", "retract", "logout", "login", "unfreeze", "post"
        ],
        "{log:?}"
    );
    assert!(log.stdout.lines().last().unwrap().contains(&url), "{log:?}");
    let verify = s.run(&["log", "--verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
}

/// On a terminal, the confirmation shows the text that would be deleted, not only its URL;
/// `n` and Enter deletes nothing.
#[test]
fn the_retract_confirmation_shows_the_text() {
    common::require_tool("script");
    let s = setup(Kind::Mastodon, true);
    let (_, url) = s.post("Our launch is today\nSecond line");
    let mut cmd = s.sandbox.program("sh");
    cmd.args([
        "-c",
        "(sleep 1; printf 'n\\r') | script -qec \"\\\"$GATE\\\" retract brand --last\" /dev/null",
    ]);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        !stdout.contains(s.server.token()),
        "the token leaked: {stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Our launch is today\nSecond line\n---\naccount: `brand` (mastodon)\npost:    {url}\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Delete this post from `brand`?"),
        "{stdout}"
    );
    assert!(stdout.contains("not retracted"), "{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(s.deletes().is_empty());
}
