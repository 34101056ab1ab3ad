//! The audit trail end to end: entries written by real commands (`gate post` against the fake
//! Mastodon server with a real keychain, `gate approve`, `gate freeze`, `gate unfreeze`),
//! `gate log` and its filters, tampering with the SQLite file, and concurrent writers.

use crate::common;
use crate::fake;

use std::path::PathBuf;

use common::keychain::{SessionBus, canary};
use common::setup::{Builder, Keychain, Policy};
use common::{Run, Sandbox, keygen};
use fake::{Kind, Server};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn db(s: &Sandbox) -> PathBuf {
    s.path().join("state/journal.sqlite3")
}

/// `gate log --json` as parsed lines (every line must be one JSON object).
fn log(s: &Sandbox, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["log", "--json"];
    args.extend_from_slice(extra);
    let run = s.run(&args);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn events(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

fn freezes(n: usize) -> Sandbox {
    let mut s = Sandbox::new();
    s.set_var("USER", "alice");
    for i in 1..=n {
        let run = s.run(&["freeze", "--reason", &format!("reason {i}")]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    s
}

fn verify(s: &Sandbox) -> Run {
    s.run(&["log", "--verify"])
}

fn broken(s: &Sandbox, problem: &str) {
    let run = verify(s);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "error: {problem}\n  hint: the audit trail in `{}` was changed outside gate; compare it with a backup\n",
            db(s).display()
        )
    );
}

fn sql(s: &Sandbox, statements: &str) {
    rusqlite::Connection::open(db(s))
        .unwrap()
        .execute_batch(statements)
        .unwrap();
}

#[test]
fn a_sent_post_an_approval_and_a_refusal_are_recorded() {
    let token = canary();
    let server = Server::start(Kind::Mastodon, &token);
    let mut s = Sandbox::new();
    s.set_var("USER", "alice");
    std::fs::create_dir_all(s.path().join("keys")).unwrap();
    let (carol, carol_pub) = keygen(&s.path().join("keys"), "carol", "");
    let policy = s.write(
        "gate.toml",
        &format!(
            "version = 1\n\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"{}\"\n\n\
             [banned_terms]\ndeny = [\"layoffs\"]\n\n\
             [reviewers]\nrequired = 1\n[reviewers.keys]\ncarol = \"{carol_pub}\"\n",
            server.url
        ),
    );
    let policy_sha = hex(&Sha256::digest(std::fs::read(policy).unwrap()));
    let bus = SessionBus::with_gnome_keyring();
    bus.attach(&mut s);
    let run = s.run_with_stdin(&["auth", "login", "brand", "--with-token"], &token);
    assert_eq!(run.code, 0, "{run:?}");

    s.write(
        "launch.post.toml",
        "account = \"brand\"\ntext = \"Version 2.0 is out today.\"\n",
    );
    let key = carol.to_str().unwrap();
    let run = s.run(&[
        "approve",
        "--file",
        "launch.post.toml",
        "--key",
        key,
        "--yes",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.run(&["post", "--yes", "--file", "launch.post.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let url = run.stdout.trim().to_owned();
    // A rerun prints the journaled URL and adds no second `post` entry.
    assert_eq!(
        s.run(&["post", "--yes", "--file", "launch.post.toml"]).code,
        0
    );
    s.write(
        "bad.post.toml",
        "account = \"brand\"\ntext = \"No layoffs.\"\n",
    );
    let run = s.run(&["post", "--yes", "--file", "bad.post.toml"]);
    assert_eq!(run.code, 4, "{run:?}");

    let entries = log(&s, &[]);
    assert_eq!(events(&entries), ["login", "approve", "post", "refused"]);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        assert_eq!(e["user"], "alice");
        assert!(!e["host"].as_str().unwrap().is_empty());
        assert_eq!(e["account"], "brand");
        assert_eq!(e["policy_sha256"], policy_sha.as_str());
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
    }
    let (approve, post, refused) = (&entries[1], &entries[2], &entries[3]);
    assert_eq!(approve["reviewers"], serde_json::json!(["carol"]));
    assert_eq!(approve["digest"], post["digest"]);
    assert_eq!(post["url"], url.as_str());
    assert_eq!(post["verdict"], "allow");
    assert_eq!(post["text"], "Version 2.0 is out today.");
    assert_eq!(post["reviewers"], serde_json::json!(["carol"]));
    assert_eq!(refused["verdict"], "deny");
    assert_eq!(refused["url"], Value::Null);
    assert_eq!(refused["text"], "No layoffs.");
    let rules: Vec<&str> = refused["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"banned_term"), "{refused}");
    assert_ne!(refused["digest"], post["digest"]);

    // `gate auth status` shows the freeze state, in JSON and for people.
    let run = s.run(&["auth", "status", "--offline", "--json"]);
    assert_eq!(run.json()["frozen"], false, "{run:?}");
    assert_eq!(s.run(&["freeze", "--reason", "incident"]).code, 0);
    let run = s.run(&["auth", "status", "--offline", "--json"]);
    let doc = run.json();
    assert_eq!(doc["frozen"], true);
    assert_eq!(doc["freeze"]["local"]["reason"], "incident");
    assert_eq!(doc["freeze"]["local"]["by"], "alice");
    let run = s.run(&["auth", "status", "--offline"]);
    assert!(
        run.stderr
            .contains(": incident (lift it with `gate unfreeze`)\n"),
        "{run:?}"
    );
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));
    assert_eq!(verify(&s).stdout, "5 entries, chain intact\n");
}

#[test]
fn freeze_and_unfreeze_are_recorded_and_log_shows_the_freeze() {
    let s = freezes(1);
    let run = s.run(&["log"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.starts_with("frozen in this state folder since ")
            && run
                .stderr
                .ends_with(" by alice: reason 1 (lift it with `gate unfreeze`)\n"),
        "{run:?}"
    );
    assert!(run.stdout.contains("  freeze    -"), "{run:?}");
    assert!(run.stdout.ends_with("\"reason 1\"\n"), "{run:?}");
    assert_eq!(s.run(&["unfreeze"]).code, 0);
    // Unfreezing a machine that is not frozen records nothing.
    assert_eq!(s.run(&["unfreeze"]).code, 0);
    let entries = log(&s, &[]);
    assert_eq!(events(&entries), ["freeze", "unfreeze"]);
    assert_eq!(entries[1]["text"], "reason 1");
    assert_eq!(entries[1]["prev"], entries[0]["hash"]);
    let run = s.run(&["log"]);
    assert_eq!(run.stderr, "not frozen\n");

    // The policy's `[freeze]` is shown too.
    s.write(
        "gate.toml",
        "version = 1\n\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n\n\
         [freeze]\nreason = \"merger quiet period\"\n",
    );
    let run = s.run(&["log"]);
    assert_eq!(
        run.stderr,
        "frozen by the policy's `[freeze]`: merger quiet period\n"
    );
}

#[test]
fn log_filters_by_account_and_time() {
    let mut s = Sandbox::new();
    s.set_var("USER", "alice");
    s.write(
        "gate.toml",
        "version = 1\n\n[accounts.a]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n\n\
         [accounts.b]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n\n\
         [banned_terms]\ndeny = [\"layoffs\"]\n",
    );
    for account in ["a", "b", "a"] {
        let run = s.run(&["post", "--yes", "--account", account, "layoffs"]);
        assert_eq!(run.code, 4, "{run:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let all = log(&s, &[]);
    assert_eq!(events(&all), ["refused", "refused", "refused"]);
    let a = log(&s, &["--account", "a"]);
    assert_eq!(
        a.iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 3]
    );
    assert!(log(&s, &["--account", "c"]).is_empty());
    let second = all[1]["time"].as_str().unwrap();
    let since = log(&s, &["--since", second]);
    assert_eq!(
        since
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(log(&s, &["--since", "2000-01-01"]).len(), 3);
    assert!(log(&s, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let run = s.run(&["log", "--since", "yesterday"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "error: invalid value `yesterday` for `--since`\n  hint: write an RFC 3339 time like `2026-11-23T10:00:00Z` or a date like `2026-11-23`\n"
    );
    // Human mode: a line per entry on stdout, nothing else there.
    let run = s.run(&["log", "--account", "b"]);
    assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
    assert!(
        run.stdout
            .contains("  refused   b             deny     \"layoffs\""),
        "{run:?}"
    );
}

#[test]
fn verify_passes_an_intact_chain() {
    let s = freezes(5);
    let run = verify(&s);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "5 entries, chain intact\n");
    let run = s.run(&["log", "--verify", "--json"]);
    let doc = run.json();
    assert_eq!(
        (doc["intact"].as_bool(), doc["entries"].as_u64()),
        (Some(true), Some(5))
    );
    assert_eq!(doc["last_hash"], log(&s, &[])[4]["hash"]);
    // No journal yet: nothing to break.
    assert_eq!(verify(&Sandbox::new()).stdout, "0 entries, chain intact\n");
}

#[test]
fn an_edited_field_is_named() {
    let s = freezes(5);
    sql(&s, "UPDATE audit SET text = 'nothing to see' WHERE seq = 3");
    broken(&s, "entry 3 was edited");
}

#[test]
fn an_edited_hash_is_named() {
    let s = freezes(5);
    sql(&s, "UPDATE audit SET user = 'mallory' WHERE seq = 4");
    broken(&s, "entry 4 was edited");
    let s = freezes(5);
    sql(
        &s,
        "UPDATE audit SET hash = '0000000000000000000000000000000000000000000000000000000000000000' WHERE seq = 2",
    );
    broken(&s, "entry 2 was edited");
}

#[test]
fn a_removed_entry_is_named() {
    let s = freezes(5);
    sql(&s, "DELETE FROM audit WHERE seq = 3");
    broken(&s, "entry 3 is missing (2 is followed by 4)");
    let s = freezes(5);
    sql(&s, "DELETE FROM audit WHERE seq = 1");
    broken(&s, "entry 1 is missing (the trail starts at 2)");
    let s = freezes(5);
    sql(&s, "DELETE FROM audit WHERE seq = 5");
    broken(
        &s,
        "entry 5 is missing (the last entry is 4, but 5 were written)",
    );
}

#[test]
fn swapped_entries_are_named() {
    let s = freezes(5);
    sql(
        &s,
        "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -1;",
    );
    broken(&s, "entries out of order at 2: it was written as entry 3");
    let run = s.run(&["log", "--verify", "--json"]);
    assert_eq!(run.code, 1);
    let doc = run.json();
    assert_eq!(
        (doc["intact"].as_bool(), doc["seq"].as_u64()),
        (Some(false), Some(2))
    );
}

#[test]
fn concurrent_writers_chain_one_after_another() {
    let mut s = Sandbox::new();
    s.set_var("USER", "alice");
    std::thread::scope(|scope| {
        for w in 0..10 {
            let s = &s;
            scope.spawn(move || {
                for i in 0..100 {
                    let run = s.run(&["freeze", "--reason", &format!("writer {w} entry {i}")]);
                    assert_eq!(run.code, 0, "{run:?}");
                }
            });
        }
    });
    let run = verify(&s);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "1000 entries, chain intact\n");
    let entries = log(&s, &[]);
    assert_eq!(entries.len(), 1000);
    for w in 0..10 {
        let mine: Vec<&str> = entries
            .iter()
            .map(|e| e["text"].as_str().unwrap())
            .filter(|t| t.starts_with(&format!("writer {w} ")))
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("writer {w} entry {i}")).collect();
        assert_eq!(mine, want);
    }
}

#[test]
fn a_post_confirmed_after_a_crash_is_recorded_once_by_the_run_that_confirms_it() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    let token = canary();
    let server = Server::start(Kind::Mastodon, &token);
    let (s, _bus) = Builder::new(Policy::new("brand", "mastodon", &server.url).text())
        .keychain(Keychain::Own)
        .token("brand", &token)
        .build();

    // Killed after the network took the post, before the journal (and the audit) knew.
    let mut child = s
        .command(&["post", "--yes", "crash test"])
        .env("GATE_TEST_FAULT", "after-publish")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("gate-test-fault") {
        line.clear();
    }
    assert!(line.contains("gate-test-fault: after-publish"), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(events(&log(&s, &[])), ["login"]);

    let run = s.run(&["post", "--yes", "crash test"]);
    assert_eq!(run.code, 0, "{run:?}");
    let url = run.stdout.trim().to_owned();
    assert_eq!(server.posts_with("crash test").len(), 1);
    assert_eq!(s.run(&["post", "--yes", "crash test"]).code, 0);
    let entries = log(&s, &[]);
    assert_eq!(events(&entries), ["login", "post"]);
    assert_eq!(entries[1]["url"], url.as_str());
}

/// The chain head is anchored in the OS keychain, so what the chain cannot show by itself is
/// caught: a dropped or emptied audit table, a deleted or emptied journal, entries removed
/// from the end with `sqlite_sequence` rewound to hide it, a rewritten trail.
#[test]
fn the_keychain_anchor_catches_what_the_chain_alone_cannot() {
    type Damage = fn(&Sandbox);
    let cases: [(&str, Damage, &str); 5] = [
        (
            "drop table",
            |s| {
                rusqlite::Connection::open(db(s))
                    .unwrap()
                    .execute_batch("DROP TABLE audit")
                    .unwrap();
            },
            "the audit trail is empty, but it had reached entry 3: its entries were removed",
        ),
        (
            "delete the journal",
            |s| {
                for f in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{f}", db(s).display()));
                }
            },
            "is gone, but its audit trail had reached entry 3",
        ),
        (
            "empty the journal",
            |s| {
                for f in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{f}", db(s).display()));
                }
                std::fs::write(db(s), b"").unwrap();
            },
            "is empty (0 bytes): it was emptied outside gate",
        ),
        (
            "remove the tail and rewind the sequence",
            |s| {
                rusqlite::Connection::open(db(s))
                    .unwrap()
                    .execute_batch(
                        "DELETE FROM audit WHERE seq > 1; UPDATE sqlite_sequence SET seq = 1 WHERE name = 'audit';",
                    )
                    .unwrap();
            },
            "entries after 1 were removed: the trail had reached entry 3",
        ),
        (
            "rewrite the whole trail",
            |s| {
                // A consistent new chain of three entries, written by gate into a fresh journal.
                let other = Sandbox::new();
                for _ in 0..3 {
                    assert_eq!(other.run(&["freeze", "--reason", "forged"]).code, 0);
                }
                for f in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{f}", db(s).display()));
                }
                let conn = rusqlite::Connection::open(db(&other)).unwrap();
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                    .unwrap();
                drop(conn);
                std::fs::copy(db(&other), db(s)).unwrap();
            },
            "entry 3 is not the one the keychain anchored: the trail was rewritten",
        ),
    ];
    for (name, damage, problem) in cases {
        let mut s = Sandbox::new();
        s.write("gate.toml", "version = 1\n");
        let bus = SessionBus::with_gnome_keyring();
        bus.attach(&mut s);
        for reason in ["one", "two", "three"] {
            let run = s.run(&["freeze", "--reason", reason]);
            assert_eq!(run.code, 0, "{name}: {run:?}");
        }
        let run = s.run(&["log", "--verify"]);
        assert_eq!(run.code, 0, "{name}: {run:?}");
        assert!(
            run.stderr
                .contains("the keychain's anchor (entry 3) matches"),
            "{name}: {run:?}"
        );
        damage(&s);
        let run = s.run(&["log", "--verify"]);
        assert_eq!(run.code, 1, "{name}: {run:?}");
        assert!(run.stderr.contains(problem), "{name}: {}", run.stderr);
        drop(bus);
    }
}

/// Without a keychain there is no anchor, and `--verify` says so; still, an emptied journal or
/// a state folder that is not a folder is never "chain intact".
#[test]
fn without_a_keychain_verify_says_what_it_could_not_check() {
    let s = Sandbox::new();
    s.write("gate.toml", "version = 1\n");
    assert_eq!(s.run(&["freeze", "--reason", "one"]).code, 0);
    let run = s.run(&["log", "--verify"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("not anchored ("), "{run:?}");
    for f in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{f}", db(&s).display()));
    }
    std::fs::write(db(&s), b"").unwrap();
    let run = s.run(&["log", "--verify"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("is empty (0 bytes)"), "{run:?}");

    let mut s = Sandbox::new();
    let file = s.write("not-a-folder", "x");
    s.set_var("GATE_HOME", file.to_str().unwrap());
    let run = s.run(&["log", "--verify"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("is not a folder"), "{run:?}");
}
