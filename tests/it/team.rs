//! The state store, against SQLite and a real PostgreSQL (started by `common::pg` as an
//! ordinary user on 127.0.0.1, one database per test): one suite of store tests run on both
//! backends, then "machines" (separate `GATE_HOME`s, each with its own keychain) pointed at one
//! team store: exactly once, the freeze, the rate ledger and the audit chain across machines,
//! and faults (the database restarted or the connection killed mid-delivery).

use crate::common;
use crate::fake;

use std::process::{Child, Stdio};

use chrono::{DateTime, Duration, Utc};
use common::keychain::{SessionBus, canary};
use common::pg::{self, db_name};
use common::setup::{Builder, Keychain, Policy, finish, wait_for};
use common::{Run, Sandbox};
use fake::{Kind, Server};
use gate::audit::{Entry, Event, Verdict};
use gate::env::Env;
use gate::store::postgres::{Postgres, Target};
use gate::store::sqlite::Sqlite;
use gate::store::{Access, Claim, State, Store};

// ---------------------------------------------------------------------------------------------
// One suite, two backends.

/// The stores under test: a fresh SQLite state folder and a fresh PostgreSQL database.
fn backends() -> Vec<(&'static str, Box<dyn Store>, tempfile::TempDir)> {
    let sqlite_home = tempfile::tempdir().unwrap();
    let env = Env::for_tests(sqlite_home.path());
    let sqlite: Box<dyn Store> = Box::new(Sqlite::open(&env, Access::Write));
    let pg_home = tempfile::tempdir().unwrap();
    let url = pg::server().database();
    let pg_env = Env::for_tests(pg_home.path());
    let postgres: Box<dyn Store> = Box::new(
        Postgres::connect(&pg_env, Target::new(&url, "GATE_STATE_URL").unwrap(), true).unwrap(),
    );
    vec![
        ("sqlite", sqlite, sqlite_home),
        ("postgres", postgres, pg_home),
    ]
}

fn at(m: i64) -> DateTime<Utc> {
    // Recent, so the stores' own clocks never matter; whole milliseconds, as both keep them.
    let base = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    base - Duration::hours(3) + Duration::minutes(m)
}

fn claim<'a>(digest: &'a str, now: DateTime<Utc>) -> Claim<'a> {
    Claim {
        digest,
        account: "brand",
        item: 0,
        platform: "mastodon",
        key: digest,
        now,
    }
}

fn begin(store: &dyn Store, digest: &str, now: DateTime<Utc>) {
    assert_eq!(
        store
            .judged_claim(&claim(digest, now), |_| Ok::<(), ()>(()))
            .unwrap(),
        Ok(())
    );
}

fn post_entry() -> Entry {
    Entry {
        account: Some("brand".into()),
        ..Entry::new(Event::Post)
    }
}

#[test]
fn a_claim_reads_the_freeze_and_the_ledger_and_a_refusal_writes_nothing() {
    for (name, store, _home) in backends() {
        let t0 = at(0);
        let m = |n| t0 + Duration::minutes(n);
        begin(store.as_ref(), "sent", m(0));
        store
            .mark_sent(
                "sent",
                "brand",
                0,
                ("1", "https://m/1"),
                &post_entry(),
                m(1),
            )
            .unwrap();
        begin(store.as_ref(), "pending", m(2));
        begin(store.as_ref(), "unknown", m(3));
        store
            .mark("unknown", "brand", 0, State::Unknown, "timeout", m(3))
            .unwrap();
        begin(store.as_ref(), "failed", m(4));
        store
            .mark("failed", "brand", 0, State::Failed, "422", m(4))
            .unwrap();
        begin(store.as_ref(), "old", m(-120));
        let mut seen = Vec::new();
        let mut frozen = None;
        let refused = store
            .judged_claim(&claim("new", m(10)), |ledger| {
                seen = ledger.sends.0.iter().map(|s| s.digest.clone()).collect();
                frozen = Some(ledger.freeze.is_some());
                Err("held")
            })
            .unwrap();
        assert_eq!(refused, Err("held"), "{name}");
        assert_eq!(seen, ["sent", "pending", "unknown"], "{name}");
        assert_eq!(frozen, Some(false), "{name}");
        assert_eq!(store.get("new", "brand", 0).unwrap(), None, "{name}");
        // The same ledger for `gate check`.
        let ledger: Vec<String> = store
            .ledger(m(10))
            .unwrap()
            .0
            .into_iter()
            .map(|s| s.digest)
            .collect();
        assert_eq!(ledger, ["sent", "pending", "unknown"], "{name}");

        // A freeze is read by the claim in the same step.
        store
            .set_freeze(&gate::store::LocalFreeze {
                reason: "incident".into(),
                since: Some(m(11)),
                by: Some("ann".into()),
            })
            .unwrap();
        let mut reason = None;
        let _ = store
            .judged_claim(&claim("new", m(12)), |ledger| {
                reason = ledger.freeze.map(|f| f.reason);
                Err(())
            })
            .unwrap();
        assert_eq!(reason.as_deref(), Some("incident"), "{name}");
        assert_eq!(store.freeze().unwrap().unwrap().by.as_deref(), Some("ann"));
        assert!(store.clear_freeze().unwrap(), "{name}");
        assert!(!store.clear_freeze().unwrap(), "{name}");
        assert!(store.freeze().unwrap().is_none(), "{name}");
    }
}

