//! A seeded compound-fault campaign: for each network (the fake Mastodon and X, the real
//! Bluesky PDS) at least [`RUNS`] posts, each under 1–3 faults drawn from the fault proxy's
//! list (`tests/it/common/fault_proxy.rs`), SIGKILL at a fault point and a lock holder stopped
//! and resumed. After the faulted run the same `gate post --yes --json` runs again until it
//! settles. Every run of every post is checked: no duplicate, nothing lost, and never
//! "nothing was sent" for a post that went out.
//!
//! Every [`THREAD_EVERY`]th post is a thread of [`THREAD_ITEMS`] items (SPEC §8), sent from a
//! post file: its SIGKILL and stop points land on one of its items (`POINT@ITEM`), and it must
//! settle with every item on the server once, each answering the item before it.
//!
//! `GATE_CAMPAIGN_SEED=N` replays a campaign; the seed and every failing run's faults are
//! printed on failure.

use crate::common;
use crate::fake;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Sandbox;
use common::fault_proxy::{Dialect, Fault, FaultProxy};
use common::keychain::{SessionBus, canary};
use common::pds::{self, Pds};
use common::setup::{Builder, Keychain, Login, Policy};
use fake::{Kind, Server};
use serde_json::Value;

/// Posts per network.
const RUNS: usize = 200;
/// Every this many posts, one is a thread (the others are plain posts, as before).
const THREAD_EVERY: usize = 5;
const THREAD_ITEMS: usize = 3;
/// Sandboxes per network, each with its own server (or PDS account) and proxy, run at once:
/// the fakes answer at once, the PDS is slower (its runs wait on it more than on the CPU).
const FAKE_SHARDS: usize = 2;
const PDS_SHARDS: usize = 4;
/// Plain `gate post` runs after the faulted ones before a post must have settled.
const RERUNS: usize = 5;
/// The longest one gate process may take.
const PROCESS_LIMIT: Duration = Duration::from_secs(60);
/// How long a stopped lock holder stays stopped while a second process waits for the lock.
const STOPPED_FOR: Duration = Duration::from_millis(300);
const DEFAULT_SEED: u64 = 0x6a7e_2026_c0ff_ee00;

/// splitmix64: small, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    match std::env::var("GATE_CAMPAIGN_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`GATE_CAMPAIGN_SEED` must be a number, not {v:?}")),
        Err(_) => DEFAULT_SEED,
    }
}

