//! Threads end to end (SPEC §8): a `[[thread]]` post file sent as a reply chain to the fake
//! Mastodon and X servers and to the real Bluesky PDS, killed part-way at every fault point and
//! resumed by the next run; `gate retract --last` on a thread; `gate check` showing each item.

use crate::common;
use crate::fake;

use common::keychain::SessionBus;
use common::pds::{self, Pds};
use common::setup::{Builder, Fake, Keychain, Policy};
use common::{Run, Sandbox};
use fake::{Kind, Server};
use serde_json::Value;

/// Where a thread of four is stopped: after item 1 is recorded (0-based: the second item),
/// and at each point of item 2's send (the lock taken, claimed, published but not recorded).
const POINTS: &[&str] = &[
    "after-sent@1",
    "locked@2",
    "after-journal@2",
    "after-publish@2",
];

fn thread_file(texts: &[String]) -> String {
    let mut file = String::from("account = \"brand\"\n");
    for t in texts {
        file.push_str(&format!("\n[[thread]]\ntext = \"{t}\"\n"));
    }
    file
}

fn texts(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag}: part {i} of the thread"))
        .collect()
}

/// Starts `gate post --yes --file FILE` with `GATE_TEST_FAULT=point`, waits until it gets
/// there and SIGKILLs it.
fn kill_at(s: &Sandbox, file: &str, point: &str) {
    s.kill_at(&["post", "--yes", "--file", file], point);
}

/// How many of a thread's items were out on the network when gate was stopped at `point`.
fn out_when_killed(point: &str) -> usize {
    match point {
        "after-sent@1" | "locked@2" | "after-journal@2" => 2,
        "after-publish@2" => 3,
        other => panic!("no such point {other}"),
    }
}