#[test]
fn a_delivery_keeps_its_key_an_unknown_one_never_fails_and_sent_rows_are_found() {
    for (name, store, _home) in backends() {
        let now = at(0);
        begin(store.as_ref(), "d", now);
        let row = store.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(
            (row.state, row.attempts, row.key.as_str()),
            (State::Pending, 1, "d")
        );
        store
            .mark(
                "d",
                "brand",
                0,
                State::Unknown,
                "502 after the request left",
                now,
            )
            .unwrap();
        // Claimed again with another key: the first key stays, and so does `unknown`.
        let again = Claim {
            key: "other",
            ..claim("d", now)
        };
        assert_eq!(
            store.judged_claim(&again, |_| Ok::<(), ()>(())).unwrap(),
            Ok(())
        );
        let row = store.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(
            (
                row.state,
                row.attempts,
                row.key.as_str(),
                row.error.as_deref()
            ),
            (State::Unknown, 2, "d", Some("502 after the request left")),
            "{name}"
        );
        store
            .mark("d", "brand", 0, State::Failed, "429", now)
            .unwrap();
        assert_eq!(
            store.get("d", "brand", 0).unwrap().unwrap().state,
            State::Unknown
        );
        let mut entry = post_entry();
        entry.text = Some("Hello team".into());
        entry.digest = Some("d".into());
        // As `gate post` writes it: the entry names the URL it went out at.
        entry.url = Some("https://m/109".into());
        store
            .mark_sent("d", "brand", 0, ("109", "https://m/109"), &entry, now)
            .unwrap();
        store
            .mark("d", "brand", 0, State::Failed, "late", now)
            .unwrap();
        let row = store.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!((row.state, row.sent_at), (State::Sent, Some(now)), "{name}");
        assert_eq!(
            store.find_sent("brand", "109").unwrap().unwrap().digest,
            "d"
        );
        assert_eq!(
            store
                .find_sent("brand", "https://m/109")
                .unwrap()
                .unwrap()
                .digest,
            "d"
        );
        assert_eq!(store.find_sent("other", "109").unwrap(), None, "{name}");
        assert_eq!(store.last_sent("brand").unwrap().unwrap().digest, "d");
        assert_eq!(
            store.sent_text("d", "brand", "https://m/109").as_deref(),
            Some("Hello team")
        );
        let retract = Entry::new(Event::Retract);
        store
            .mark_retracted("d", "brand", 0, &retract, now + Duration::minutes(1))
            .unwrap();
        let row = store.get("d", "brand", 0).unwrap().unwrap();
        assert_eq!(row.state, State::Retracted, "{name}");
        assert_eq!(row.retracted_at, Some(now + Duration::minutes(1)));
        // A retracted post still counts: it went out.
        assert_eq!(store.ledger(now).unwrap().0.len(), 1, "{name}");
        let events: Vec<String> = store
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, ["post", "retract"], "{name}");
    }
}