/// One fault of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// Applied by the proxy to the next create request (of whichever process).
    Net(Fault),
    /// The next gate process is SIGKILLed at this fault point.
    Kill(&'static str),
    /// The next gate process is stopped (SIGSTOP) at this point, holding the delivery lock,
    /// while a second `gate post` of the same text starts; then it is resumed (SIGCONT).
    Stop(&'static str),
}

impl Step {
    fn name(self) -> String {
        match self {
            Step::Net(f) => f.name().to_owned(),
            Step::Kill(p) => format!("SIGKILL {p}"),
            Step::Stop(p) => format!("lock holder stopped {p}"),
        }
    }
}

fn draw(rng: &mut Rng) -> Vec<Step> {
    let n = 1 + rng.below(3);
    (0..n)
        .map(|_| match rng.below(Fault::ALL.len() + 3) {
            i if i < Fault::ALL.len() => Step::Net(Fault::ALL[i]),
            i if i == Fault::ALL.len() => Step::Kill("after-journal"),
            i if i == Fault::ALL.len() + 1 => Step::Kill("after-publish"),
            _ => Step::Stop(["locked", "after-journal", "after-publish"][rng.below(3)]),
        })
        .collect()
}

/// Where the posts go: a fake server, or an account on the real PDS.
enum Remote {
    Fake(Server),
    Pds {
        pds: &'static Pds,
        did: String,
        handle: String,
    },
}

impl Remote {
    /// The addresses of the posts on the server whose text is `text`.
    fn urls(&self, text: &str) -> Vec<String> {
        match self {
            Remote::Fake(server) => server
                .posts_with(text)
                .iter()
                .map(|p| server.post_url(&p.id))
                .collect(),
            Remote::Pds { pds, did, handle } => all_posts(pds, did)
                .iter()
                .filter(|r| r["value"]["text"] == text)
                .map(|r| {
                    let rkey = r["uri"].as_str().unwrap().rsplit('/').next().unwrap();
                    format!("https://bsky.app/profile/{handle}/post/{rkey}")
                })
                .collect(),
        }
    }

    /// Whether the thread of `texts` is a reply chain on the server: item k > 0 answers
    /// item k - 1 (on Bluesky also `reply.root` = item 0); `None` when it is, else why not.
    fn chain_problem(&self, texts: &[String]) -> Option<String> {
        match self {
            Remote::Fake(server) => {
                let mut parent: Option<String> = None;
                for (k, t) in texts.iter().enumerate() {
                    let posts = server.posts_with(t);
                    let [post] = posts.as_slice() else {
                        return Some(format!("item {k} is on the server {} times", posts.len()));
                    };
                    if post.reply_to != parent {
                        return Some(format!(
                            "item {k} answers {:?}, not {parent:?}",
                            post.reply_to
                        ));
                    }
                    parent = Some(post.id.clone());
                }
                None
            }
            Remote::Pds { pds, did, .. } => {
                let records = all_posts(pds, did);
                let mut refs: Vec<(Value, Value)> = Vec::new();
                for (k, t) in texts.iter().enumerate() {
                    let mine: Vec<&Value> = records
                        .iter()
                        .filter(|r| r["value"]["text"] == *t)
                        .collect();
                    let [r] = mine.as_slice() else {
                        return Some(format!("item {k} is on the PDS {} times", mine.len()));
                    };
                    let reply = &r["value"]["reply"];
                    if k == 0 && !reply.is_null() {
                        return Some(format!("item 0 is a reply: {reply}"));
                    }
                    if k > 0 {
                        let (root, parent) = (&refs[0], &refs[k - 1]);
                        if reply["root"]["uri"] != root.0 || reply["root"]["cid"] != root.1 {
                            return Some(format!("item {k}'s reply.root is {}", reply["root"]));
                        }
                        if reply["parent"]["uri"] != parent.0 || reply["parent"]["cid"] != parent.1
                        {
                            return Some(format!("item {k}'s reply.parent is {}", reply["parent"]));
                        }
                    }
                    refs.push((r["uri"].clone(), r["cid"].clone()));
                }
                None
            }
        }
    }

    fn total(&self) -> usize {
        match self {
            Remote::Fake(server) => server.posts().len(),
            Remote::Pds { pds, did, .. } => all_posts(pds, did).len(),
        }
    }
}

/// Every post record of `did`, page by page.
fn all_posts(pds: &Pds, did: &str) -> Vec<Value> {
    pds.posts(did)
}

/// One sandbox of a network: its gate home, the remote, the proxy gate talks through.
struct Shard {
    sandbox: Sandbox,
    remote: Remote,
    proxy: FaultProxy,
    account: &'static str,
    /// What must never show in gate's output.
    secrets: Vec<String>,
}

/// A shard's sandbox: the policy, a keychain on `bus`, the pause scale, one patient login (the
/// campaign is about sending, not about sign-in).
fn shard_sandbox(bus: &SessionBus, policy: Policy, account: &str, login: Login) -> Sandbox {
    Builder::new(policy.timezone("UTC").text())
        .var("GATE_TEST_PAUSE_SCALE", "0.01")
        .keychain(Keychain::On(bus))
        .login(account, login)
        .patient()
        .build()
        .0
}

fn fake_shard(kind: Kind, bus: &SessionBus) -> Shard {
    let token = canary();
    let server = Server::start(kind, &token);
    let proxy = FaultProxy::start(
        &server.url,
        match kind {
            Kind::Mastodon => Dialect::Mastodon,
            Kind::X => Dialect::X,
        },
    );
    let sandbox = shard_sandbox(
        bus,
        Policy::new("brand", kind.name(), &proxy.url),
        "brand",
        Login::Token(token.clone()),
    );
    Shard {
        sandbox,
        remote: Remote::Fake(server),
        proxy,
        account: "brand",
        secrets: vec![token],
    }
}

fn pds_shard(bus: &SessionBus) -> Shard {
    let pds = pds::shared();
    let alice = pds.create_account("campaign");
    let app_password = pds.app_password(&alice, "gate");
    let proxy = FaultProxy::start(&pds.url, Dialect::Bluesky);
    let sandbox = shard_sandbox(
        bus,
        Policy::new("bsky", "bluesky", &proxy.url).handle(&alice.handle),
        "bsky",
        Login::AppPassword(app_password.clone()),
    );
    let user = format!("bsky@{}", proxy.url.trim_start_matches("http://"));
    let out = bus.secret_tool(&["lookup", "service", "gate", "username", &user], "");
    assert!(out.status.success(), "nothing stored for {user}: {out:?}");
    let session: Value = serde_json::from_slice(&out.stdout).expect("a JSON credential");
    let mut secrets = vec![app_password, alice.password.clone()];
    for key in ["access_token", "refresh_token"] {
        if let Some(t) = session[key].as_str() {
            secrets.push(t.to_owned());
        }
    }
    Shard {
        sandbox,
        remote: Remote::Pds {
            pds,
            did: alice.did,
            handle: alice.handle,
        },
        proxy,
        account: "bsky",
        secrets,
    }
}

/// One gate process of a run, as it ended.
struct Outcome {
    how: String,
    /// None: killed by the test.
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The server's posts with the run's text (a thread's: with any of its items' texts)
    /// right after it ended.
    after: Vec<String>,
    /// Of a thread: which items were on the server right after it ended.
    items_out: Vec<bool>,
    /// Some text is on the server more than once.
    duplicate: bool,
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self
            .code
            .map_or("killed".to_owned(), |c| format!("exit {c}"));
        write!(
            f,
            "    {} → {code}, {} post(s) after\n      stdout: {}\n      stderr: {}",
            self.how,
            self.after.len(),
            self.stdout.trim().replace('\n', " "),
            self.stderr.trim().replace('\n', "\n              ")
        )
    }
}