/// The journal's (item, state, remote id) rows, by item.
fn journal(s: &Sandbox) -> Vec<(i64, String, Option<String>)> {
    let db = rusqlite::Connection::open(s.path().join("state/journal.sqlite3")).unwrap();
    let mut stmt = db
        .prepare("SELECT item, state, remote_id FROM deliveries ORDER BY item")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn fake_setup(kind: Kind, bus: &SessionBus) -> Fake {
    Fake::start(kind, Keychain::On(bus), &["brand"], |url| {
        Policy::new("brand", kind.name(), url)
            .timezone("UTC")
            .then("\n[limits]\nmax_posts_per_hour = 1\n")
            .text()
    })
}

/// The thread on the fake server, in item order: each item once, item 0 answering nothing and
/// item k answering item k - 1.
fn assert_chain(server: &Server, texts: &[String], context: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for (k, t) in texts.iter().enumerate() {
        let posts = server.posts_with(t);
        assert_eq!(
            posts.len(),
            1,
            "{context}: item {k} is on the server once: {posts:?}"
        );
        let expected = if k == 0 {
            None
        } else {
            Some(ids[k - 1].clone())
        };
        assert_eq!(posts[0].reply_to, expected, "{context}: item {k}'s parent");
        ids.push(posts[0].id.clone());
    }
    ids
}

#[test]
fn a_thread_killed_part_way_resumes_from_its_first_unsent_item_on_mastodon_and_x() {
    let bus = SessionBus::with_gnome_keyring();
    for kind in [Kind::Mastodon, Kind::X] {
        for point in POINTS {
            let context = format!("{} killed at {point}", kind.name());
            let f = fake_setup(kind, &bus);
            let texts = texts(&format!("{} {point}", kind.name()), 4);
            let file = f.sandbox.write("launch.post.toml", &thread_file(&texts));
            let file = file.to_str().unwrap();
            kill_at(&f.sandbox, file, point);
            let out = out_when_killed(point);
            let before = f.server.creates().len();
            assert_eq!(before, out, "{context}: creates before the kill");
            for (k, t) in texts.iter().enumerate() {
                assert_eq!(
                    f.server.posts_with(t).len(),
                    usize::from(k < out),
                    "{context}: item {k} on the server after the kill"
                );
            }

            // The next run sends the items that are not out, each answering the right parent,
            // and finds (never resends) the one that went out unrecorded. The thread counts as
            // one post for `max_posts_per_hour = 1`: its own items never hold it.
            let run = f.sandbox.run(&["post", "--yes", "--json", "--file", file]);
            assert_eq!(run.code, 0, "{context}: {run:?}");
            let ids = assert_chain(&f.server, &texts, &context);
            assert_eq!(
                f.server.creates().len() - before,
                4 - out,
                "{context}: the resuming run created items {out} to 3 only"
            );
            assert_eq!(f.server.posts().len(), 4, "{context}: no strays");
            let doc = run.json();
            let sent = doc["sent"].as_array().unwrap();
            assert_eq!(sent.len(), 4, "{context}: {doc}");
            for (k, e) in sent.iter().enumerate() {
                assert_eq!(e["item"], k, "{context}: {e}");
                assert_eq!(e["id"], ids[k].as_str(), "{context}: {e}");
                // Items 0 and 1 were recorded before the kill; after `after-publish@2` item 2
                // is found on the network.
                assert_eq!(e["earlier"], k < out, "{context}: item {k}: {e}");
            }
            let rows = journal(&f.sandbox);
            assert_eq!(
                rows.iter()
                    .map(|(i, s, id)| (*i, s.as_str(), id.clone()))
                    .collect::<Vec<_>>(),
                (0..4)
                    .map(|k| (k as i64, "sent", Some(ids[k].clone())))
                    .collect::<Vec<_>>(),
                "{context}: one delivery per item"
            );

            // A third run sends nothing.
            let again = f.sandbox.run(&["post", "--yes", "--file", file]);
            assert_eq!(again.code, 0, "{context}: {again:?}");
            assert_eq!(f.server.creates().len() - before, 4 - out, "{context}");
            assert_eq!(again.stdout.lines().count(), 4, "{again:?}");
        }
    }
}

#[test]
fn retract_last_deletes_a_whole_thread_last_item_first() {
    let bus = SessionBus::with_gnome_keyring();
    for kind in [Kind::Mastodon, Kind::X] {
        let f = fake_setup(kind, &bus);
        let texts = texts(&format!("retract {}", kind.name()), 3);
        let file = f.sandbox.write("t.post.toml", &thread_file(&texts));
        let run = f
            .sandbox
            .run(&["post", "--yes", "--file", file.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{run:?}");
        let ids = assert_chain(&f.server, &texts, kind.name());

        let run = f
            .sandbox
            .run(&["retract", "brand", "--last", "--yes", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        let deletes: Vec<String> = f
            .server
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
            .collect();
        let reversed: Vec<String> = ids.iter().rev().cloned().collect();
        assert_eq!(deletes, reversed, "{}: last item first", kind.name());
        assert!(f.server.posts().is_empty(), "{}: all deleted", kind.name());
        let doc = run.json();
        let items: Vec<u64> = doc["retracted"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_u64().unwrap())
            .collect();
        assert_eq!(items, [2, 1, 0], "{doc}");
        assert!(
            journal(&f.sandbox).iter().all(|(_, s, _)| s == "retracted"),
            "{:?}",
            journal(&f.sandbox)
        );
        // Again: nothing left to delete, each item reported as retracted earlier.
        let again = f
            .sandbox
            .run(&["retract", "brand", "--last", "--yes", "--json"]);
        assert_eq!(again.code, 0, "{again:?}");
        assert!(
            again.json()["retracted"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["earlier"] == true),
            "{again:?}"
        );
        let deletes = f
            .server
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE")
            .count();
        assert_eq!(deletes, 3, "nothing deleted twice");
    }
}

#[test]
fn a_partly_failed_retract_says_what_is_left_and_the_same_command_finishes_it() {
    let bus = SessionBus::with_gnome_keyring();
    let f = fake_setup(Kind::Mastodon, &bus);
    let texts = texts("partial retract", 3);
    let file = f.sandbox.write("t.post.toml", &thread_file(&texts));
    let run = f
        .sandbox
        .run(&["post", "--yes", "--file", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let ids = assert_chain(&f.server, &texts, "mastodon");
    // The last item is deleted; the middle one's delete is refused with a 503.
    f.server.fault_delete(
        &ids[1],
        fake::Fault::Status(503, Vec::new(), r#"{"error":"unavailable"}"#.into()),
    );
    let run = f
        .sandbox
        .run(&["retract", "brand", "--last", "--yes", "--json"]);
    assert_eq!(run.code, 9, "{run:?}");
    let left: Vec<String> = f.server.posts().iter().map(|p| p.id.clone()).collect();
    assert_eq!(
        left,
        ids[..2],
        "item 2 deleted, items 1 and 0 left: {run:?}"
    );
    let doc = run.json();
    assert_eq!(doc["failed"]["item"], 1, "{doc}");
    let done: Vec<&Value> = doc["retracted"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(done.len(), 1, "{doc}");
    assert_eq!(
        (done[0]["item"].clone(), done[0]["earlier"].clone()),
        (2.into(), false.into())
    );
    assert!(
        run.stderr.contains("1 item(s) of the thread were retracted; item 1 and 1 earlier one(s) are still up; run the same `gate retract --last` again to go on from item 1"),
        "{run:?}"
    );
    let rows = journal(&f.sandbox);
    let states: Vec<&str> = rows.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(states, ["sent", "sent", "retracted"]);

    // The same command goes on from item 1: item 2 is not deleted again.
    let run = f
        .sandbox
        .run(&["retract", "brand", "--last", "--yes", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(f.server.posts().is_empty(), "{run:?}");
    let deletes: Vec<String> = f
        .server
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        deletes,
        [
            ids[2].clone(),
            ids[1].clone(),
            ids[1].clone(),
            ids[0].clone()
        ],
        "item 1 tried twice, nothing else"
    );
}

#[test]
fn check_and_approve_show_every_item_against_each_network_limit() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n\n[accounts.brand-bsky]\nplatform = \"bluesky\"\n\n[banned_terms]\ndeny = [\"layoffs\"]\n",
    );
    let long = "a".repeat(301);
    s.write(
        "t.post.toml",
        &format!(
            "accounts = [\"brand\", \"brand-bsky\"]\n\n[[thread]]\ntext = \"Short first post\"\n\n[[thread]]\ntext = \"{long}\"\n\n[[thread]]\ntext = \"No layoffs here\"\n"
        ),
    );
    let run = s.run(&["check", "--file", "t.post.toml"]);
    assert_eq!(run.code, 4, "{run:?}");
    for line in [
        "item 0: 16/500 characters",
        "item 1: 301/500 characters",
        "item 0: 16/300 graphemes",
        "item 1: 301/300 graphemes",
        "item 2: 15/300 graphemes",
        "banned_term (item 2): \"layoffs\" matches the banned term `layoffs`",
        "length (item 1): 301 graphemes, over the limit of 300 for bluesky account `brand-bsky`",
    ] {
        assert!(run.stdout.contains(line), "missing {line:?}: {run:?}");
    }
    assert!(
        !run.stdout.contains("length (item 1): 301 characters"),
        "Mastodon takes 500: {run:?}"
    );
    let doc = s.run(&["check", "--json", "--file", "t.post.toml"]).json();
    let posts = doc["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 2);
    for p in posts {
        let limit = if p["account"] == "brand" { 500 } else { 300 };
        let items: Vec<(u64, u64, u64)> = p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["item"].as_u64().unwrap(),
                    i["length"].as_u64().unwrap(),
                    i["limit"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            items,
            [(0, 16, limit), (1, 301, limit), (2, 15, limit)],
            "{p}"
        );
        let term = p["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "banned_term")
            .unwrap();
        assert_eq!(
            (term["item"].clone(), term["start"].clone()),
            (2.into(), 3.into())
        );
    }
    // --format github points at the term inside the third item, in the file.
    let run = s.run(&["check", "--format", "github", "--file", "t.post.toml"]);
    assert!(
        run.stdout.contains("::error file=t.post.toml,line=10,col=12,endLine=10,endColumn=19,title=gate deny banned_term::"),
        "{run:?}"
    );
    // `gate digest` covers the three items.
    let digest = s.run(&["digest", "--file", "t.post.toml"]);
    assert_eq!(digest.code, 0, "{digest:?}");
    assert!(digest.stdout.contains("\nthread 3\n"), "{digest:?}");
}

// ---------------------------------------------------------------------------------------------
// Bluesky, against the real PDS.

struct Bsky {
    sandbox: Sandbox,
    pds: &'static Pds,
    did: String,
}

fn bsky_setup(bus: &SessionBus) -> Bsky {
    let pds = pds::shared();
    let alice = pds.create_account("thread");
    let app_password = pds.app_password(&alice, "gate");
    let (sandbox, _) = Builder::new(
        Policy::new("brand", "bluesky", &pds.url)
            .timezone("UTC")
            .handle(&alice.handle)
            .text(),
    )
    .keychain(Keychain::On(bus))
    .app_password("brand", &app_password)
    .build();
    Bsky {
        sandbox,
        pds,
        did: alice.did,
    }
}

impl Bsky {
    fn records(&self) -> Vec<Value> {
        let page = self
            .pds
            .query(
                "com.atproto.repo.listRecords",
                &[
                    ("repo", self.did.as_str()),
                    ("collection", "app.bsky.feed.post"),
                    ("limit", "100"),
                ],
            )
            .expect("listRecords");
        page["records"].as_array().unwrap().clone()
    }

    /// The thread's records in item order, each once, with `reply.root` the first item and
    /// `reply.parent` the one before (uri and cid both).
    fn assert_chain(&self, texts: &[String], context: &str) -> Vec<String> {
        let records = self.records();
        let mut refs: Vec<(String, String)> = Vec::new();
        for (k, t) in texts.iter().enumerate() {
            let mine: Vec<&Value> = records
                .iter()
                .filter(|r| r["value"]["text"] == *t)
                .collect();
            assert_eq!(mine.len(), 1, "{context}: item {k} once: {records:#?}");
            let r = mine[0];
            let reply = &r["value"]["reply"];
            if k == 0 {
                assert!(reply.is_null(), "{context}: item 0 replies to nothing: {r}");
            } else {
                assert_eq!(
                    reply["root"]["uri"],
                    refs[0].0.as_str(),
                    "{context}: item {k} root"
                );
                assert_eq!(
                    reply["root"]["cid"],
                    refs[0].1.as_str(),
                    "{context}: item {k} root cid"
                );
                assert_eq!(
                    reply["parent"]["uri"],
                    refs[k - 1].0.as_str(),
                    "{context}: item {k} parent"
                );
                assert_eq!(
                    reply["parent"]["cid"],
                    refs[k - 1].1.as_str(),
                    "{context}: item {k} parent cid"
                );
            }
            refs.push((
                r["uri"].as_str().unwrap().to_owned(),
                r["cid"].as_str().unwrap().to_owned(),
            ));
        }
        refs.into_iter().map(|(uri, _)| uri).collect()
    }
}

#[test]
fn a_bluesky_thread_killed_part_way_resumes_with_root_and_parent_right() {
    let bus = SessionBus::with_gnome_keyring();
    for point in POINTS {
        let context = format!("bluesky killed at {point}");
        let b = bsky_setup(&bus);
        let texts = texts(&format!("bluesky {point}"), 4);
        let file = b.sandbox.write("launch.post.toml", &thread_file(&texts));
        let file = file.to_str().unwrap();
        kill_at(&b.sandbox, file, point);
        let out = out_when_killed(point);
        assert_eq!(b.records().len(), out, "{context}: records after the kill");

        let run = b.sandbox.run(&["post", "--yes", "--json", "--file", file]);
        assert_eq!(run.code, 0, "{context}: {run:?}");
        let uris = b.assert_chain(&texts, &context);
        assert_eq!(b.records().len(), 4, "{context}: no strays");
        let doc = run.json();
        let sent: Vec<(&str, bool)> = doc["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_str().unwrap(), e["earlier"].as_bool().unwrap()))
            .collect();
        let expected: Vec<(&str, bool)> = uris
            .iter()
            .enumerate()
            .map(|(k, u)| (u.as_str(), k < out))
            .collect();
        assert_eq!(sent, expected, "{context}");
    }
}

#[test]
fn retract_last_deletes_a_bluesky_thread_last_item_first() {
    let bus = SessionBus::with_gnome_keyring();
    let b = bsky_setup(&bus);
    let texts = texts("bluesky retract", 3);
    let file = b.sandbox.write("t.post.toml", &thread_file(&texts));
    let run = b
        .sandbox
        .run(&["post", "--yes", "--file", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    b.assert_chain(&texts, "bluesky");
    let run: Run = b.sandbox.run(&["retract", "brand", "--last", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(b.records().is_empty(), "{:#?}", b.records());
    let order: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("retracted from"))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(order, ["item 2", "item 1", "item 0"], "{run:?}");
}

/// One approval signs the whole thread: `gate approve` shows every item with its length, the
/// approval counts, and any edit to any item (or a new order) voids it.
#[test]
fn one_approval_signs_a_thread_and_any_edit_to_an_item_voids_it() {
    let s = Sandbox::new();
    let keys = s.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (carol, carol_pub) = common::keygen(&keys, "carol", "");
    s.write(
        "gate.toml",
        &format!(
            "version = 1\n\n[accounts.brand]\nplatform = \"x\"\n\n[reviewers]\nrequired = 1\n[reviewers.keys]\ncarol = \"{carol_pub}\"\n"
        ),
    );
    let texts = texts("approved thread", 3);
    s.write("t.post.toml", &thread_file(&texts));
    let run = s.run(&[
        "approve",
        "--file",
        "t.post.toml",
        "--key",
        carol.to_str().unwrap(),
        "--yes",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    for (k, text) in texts.iter().enumerate() {
        assert!(
            run.stderr.contains(&format!("item {k} of the thread:"))
                && run.stderr.contains(&format!("  | {text}"))
                && run
                    .stderr
                    .contains(&format!("item {k}: {}/280 weighted characters", text.len())),
            "item {k}: {run:?}"
        );
    }
    let doc = run.json();
    assert_eq!(doc["valid"], serde_json::json!(["carol"]), "{doc}");
    let items: Vec<(u64, u64)> = doc["items"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["length"].as_u64().unwrap(), i["limit"].as_u64().unwrap()))
        .collect();
    let n = texts[0].len() as u64;
    assert_eq!(items, [(n, 280); 3], "{doc}");
    let check = |what: &str| {
        let run = s.run(&["check", "--json", "--file", "t.post.toml"]);
        let doc = run.json();
        let f = doc["posts"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "reviewers")
            .cloned();
        (run.code, f.map(|f| f["valid"].clone()), what.to_owned())
    };
    // Signed: no reviewers finding holds it.
    assert_eq!(check("signed").0, 0);
    let signed = s.read("t.post.toml");
    // An edit to the last item voids the approval.
    s.write("t.post.toml", &signed.replace("part 2", "part two"));
    let (code, valid, _) = check("edited");
    assert_eq!((code, valid), (6, Some(0.into())));
    // So does swapping two items.
    let swapped = signed
        .replace("part 0", "PART-X")
        .replace("part 1", "part 0")
        .replace("PART-X", "part 1");
    s.write("t.post.toml", &swapped);
    let (code, valid, _) = check("swapped");
    assert_eq!((code, valid), (6, Some(0.into())));
}