#[test]
fn the_audit_chain_verifies_on_both_backends() {
    for (name, store, _home) in backends() {
        assert_eq!(
            store.verify().unwrap().verdict,
            Verdict::Intact {
                entries: 0,
                last: gate::audit::GENESIS.to_owned()
            },
            "{name}"
        );
        let mut last = String::new();
        for i in 0..5 {
            let mut e = Entry::new(Event::Freeze);
            e.text = Some(format!("reason {i}"));
            let stored = store.append(&e, Utc::now()).unwrap();
            assert_eq!(stored.seq, i + 1, "{name}");
            last = stored.hash;
        }
        assert_eq!(
            store.verify().unwrap().verdict,
            Verdict::Intact { entries: 5, last },
            "{name}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL itself: append-only, versions, reachability, the policy.

#[test]
fn the_database_refuses_to_change_or_remove_audit_entries() {
    let server = pg::server();
    let url = server.database();
    let s = machine(&url, None);
    let run = s.run(&["freeze", "--reason", "drill"]);
    assert_eq!(run.code, 0, "{run:?}");
    let db = db_name(&url);
    assert_eq!(server.sql(db, "SELECT count(*) FROM gate_audit"), "1");
    for sql in [
        "UPDATE gate_audit SET text = 'nothing happened'",
        "DELETE FROM gate_audit",
        "TRUNCATE gate_audit",
    ] {
        let error = server.sql_fails(db, sql);
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(server.sql(db, "SELECT text FROM gate_audit"), "drill");
    let run = s.run(&["log", "--verify"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "1 entries, chain intact\n");
}

#[test]
fn state_status_names_the_store_without_the_password_and_migrate_prints_its_sql() {
    let server = pg::server();
    let url = server.database();
    let mut s = machine(&url, None);
    // A password in the URL (trust accepts any): never printed.
    let secret = "s3cret-pw-canary";
    let with_password = url.replace("gate@", &format!("gate:{secret}@"));
    s.set_var("GATE_STATE_URL", &with_password);
    let run = s.run(&["state", "status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["backend"], "postgres");
    assert_eq!(doc["location"], url.as_str());
    assert_eq!(doc["reachable"], true);
    assert_eq!(doc["schema"]["state"], "absent");
    assert_eq!(doc["frozen"], false);
    assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    let run = s.run(&["state", "migrate"]);
    assert_eq!(run.code, 0, "{run:?}");
    // Version 2: one delivery per thread item.
    assert!(run.stderr.contains("schema version 2"), "{run:?}");
    let run = s.run(&["state", "status", "--json"]);
    assert_eq!(run.json()["schema"]["version"], 2);
    assert_eq!(run.json()["schema"]["state"], "current");

    // `--print-sql` connects to nothing and gives a DBA the same schema.
    let mut offline = Sandbox::new();
    offline.set_var("GATE_STATE_URL", "postgres://gate@127.0.0.1:1/none");
    let run = offline.run(&["state", "migrate", "--print-sql"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("CREATE TABLE gate_audit"), "{run:?}");
    assert!(run.stdout.contains("GRANT SELECT, INSERT ON gate_audit"));
    let fresh = server.database();
    let file = offline.write("schema.sql", &run.stdout);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "PGCONNECT_TIMEOUT=10 \"$(ls -d /usr/lib/postgresql/*/bin | tail -1)/psql\" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {} -U gate -d {} -f {}",
            server.port,
            db_name(&fresh),
            file.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Both steps, in order: version 1, then 2 (thread items).
    assert_eq!(
        server.sql(
            db_name(&fresh),
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM gate_schema"
        ),
        "1,2"
    );
}

#[test]
fn a_store_that_cannot_be_reached_or_is_newer_stops_the_post_and_names_the_store() {
    let token = canary();
    let fake = Server::start(Kind::Mastodon, &token);
    let bus = SessionBus::with_gnome_keyring();
    let closed = format!(
        "postgres://gate:pw-canary-9@127.0.0.1:{}/gate?sslmode=disable",
        closed_port()
    );
    let server = pg::server();
    let url = server.database();
    let mut s = machine(&url, Some((&fake, &bus, &token)));
    s.set_var("GATE_STATE_URL", &closed);
    let run = s.run(&["post", "--yes", "Not without the team store"]);
    assert_eq!(run.code, 1, "{run:?}");
    let shown = closed.replace(":pw-canary-9", "");
    assert!(
        run.stderr
            .contains(&format!("cannot reach the team state store `{shown}`")),
        "{run:?}"
    );
    assert!(!run.stderr.contains("pw-canary-9"), "{run:?}");
    assert!(fake.posts().is_empty());
    assert!(
        !s.path().join("state/journal.sqlite3").exists(),
        "fell back to the local file"
    );
    let run = s.run(&["state", "status"]);
    assert_eq!(run.code, 1, "{run:?}");

    // A schema newer than this gate: refused, nothing sent.
    s.set_var("GATE_STATE_URL", &url);
    assert_eq!(s.run(&["state", "migrate"]).code, 0);
    server.sql(
        db_name(&url),
        "INSERT INTO gate_schema (version) VALUES (99)",
    );
    let run = s.run(&["post", "--yes", "Not on a newer schema"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("schema version 99, newer than this gate"),
        "{run:?}"
    );
    assert!(fake.posts().is_empty());
}

#[test]
fn the_password_comes_from_the_keychain_and_the_url_in_the_policy_has_none() {
    let password = canary();
    let server = pg::Pg::with_password(&password);
    let bus = SessionBus::with_gnome_keyring();
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    let url = format!(
        "postgres://gate@127.0.0.1:{}/postgres?sslmode=disable",
        server.port
    );
    s.write(
        "gate.toml",
        &format!("version = 1\n\n[state]\nurl = \"{url}\"\n"),
    );
    let run = s.run(&["state", "status"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("the team state store `{url}` asks for a password")),
        "{run:?}"
    );
    assert!(run.stderr.contains("gate state password"), "{run:?}");
    let run = s.run_with_stdin(&["state", "password"], &format!("{password}\n"));
    assert_eq!(run.code, 0, "{run:?}");
    // What the keychain holds, as `secret-tool` sees it.
    let item = format!("state:{}", url.split('?').next().unwrap());
    let out = bus.secret_tool(&["lookup", "service", "gate", "username", &item], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), password);
    let run = s.run(&["state", "status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["from"], "the policy's `[state] url`");
    assert_eq!(run.json()["location"], url.as_str());
    let run = s.run(&["freeze", "--reason", "from the policy's store"]);
    assert_eq!(run.code, 0, "{run:?}");
    for run in [s.run(&["log"]), s.run(&["state", "status"])] {
        assert!(!run.stdout.contains(&password) && !run.stderr.contains(&password));
    }
    assert_eq!(
        server.sql("postgres", "SELECT reason FROM gate_freeze"),
        "from the policy's store"
    );
}

#[test]
fn policy_check_refuses_a_password_in_the_state_url() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n\n[state]\nurl = \"postgres://gate:hunter2@db.example.com:5432/gate\"\n",
    );
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("gate.toml:4:7"), "{run:?}");
    assert!(
        run.stderr.contains("the `[state] url` holds a password"),
        "{run:?}"
    );
    s.write(
        "gate.toml",
        "version = 1\n\n[state]\nurl = \"postgres://gate@db.example.com:5432/gate?sslmode=verify-full\"\n",
    );
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn import_moves_the_local_journal_and_audit_trail_into_the_team_store() {
    let token = canary();
    let fake = Server::start(Kind::Mastodon, &token);
    let bus = SessionBus::with_gnome_keyring();
    // The machine signed in against one team store (its `login` entry is there)...
    let busy = pg::server().database();
    let mut s = machine(&busy, Some((&fake, &bus, &token)));
    // ...then worked locally.
    s.vars.retain(|(n, _)| n != "GATE_STATE_URL");
    let run = s.run(&["post", "--yes", "Posted before the team store"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(s.run(&["freeze", "--reason", "local"]).code, 0);
    assert_eq!(s.run(&["unfreeze"]).code, 0);
    let local = log_json(&s);
    assert_eq!(local.len(), 3, "{local:?}");

    // Into an empty team store: every entry as it was, hashes and all.
    let url = pg::server().database();
    s.set_var("GATE_STATE_URL", &url);
    let run = s.run(&["state", "import", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["deliveries_added"], 1);
    assert_eq!(doc["entries"], 3);
    assert_eq!(doc["team_chain_intact"], true);
    assert_eq!(log_json(&s), local);
    // Twice is once.
    let run = s.run(&["state", "import", "--json"]);
    assert_eq!(run.json()["imported"], false, "{run:?}");
    assert_eq!(log_json(&s).len(), 3);
    // The team store knows the post: sending it again sends nothing.
    let run = s.run(&["post", "--yes", "Posted before the team store"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("already sent"), "{run:?}");
    assert_eq!(fake.posts().len(), 1);

    // Into a team store that has a trail of its own: chained after it, every field kept.
    s.set_var("GATE_STATE_URL", &busy);
    let run = s.run(&["state", "import", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["team_entries"], 4, "{run:?}");
    let team = log_json(&s);
    assert_eq!(team[0]["event"], "login");
    for (moved, was) in team[1..].iter().zip(&local) {
        for field in [
            "time", "event", "user", "host", "text", "url", "digest", "verdict",
        ] {
            assert_eq!(moved[field], was[field], "{field}");
        }
    }
    let run = s.run(&["log", "--verify"]);
    assert_eq!(run.code, 0, "{run:?}");
}

// ---------------------------------------------------------------------------------------------
// Machines sharing one team store.

/// A "machine": its own sandbox (`GATE_HOME`, `XDG_*`), its own keychain holding the fake
/// server's token, the policy pointing `brand` at the fake, and `GATE_STATE_URL` at `url`.
fn machine(url: &str, peer: Option<(&Server, &SessionBus, &str)>) -> Sandbox {
    machine_with(url, peer, "", "mastodon")
}

fn machine_with(
    url: &str,
    peer: Option<(&Server, &SessionBus, &str)>,
    extra: &str,
    platform: &str,
) -> Sandbox {
    let server = peer.map_or_else(
        || "https://unused.example".to_owned(),
        |(f, _, _)| f.url.clone(),
    );
    let mut machine = Builder::new(
        Policy::new("brand", platform, &server)
            .timezone("UTC")
            .then(extra)
            .text(),
    )
    .var("GATE_STATE_URL", url)
    .var("USER", "ann");
    if let Some((_, bus, token)) = peer {
        machine = machine.keychain(Keychain::On(bus)).token("brand", token);
    }
    machine.build().0
}

/// Four machines, each with its own keychain (its own session bus), on one store and one fake.
struct Team {
    fake: Server,
    machines: Vec<Sandbox>,
    _buses: Vec<SessionBus>,
    url: String,
}

fn team(kind: Kind, extra: &str) -> Team {
    team_on(pg::server(), kind, extra)
}

fn team_on(server: &pg::Pg, kind: Kind, extra: &str) -> Team {
    let token = canary();
    let fake = Server::start(kind, &token);
    let url = server.database();
    let mut buses = Vec::new();
    let mut machines = Vec::new();
    for _ in 0..4 {
        let bus = SessionBus::with_gnome_keyring();
        let mut s = machine_with(&url, Some((&fake, &bus, &token)), extra, kind.name());
        s.set_var("USER", format!("user{}", machines.len()));
        buses.push(bus);
        machines.push(s);
    }
    Team {
        fake,
        machines,
        _buses: buses,
        url,
    }
}

fn spawn(s: &Sandbox, args: &[&str], pause: Option<&str>) -> Child {
    let mut cmd = s.command(args);
    if let Some(p) = pause {
        cmd.env("GATE_TEST_PAUSE", p);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn done(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn log_json(s: &Sandbox) -> Vec<serde_json::Value> {
    let run = s.run(&["log", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn twenty_processes_on_four_machines_post_once(kind: Kind) {
    let t = team(kind, "");
    let file = "accounts = [\"brand\"]\ntext = \"One post from the whole team\"\n";
    let paths: Vec<String> = t
        .machines
        .iter()
        .map(|s| s.write("team.post.toml", file).display().to_string())
        .collect();
    let children: Vec<Child> = (0..20)
        .map(|i| {
            spawn(
                &t.machines[i % 4],
                &["post", "--yes", "--file", &paths[i % 4]],
                None,
            )
        })
        .collect();
    let runs: Vec<Run> = children.into_iter().map(done).collect();
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
    }
    let posts = t.fake.posts();
    assert_eq!(posts.len(), 1, "{kind:?}: {posts:?}");
    assert_eq!(t.fake.creates().len(), 1, "{kind:?}");
    let url = t.fake.post_url(&posts[0].id);
    assert!(runs.iter().all(|r| r.stdout.trim() == url), "{kind:?}");
    let server = pg::server();
    assert_eq!(
        server.sql(
            db_name(&t.url),
            "SELECT count(*) FROM gate_deliveries WHERE state = 'sent'"
        ),
        "1"
    );
    assert_eq!(
        server.sql(
            db_name(&t.url),
            "SELECT count(*) FROM gate_audit WHERE event = 'post'"
        ),
        "1"
    );
}

#[test]
fn twenty_processes_on_four_machines_post_a_mastodon_file_once() {
    twenty_processes_on_four_machines_post_once(Kind::Mastodon);
}

#[test]
fn twenty_processes_on_four_machines_post_an_x_file_once() {
    twenty_processes_on_four_machines_post_once(Kind::X);
}

#[test]
fn a_freeze_on_one_machine_stops_a_send_another_machine_has_confirmed() {
    let t = team(Kind::Mastodon, "");
    let text = "Confirmed on machine 2, frozen on machine 1";
    // Machine 2 is past its confirmation (`--yes`) and holds the delivery's lock.
    let mut child = spawn(
        &t.machines[1],
        &["post", "--yes", "--json", text],
        Some("locked:3000"),
    );
    let stderr = wait_for(&mut child, "gate-test-pause: locked");
    let run = t.machines[0].run(&["freeze", "--reason", "team incident"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("team store"), "{run:?}");
    let run = finish(child, stderr);
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(run.json()["verdict"], "frozen");
    assert!(t.fake.posts().is_empty(), "sent after the team's freeze");
    // Every machine sees the freeze; unfreezing on another lifts it for all.
    let run = t.machines[3].run(&["check", "--json", "Anything"]);
    assert_eq!(run.code, 7, "{run:?}");
    assert_eq!(t.machines[2].run(&["unfreeze"]).code, 0);
    let run = t.machines[1].run(&["post", "--yes", text]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.fake.posts().len(), 1);
    // `gate auth status` and `gate log` name the store they use.
    let run = t.machines[0].run(&["auth", "status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.json()["state_store"],
        serde_json::json!({"backend": "postgres", "location": t.url})
    );
    let run = t.machines[3].run(&["log"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "the audit trail of the team store `{}`\nnot frozen\n",
            t.url
        )),
        "{run:?}"
    );
    assert!(run.stdout.contains("team incident"), "{run:?}");
}

#[test]
fn four_machines_against_a_limit_of_three_send_exactly_three() {
    let t = team(Kind::Mastodon, "\n[limits]\nmax_posts_per_hour = 3\n");
    let children: Vec<Child> = (0..8)
        .map(|i| {
            spawn(
                &t.machines[i % 4],
                &["post", "--yes", &format!("Post number {i} of eight")],
                None,
            )
        })
        .collect();
    let runs: Vec<Run> = children.into_iter().map(done).collect();
    let sent = runs.iter().filter(|r| r.code == 0).count();
    let held = runs.iter().filter(|r| r.code == 5).count();
    assert_eq!((sent, held), (3, 5), "{runs:?}");
    assert_eq!(t.fake.posts().len(), 3);
    // `gate check` on any machine counts the same ledger.
    let run = t.machines[2].run(&["check", "--json", "One more"]);
    assert_eq!(run.code, 5, "{run:?}");
}

#[test]
fn the_audit_chain_stays_intact_under_four_machines_appending_a_hundred_each() {
    let url = pg::server().database();
    let machines: Vec<Sandbox> = (0..4).map(|_| machine(&url, None)).collect();
    // Migrate once so the appenders race on the chain, not on the schema.
    assert_eq!(machines[0].run(&["state", "migrate"]).code, 0);
    let children: Vec<Child> = machines
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let script = format!(
                "for n in $(seq 1 100); do \"$GATE\" freeze --reason \"m{i} $n\" >/dev/null 2>&1 || exit 1; done"
            );
            s.program("sh")
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run = done(child);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let entries = log_json(&machines[1]);
    assert_eq!(entries.len(), 400);
    for i in 0..4 {
        let mine = entries
            .iter()
            .filter(|e| e["text"].as_str().unwrap().starts_with(&format!("m{i} ")))
            .count();
        assert_eq!(mine, 100, "machine {i}");
    }
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as i64).collect::<Vec<_>>());
    let run = machines[3].run(&["log", "--verify", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["intact"], true);
    assert_eq!(run.json()["entries"], entries.len());
}

// ---------------------------------------------------------------------------------------------
// Faults: the database restarted or the connection killed mid-delivery.

#[derive(Clone, Copy, Debug)]
enum Cut {
    Restart,
    Terminate,
}

fn fault(point: &str, cut: Cut) {
    // A restart would cut every other test's sessions too: this test gets a server of its own.
    let own;
    let server = match cut {
        Cut::Restart => {
            own = pg::Pg::own();
            &own
        }
        Cut::Terminate => pg::server(),
    };
    let t = team_on(server, Kind::Mastodon, "");
    let text = format!("Through a {cut:?} at {point}");
    let mut child = spawn(
        &t.machines[0],
        &["post", "--yes", &text],
        Some(&format!("{point}:2000")),
    );
    let stderr = wait_for(&mut child, &format!("gate-test-pause: {point}"));
    match cut {
        Cut::Restart => server.restart_immediate(),
        Cut::Terminate => assert!(server.terminate(db_name(&t.url)) >= 1),
    }
    let first = finish(child, stderr);
    assert_ne!(first.code, 0, "{first:?}");
    let sent_before = t.fake.posts().len();
    // The next run, from another machine, resolves it: found or sent, once.
    let run = t.machines[2].run(&["post", "--yes", &text]);
    assert_eq!(run.code, 0, "{point} {cut:?}: {first:?}\n{run:?}");
    let posts = t.fake.posts_with(&text);
    assert_eq!(posts.len(), 1, "{point} {cut:?}: {posts:?}");
    match point {
        // Cut before the send: the first run noticed it lost the delivery's lock and sent
        // nothing.
        "after-journal" => {
            assert_eq!(sent_before, 0, "{first:?}");
            assert!(
                first
                    .stderr
                    .contains("lost the team-wide lock on this delivery"),
                "{first:?}"
            );
        }
        // Cut after the send: the post went out once, and the next run found it.
        _ => {
            assert_eq!(sent_before, 1, "{first:?}");
            assert!(first.stderr.contains("the post went out"), "{first:?}");
            assert!(
                run.stderr.contains("already sent")
                    || run.stderr.contains("checking whether it went out"),
                "{run:?}"
            );
        }
    }
    assert_eq!(
        server.sql(db_name(&t.url), "SELECT state FROM gate_deliveries"),
        "sent"
    );
    assert_eq!(
        server.sql(
            db_name(&t.url),
            "SELECT count(*) FROM gate_audit WHERE event = 'post'"
        ),
        "1"
    );
}

#[test]
fn a_restart_between_claim_and_send_neither_loses_nor_duplicates() {
    fault("after-journal", Cut::Restart);
}

#[test]
fn a_killed_connection_between_claim_and_send_neither_loses_nor_duplicates() {
    fault("after-journal", Cut::Terminate);
}

#[test]
fn a_restart_between_send_and_sent_neither_loses_nor_duplicates() {
    fault("after-publish", Cut::Restart);
}

#[test]
fn a_killed_connection_between_send_and_sent_neither_loses_nor_duplicates() {
    fault("after-publish", Cut::Terminate);
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// The same, against the real Bluesky PDS: four machines, each signed in with its own
/// app-password session, twenty processes posting one file make one record.
#[test]
fn twenty_processes_on_four_machines_post_a_bluesky_file_once() {
    let pds = common::pds::shared();
    let alice = pds.create_account("team");
    let app_password = pds.app_password(&alice, "gate");
    let url = pg::server().database();
    let mut buses = Vec::new();
    let mut machines = Vec::new();
    for i in 0..4 {
        let bus = SessionBus::with_gnome_keyring();
        let (s, _) = Builder::new(
            Policy::new("bsky", "bluesky", &pds.url)
                .timezone("UTC")
                .handle(&alice.handle)
                .text(),
        )
        .var("GATE_STATE_URL", &url)
        .var("USER", format!("user{i}"))
        .keychain(Keychain::On(&bus))
        .app_password("bsky", &app_password)
        .build();
        buses.push(bus);
        machines.push(s);
    }
    let text = "One launch, announced once by the whole team";
    let paths: Vec<String> = machines
        .iter()
        .map(|s| {
            s.write(
                "launch.post.toml",
                &format!("accounts = [\"bsky\"]\ntext = \"{text}\"\n"),
            )
            .display()
            .to_string()
        })
        .collect();
    let children: Vec<Child> = (0..20)
        .map(|i| {
            spawn(
                &machines[i % 4],
                &["post", "--yes", "--file", &paths[i % 4]],
                None,
            )
        })
        .collect();
    let runs: Vec<Run> = children.into_iter().map(done).collect();
    let mut urls = std::collections::BTreeSet::new();
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
        urls.insert(run.stdout.trim().to_owned());
    }
    assert_eq!(urls.len(), 1, "{urls:?}");
    let page = pds
        .query(
            "com.atproto.repo.listRecords",
            &[
                ("repo", alice.did.as_str()),
                ("collection", "app.bsky.feed.post"),
                ("limit", "100"),
            ],
        )
        .expect("listRecords");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["value"]["text"], text);
    let server = pg::server();
    assert_eq!(
        server.sql(
            db_name(&url),
            "SELECT count(*) FROM gate_audit WHERE event = 'post'"
        ),
        "1"
    );
}

/// A thread (SPEC §8) started on one machine and killed part-way is finished by another: the
/// team store holds one delivery per item, so the second machine sends only what is missing,
/// each item answering the id the store recorded for the one before, and finds (never
/// resends) the item that went out unrecorded.
#[test]
fn a_thread_killed_on_one_machine_is_resumed_by_another() {
    for (point, out) in [("after-sent@1", 2), ("after-publish@2", 3)] {
        let token = canary();
        let fake = Server::start(Kind::Mastodon, &token);
        let url = pg::server().database();
        let bus_a = SessionBus::with_gnome_keyring();
        let bus_b = SessionBus::with_gnome_keyring();
        let a = machine(&url, Some((&fake, &bus_a, &token)));
        let b = machine(&url, Some((&fake, &bus_b, &token)));
        let texts: Vec<String> = (0..4)
            .map(|i| format!("{point}: item {i} of the team's thread"))
            .collect();
        let mut file = String::from("account = \"brand\"\n");
        for t in &texts {
            file.push_str(&format!("[[thread]]\ntext = \"{t}\"\n"));
        }
        let path_a = a.write("t.post.toml", &file).display().to_string();
        let path_b = b.write("t.post.toml", &file).display().to_string();

        let mut child = a
            .command(&["post", "--yes", "--file", &path_a])
            .env("GATE_TEST_FAULT", point)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _stderr = wait_for(&mut child, &format!("gate-test-fault: {point}"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            fake.creates().len(),
            out,
            "{point}: out before machine b runs"
        );

        let run = b.run(&["post", "--yes", "--json", "--file", &path_b]);
        assert_eq!(run.code, 0, "{point}: {run:?}");
        assert_eq!(
            fake.creates().len(),
            4,
            "{point}: machine b sent items {out} to 3 only"
        );
        let mut parent: Option<String> = None;
        for (k, t) in texts.iter().enumerate() {
            let posts = fake.posts_with(t);
            assert_eq!(posts.len(), 1, "{point}: item {k} once");
            assert_eq!(posts[0].reply_to, parent, "{point}: item {k}'s parent");
            parent = Some(posts[0].id.clone());
        }
        let sent = run.json()["sent"].as_array().unwrap().clone();
        let earlier: Vec<bool> = sent.iter().map(|e| e["earlier"] == true).collect();
        assert_eq!(
            earlier,
            (0..4).map(|k| k < out).collect::<Vec<_>>(),
            "{point}: {sent:?}"
        );
        let server = pg::server();
        assert_eq!(
            server.sql(
                db_name(&url),
                "SELECT string_agg(item || ':' || state, ',' ORDER BY item) FROM gate_deliveries"
            ),
            "0:sent,1:sent,2:sent,3:sent",
            "{point}"
        );
        // The thread counted once in the team's ledger; machine a, run again, sends nothing.
        let again = a.run(&["post", "--yes", "--file", &path_a]);
        assert_eq!(again.code, 0, "{point}: {again:?}");
        assert_eq!(fake.creates().len(), 4, "{point}");
    }
}

/// A version-1 team store (one delivery per post and account) is read as it is by a reader
/// (`gate check`) and migrated by a writer: every row it holds becomes item 0 of its post.
#[test]
fn a_version_1_team_store_keeps_its_deliveries_as_item_0() {
    let server = pg::server();
    let url = server.database();
    let db = db_name(&url).to_owned();
    server.sql(&db, gate::store::postgres::TO_V1);
    server.sql(
        &db,
        "INSERT INTO gate_deliveries (digest, account, platform, idempotency_key, state, remote_id, url, pid, host, attempts, created_at, updated_at, sent_at)
         VALUES ('d', 'brand', 'mastodon', 'k', 'sent', '109', 'https://m/109', 1, 'h', 1, now(), now(), now())",
    );
    let home = tempfile::tempdir().unwrap();
    let env = Env::for_tests(home.path());
    let target = || Target::new(&url, "GATE_STATE_URL").unwrap();
    let reader = Postgres::connect(&env, target(), false).unwrap();
    assert_eq!(reader.version, 1, "a reader never migrates");
    let row = reader.get("d", "brand", 0).unwrap().unwrap();
    assert_eq!((row.item, row.state), (0, State::Sent));
    assert_eq!(reader.get("d", "brand", 1).unwrap(), None);
    assert_eq!(
        reader
            .ledger(Utc::now() - Duration::minutes(1))
            .unwrap()
            .0
            .len(),
        1
    );
    drop(reader);
    let writer = Postgres::connect(&env, target(), true).unwrap();
    assert_eq!(writer.version, 2);
    let row = writer.get("d", "brand", 0).unwrap().unwrap();
    assert_eq!(
        (row.item, row.state, row.remote_id.as_deref()),
        (0, State::Sent, Some("109"))
    );
    assert_eq!(
        server.sql(
            &db,
            "SELECT string_agg(item::text, ',') FROM gate_deliveries"
        ),
        "0"
    );
    // A later item of the same post is a delivery of its own beside it.
    let claim = Claim {
        digest: "d",
        account: "brand",
        item: 1,
        platform: "mastodon",
        key: "k1",
        now: Utc::now(),
    };
    assert!(writer.claim(&claim, &mut |_| true).unwrap());
    let items: Vec<u32> = writer
        .thread("d", "brand")
        .unwrap()
        .iter()
        .map(|d| d.item)
        .collect();
    assert_eq!(items, [0, 1]);
}

/// `gate post --due` from four cron hosts at once (SPEC §7), each with its own copy of the
/// same folder: every due post goes out once for the whole team, a not-yet one not at all.
#[test]
fn four_hosts_sweeping_the_same_folder_at_once_send_each_due_post_once() {
    let t = team(Kind::Mastodon, "");
    let at = |s: i64| {
        DateTime::from_timestamp(Utc::now().timestamp() + s, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let (start, end, later) = (at(-60), at(600), at(300));
    for s in &t.machines {
        for i in 0..3 {
            s.write(
                &format!("posts/due{i}.post.toml"),
                &format!("account = \"brand\"\ntext = \"Team sweep {i}\"\nnot_before = {start}\nnot_after = {end}\n"),
            );
        }
        s.write(
            "posts/later.post.toml",
            &format!("account = \"brand\"\ntext = \"Not yet\"\nnot_before = {later}\n"),
        );
    }
    let children: Vec<Child> = t
        .machines
        .iter()
        .map(|s| spawn(s, &["post", "--due", "posts", "--yes", "--json"], None))
        .collect();
    let runs: Vec<Run> = children.into_iter().map(done).collect();
    let mut sent = [0; 3];
    for run in &runs {
        assert_eq!(run.code, 0, "{run:?}");
        let doc = run.json();
        for (i, n) in sent.iter_mut().enumerate() {
            match doc["files"][i]["status"].as_str() {
                Some("sent") => *n += 1,
                Some("already-sent") => {}
                other => panic!("due{i}: {other:?}: {run:?}"),
            }
        }
        assert_eq!(doc["files"][3]["status"], "not-yet", "{run:?}");
    }
    assert_eq!(sent, [1, 1, 1], "{runs:?}");
    for i in 0..3 {
        assert_eq!(
            t.fake.posts_with(&format!("Team sweep {i}")).len(),
            1,
            "due{i}"
        );
    }
    assert_eq!(t.fake.posts().len(), 3);
    assert_eq!(
        pg::server().sql(
            db_name(&t.url),
            "SELECT count(*) FROM gate_deliveries WHERE state = 'sent'"
        ),
        "3"
    );
}