/// A running gate process whose stderr is read line by line as it comes.
struct Live {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    stdout: std::thread::JoinHandle<String>,
}

impl Live {
    fn start(mut cmd: Command) -> Live {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gate starts");
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            let mut reader = BufReader::new(err);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                all.push_str(&line);
                let _ = tx.send(std::mem::take(&mut line));
            }
            all
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = out.read_to_string(&mut all);
            all
        });
        Live {
            child,
            lines,
            stderr,
            stdout,
        }
    }

    /// Waits until gate says `marker` on stderr; false when it ended without saying it.
    fn reached(&self, marker: &str) -> bool {
        let deadline = Instant::now() + PROCESS_LIMIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Waits for the end (SIGKILL after [`PROCESS_LIMIT`]: a hang is reported as such).
    fn finish(mut self, how: String) -> (Outcome, bool) {
        let deadline = Instant::now() + PROCESS_LIMIT;
        let mut hung = false;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                hung = true;
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let outcome = Outcome {
            how,
            code: status.code(),
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap(),
            after: Vec::new(),
            items_out: Vec::new(),
            duplicate: false,
        };
        (outcome, hung)
    }
}

/// What one post's runs found wrong.
#[derive(Default)]
struct Verdict {
    duplicate: bool,
    lost: Vec<String>,
    nothing_sent: Vec<String>,
    other: Vec<String>,
}

impl Verdict {
    fn clean(&self) -> bool {
        !self.duplicate
            && self.lost.is_empty()
            && self.nothing_sent.is_empty()
            && self.other.is_empty()
    }
}

struct Report {
    index: usize,
    steps: Vec<Step>,
    applied: Vec<Fault>,
    unmet: Vec<Fault>,
    outcomes: Vec<Outcome>,
    verdict: Verdict,
}

/// What one run posts: a plain post's one text, or a thread's items (from a post file).
struct Subject {
    texts: Vec<String>,
    /// The thread's post file.
    file: Option<String>,
}

impl Subject {
    fn thread(&self) -> bool {
        self.file.is_some()
    }

    /// The fault point as this subject's gate announces it: a thread's on item `item`.
    fn point(&self, point: &str, item: usize) -> String {
        if self.thread() {
            format!("{point}@{item}")
        } else {
            point.to_owned()
        }
    }
}

impl Shard {
    fn command(&self, subject: &Subject) -> Command {
        match &subject.file {
            Some(file) => self
                .sandbox
                .command(&["post", "--yes", "--json", "--file", file]),
            None => self.sandbox.command(&[
                "post",
                "--yes",
                "--json",
                "--account",
                self.account,
                &subject.texts[0],
            ]),
        }
    }

    /// A thread of [`THREAD_ITEMS`] as a post file in the sandbox, for the account.
    fn thread(&self, index: usize, texts: Vec<String>) -> Subject {
        let mut file = format!("account = \"{}\"\n", self.account);
        for t in &texts {
            file.push_str(&format!("[[thread]]\ntext = \"{t}\"\n"));
        }
        let path = self
            .sandbox
            .write(&format!("thread-{index}.post.toml"), &file);
        Subject {
            texts,
            file: Some(path.display().to_string()),
        }
    }

    /// The journal's (state, url) for each delivery, by digest and item, as it is now.
    fn journal(&self) -> HashMap<(String, i64), (String, Option<String>)> {
        let path = self.sandbox.path().join("state/journal.sqlite3");
        if !path.exists() {
            return HashMap::new();
        }
        let db =
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt = db
            .prepare("SELECT digest, item, state, url FROM deliveries")
            .unwrap();
        stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// One post through its faults, then plain reruns until it settles; every process checked.
    fn post(
        &self,
        index: usize,
        subject: &Subject,
        steps: &[Step],
        known: &mut HashSet<String>,
    ) -> Report {
        // A thread's process faults land on one of its items, the same one for the whole run.
        let item = (index / THREAD_EVERY) % THREAD_ITEMS;
        let before = self.proxy.applied().len();
        self.proxy.clear();
        let net: Vec<Fault> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Net(f) => Some(*f),
                _ => None,
            })
            .collect();
        self.proxy.push(&net);
        let mut verdict = Verdict::default();
        let mut outcomes: Vec<Outcome> = Vec::new();
        let process_steps: Vec<Step> = steps
            .iter()
            .copied()
            .filter(|s| !matches!(s, Step::Net(_)))
            .collect();
        let mut settled = false;
        // What a careful user does with gate's hint after "gate cannot tell": look at the
        // account, and only when the post (the thread's item) is not there, run the same
        // command with `--force-resend`.
        let mut force_resend = false;
        let mut i = 0;
        while i < process_steps.len() + RERUNS && !settled {
            let step = process_steps.get(i).copied();
            i += 1;
            // Each process is judged against the server as it was when that process ended.
            let mut ended: Vec<(Outcome, bool)> = Vec::new();
            let mut done = |(mut outcome, hung): (Outcome, bool)| {
                self.proxy.reopen();
                for t in &subject.texts {
                    let urls = self.remote.urls(t);
                    outcome.duplicate |= urls.len() > 1;
                    outcome.items_out.push(!urls.is_empty());
                    outcome.after.extend(urls);
                }
                ended.push((outcome, hung));
            };
            match step {
                Some(Step::Kill(point)) => {
                    let point = subject.point(point, item);
                    let point = point.as_str();
                    let live = Live::start({
                        let mut c = self.command(subject);
                        c.env("GATE_TEST_FAULT", point);
                        c
                    });
                    let reached = live.reached(&format!("gate-test-fault: {point}"));
                    if reached {
                        live.signal("-KILL");
                    }
                    let how = if reached {
                        format!("SIGKILL at {point}")
                    } else {
                        format!("gate (never reached {point})")
                    };
                    done(live.finish(how));
                }
                Some(Step::Stop(point)) => {
                    let point = subject.point(point, item);
                    let holder = Live::start({
                        let mut c = self.command(subject);
                        c.env("GATE_TEST_PAUSE", format!("{point}:200"));
                        c
                    });
                    if holder.reached(&format!("gate-test-pause: {point}")) {
                        holder.signal("-STOP");
                        let second = Live::start(self.command(subject));
                        std::thread::sleep(STOPPED_FOR);
                        holder.signal("-CONT");
                        done(holder.finish(format!("lock holder stopped at {point}, resumed")));
                        done(second.finish("second gate while the holder was stopped".into()));
                    } else {
                        done(holder.finish(format!("gate (never reached {point})")));
                    }
                }
                _ if force_resend => done(
                    Live::start({
                        let mut c = self.command(subject);
                        c.arg("--force-resend");
                        c
                    })
                    .finish("gate --force-resend (it said it cannot tell; the post is not on the server)".into()),
                ),
                _ => done(Live::start(self.command(subject)).finish("gate".into())),
            }
            let after = ended
                .last()
                .map(|(o, _)| o.after.clone())
                .unwrap_or_default();
            let journal = self.journal();
            for (outcome, hung) in ended {
                if hung {
                    verdict.other.push(format!(
                        "{} hung for {} s",
                        outcome.how,
                        PROCESS_LIMIT.as_secs()
                    ));
                }
                if outcome.duplicate {
                    verdict.duplicate = true;
                }
                self.judge(&outcome, subject, &mut verdict);
                if step.is_none() && i > 1 && outcome.code == Some(0) {
                    settled = true;
                }
                force_resend = cannot_tell_and_absent(&outcome);
                outcomes.push(outcome);
            }
            if after.len() > subject.texts.len() {
                verdict.duplicate = true;
            }
            // Every URL the journal holds for this post exists.
            for ((digest, _), (state, url)) in &journal {
                let mine = !known.contains(digest);
                if let (true, Some(url)) = (mine, url)
                    && !after.contains(url)
                {
                    verdict.lost.push(format!(
                        "the journal says `{state}` at {url}, which is not on the server"
                    ));
                }
            }
        }
        let last = outcomes.last().map(|o| o.after.clone()).unwrap_or_default();
        if !settled {
            verdict
                .other
                .push(format!("not settled after {} runs", outcomes.len()));
        }
        if last.is_empty() {
            verdict.lost.push("the settled state has no post".into());
        }
        if settled
            && subject.thread()
            && let Some(problem) = self.remote.chain_problem(&subject.texts)
        {
            verdict
                .lost
                .push(format!("settled, but the thread is not a chain: {problem}"));
        }
        let journal = self.journal();
        let mut mine: Vec<_> = journal
            .iter()
            .filter(|((d, _), _)| !known.contains(d))
            .collect();
        mine.sort_by_key(|((_, item), _)| *item);
        if settled {
            let whole = mine.len() == subject.texts.len()
                && mine
                    .iter()
                    .enumerate()
                    .all(|(k, ((_, item), (state, url)))| {
                        *item == k as i64
                            && state == "sent"
                            && url.as_ref().is_some_and(|u| last.contains(u))
                    });
            if !whole {
                verdict
                    .lost
                    .push(format!("settled, but the journal holds {mine:?}"));
            }
        }
        known.extend(mine.into_iter().map(|((d, _), _)| d.clone()));
        let applied = self.proxy.applied()[before..].to_vec();
        let unmet = self.proxy.clear();
        Report {
            index,
            steps: steps.to_vec(),
            applied,
            unmet,
            outcomes,
            verdict,
        }
    }

    /// Checks what one finished gate process said against what the server holds.
    fn judge(&self, o: &Outcome, subject: &Subject, v: &mut Verdict) {
        for secret in &self.secrets {
            if o.stdout.contains(secret.as_str()) || o.stderr.contains(secret.as_str()) {
                v.other
                    .push(format!("{}: a secret shows in the output", o.how));
            }
        }
        let Some(code) = o.code else { return };
        let doc: Option<Value> = serde_json::from_str(&o.stdout).ok();
        let exists = !o.after.is_empty();
        // A thread's "nothing was sent" is about the item that failed: it must not be out.
        // (Its stderr speaks of several items, so only its JSON is checked.)
        let said_nothing =
            !subject.thread() && o.stderr.to_lowercase().contains("nothing was sent");
        let json_nothing = doc.as_ref().is_some_and(|d| {
            d["failed"].as_array().is_some_and(|f| {
                f.iter().any(|e| {
                    e["maybe_sent"] == Value::Bool(false)
                        && e["item"]
                            .as_u64()
                            .is_none_or(|k| o.items_out.get(k as usize) == Some(&true))
                })
            })
        });
        if exists && (said_nothing || json_nothing) {
            let how = match (said_nothing, json_nothing) {
                (true, true) => "stderr and `maybe_sent: false`",
                (true, false) => "stderr",
                _ => "`maybe_sent: false`",
            };
            v.nothing_sent.push(format!(
                "{} (exit {code}) says nothing was sent ({how}), and the post is there",
                o.how
            ));
        }
        let sent: Vec<String> = doc
            .as_ref()
            .and_then(|d| d["sent"].as_array())
            .map(|s| {
                s.iter()
                    .filter_map(|e| e["url"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for url in &sent {
            if !o.after.contains(url) {
                v.lost.push(format!(
                    "{} printed {url}, which is not on the server",
                    o.how
                ));
            }
        }
        if code == 0 && sent.is_empty() {
            v.lost
                .push(format!("{} exited 0 without naming a sent post", o.how));
        }
        if code == 0 && !exists {
            v.lost
                .push(format!("{} said sent, and the server has no post", o.how));
        }
        if code == 0 && o.items_out.iter().any(|out| !out) {
            v.lost.push(format!(
                "{} exited 0, and items {:?} of the thread are not on the server",
                o.how,
                o.items_out
                    .iter()
                    .enumerate()
                    .filter(|(_, out)| !**out)
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>()
            ));
        }
        if code == 0 && subject.thread() && sent.len() != subject.texts.len() {
            v.lost.push(format!(
                "{} exited 0 naming {} of the thread's {} items",
                o.how,
                sent.len(),
                subject.texts.len()
            ));
        }
        if doc.is_none() {
            v.other
                .push(format!("{} (exit {code}) printed no JSON document", o.how));
        }
    }
}

/// Whether gate said it cannot tell whether a try went out (and named `--force-resend`), and
/// that try's post (a thread's: that item) is not on the server.
fn cannot_tell_and_absent(o: &Outcome) -> bool {
    if o.code != Some(9) || !o.stderr.contains("gate cannot tell") {
        return false;
    }
    let doc: Option<Value> = serde_json::from_str(&o.stdout).ok();
    let Some(failed) = doc.as_ref().and_then(|d| d["failed"].as_array()) else {
        return false;
    };
    failed.iter().all(|f| match f["item"].as_u64() {
        Some(k) => o.items_out.get(k as usize) == Some(&false),
        None => o.after.is_empty(),
    })
}

fn campaign(network: &str, shards: usize, make: impl Fn(&SessionBus) -> Shard + Sync) {
    let started = Instant::now();
    let seed = seed();
    // The seed alone decides every run's faults (the network's name keeps them apart).
    let mut rng = Rng(seed
        ^ network
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let plans: Vec<Vec<Step>> = (0..RUNS).map(|_| draw(&mut rng)).collect();
    let bus = SessionBus::with_gnome_keyring();
    let shards: Vec<Shard> = (0..shards).map(|_| make(&bus)).collect();
    let width = shards.len();
    let mut reports: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .enumerate()
            .map(|(k, shard)| {
                let plans = &plans;
                scope.spawn(move || {
                    let mut known = HashSet::new();
                    (k..RUNS)
                        .step_by(width)
                        .map(|i| {
                            let text = format!("Campaign {seed} post {i} on {network}");
                            let subject = if i % THREAD_EVERY == THREAD_EVERY - 1 {
                                shard.thread(
                                    i,
                                    (0..THREAD_ITEMS)
                                        .map(|k| format!("{text}, thread item {k}"))
                                        .collect(),
                                )
                            } else {
                                Subject {
                                    texts: vec![text],
                                    file: None,
                                }
                            };
                            shard.post(i, &subject, &plans[i], &mut known)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    reports.sort_by_key(|r| r.index);

    let count = |f: &dyn Fn(&Verdict) -> bool| reports.iter().filter(|r| f(&r.verdict)).count();
    let duplicates = count(&|v| v.duplicate);
    let lost = count(&|v| !v.lost.is_empty());
    let nothing_sent = count(&|v| !v.nothing_sent.is_empty());
    let other = count(&|v| !v.other.is_empty());
    let mut drawn: BTreeMap<String, usize> = BTreeMap::new();
    let mut met: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &reports {
        for s in &r.steps {
            *drawn.entry(s.name()).or_default() += 1;
        }
        for f in &r.applied {
            *met.entry(f.name()).or_default() += 1;
        }
    }
    let processes: usize = reports.iter().map(|r| r.outcomes.len()).sum();
    let forced: usize = reports
        .iter()
        .flat_map(|r| &r.outcomes)
        .filter(|o| o.how.starts_with("gate --force-resend"))
        .count();
    let records: usize = shards.iter().map(|s| s.proxy.records().len()).sum();
    let posts: usize = shards.iter().map(|s| s.remote.total()).sum();
    let refusals: Vec<_> = shards.iter().flat_map(|s| s.proxy.refusals()).collect();
    let proxy_errors: Vec<String> = shards.iter().flat_map(|s| s.proxy.errors()).collect();
    let tally = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let failing: Vec<&Report> = reports.iter().filter(|r| !r.verdict.clean()).collect();
    if !failing.is_empty() {
        eprintln!(
            "{network}: seed {seed} (replay with GATE_CAMPAIGN_SEED={seed}); every run's faults:"
        );
        for r in &reports {
            let steps: Vec<String> = r.steps.iter().map(|s| s.name()).collect();
            eprintln!(
                "  run {}: [{}]{}",
                r.index,
                steps.join(", "),
                if r.verdict.clean() {
                    ""
                } else {
                    "  ← FAILED"
                }
            );
        }
        for r in &failing {
            let steps: Vec<String> = r.steps.iter().map(|s| s.name()).collect();
            let applied: Vec<&str> = r.applied.iter().map(|f| f.name()).collect();
            let unmet: Vec<&str> = r.unmet.iter().map(|f| f.name()).collect();
            eprintln!(
                "{network} run {} FAILED: faults [{}]; the proxy applied [{}], unmet [{}]",
                r.index,
                steps.join(", "),
                applied.join(", "),
                unmet.join(", ")
            );
            let v = &r.verdict;
            if v.duplicate {
                eprintln!("  DUPLICATE: more than one post with the text");
            }
            for l in &v.lost {
                eprintln!("  LOST: {l}");
            }
            for n in &v.nothing_sent {
                eprintln!("  NOTHING-SENT: {n}");
            }
            for o in &v.other {
                eprintln!("  OTHER: {o}");
            }
            for o in &r.outcomes {
                eprintln!("{o:?}");
            }
        }
    }
    let met: BTreeMap<String, usize> = met.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    println!(
        "{network}: seed {seed}, {RUNS} posts ({} of them threads of {THREAD_ITEMS}), {processes} gate runs ({forced} with `--force-resend` after \"gate cannot tell\", the post not on the server), {records} proxy records, {posts} posts on the server, {:.1} s: {duplicates} duplicates, {lost} lost, {nothing_sent} \"nothing was sent\" for a post that went out, {other} other failures; faults drawn: {}; met by the proxy: {}; refused connects: {} (the closed port refused the probe {} times)",
        RUNS / THREAD_EVERY,
        started.elapsed().as_secs_f64(),
        tally(&drawn),
        tally(&met),
        refusals.len(),
        refusals.iter().filter(|r| r.probe_refused).count(),
    );
    assert!(
        proxy_errors.is_empty(),
        "{network}: the proxy failed: {proxy_errors:#?}"
    );
    assert_eq!(
        (duplicates, lost, nothing_sent, other),
        (0, 0, 0, 0),
        "{network}: seed {seed}: duplicates, lost, \"nothing was sent\" for a post that went out, other (details above)"
    );
    let threads = RUNS / THREAD_EVERY;
    assert_eq!(
        posts,
        RUNS + threads * (THREAD_ITEMS - 1),
        "{network}: one post per plain run and {THREAD_ITEMS} per thread on the server, no strays"
    );
}

#[test]
fn campaign_mastodon() {
    campaign("mastodon", FAKE_SHARDS, |bus| {
        fake_shard(Kind::Mastodon, bus)
    });
}

#[test]
fn campaign_x() {
    campaign("x", FAKE_SHARDS, |bus| fake_shard(Kind::X, bus));
}

#[test]
fn campaign_bluesky() {
    campaign("bluesky", PDS_SHARDS, pds_shard);
}
