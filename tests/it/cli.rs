//! The built binary, end to end: exit codes, JSON and the full text of error messages.

use crate::common;

use common::{Sandbox, keygen, repo};
use serde_json::json;

const POLICY: &str = r#"version = 1
timezone = "Europe/London"

[accounts.brand]
platform = "mastodon"
server = "https://mastodon.example"

[accounts.bsky]
platform = "bluesky"

[accounts.x]
platform = "x"

[banned_terms]
deny = ["layoffs", "kill", "nobody here knows how to drive"]
warn = ["guaranteed"]
allow = ["kill switch"]
regex = ['free\s+i?phones?']

[[quiet_hours]]
days = ["mon", "tue", "wed", "thu", "fri"]
from = "20:00"
to = "08:00"
reason = "Evenings"

[[blackouts]]
from = "2026-12-24T00:00"
to = "2026-12-27T00:00"
reason = "Holidays"
"#;

/// A Monday morning in London: no quiet hours, no blackout.
const WEEKDAY: &str = "2026-11-23T10:00:00Z";

/// `gate check TEXT --account ACCOUNT --json --now NOW`, the shape most checks take.
fn judge(s: &Sandbox, text: &str, account: &str, now: &str) -> common::Run {
    s.run(&["check", text, "--account", account, "--json", "--now", now])
}

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.write("gate.toml", POLICY);
    s
}

// ---------------------------------------------------------------- policy check

#[test]
fn policy_check_accepts_a_valid_policy() {
    let s = sandbox();
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "valid: `gate.toml`\n");
}

#[test]
fn policy_check_reports_every_problem_with_position_and_caret() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        r#"version = 1
timezon = "Europe/London"

[accounts.brand]
platform = "mastodn"

[banned_terms]
deny = ["layoffs", 3]
regex = ['free\s+(iphone']

[[quiet_hours]]
from = "25:00"
to = "08:00"
"#,
    );
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "");
    let expected = r#"error: unknown key `timezon` in the policy
 --> gate.toml:2:1
  |
2 | timezon = "Europe/London"
  | ^^^^^^^
  = hint: did you mean `timezone`?

error: unknown platform `mastodn`
 --> gate.toml:5:12
  |
5 | platform = "mastodn"
  |            ^^^^^^^^^
  = hint: did you mean `mastodon`?

error: `deny` must hold only strings, found an integer
 --> gate.toml:8:20
  |
8 | deny = ["layoffs", 3]
  |                    ^

error: invalid regex: unclosed group
 --> gate.toml:9:10
  |
9 | regex = ['free\s+(iphone']
  |          ^^^^^^^^^^^^^^^^
  = hint: patterns use Rust `regex` syntax and match the normalised (lower-case) text

error: quiet hours need a time zone
  --> gate.toml:11:1
   |
11 | [[quiet_hours]]
   | ^^^^^^^^^^^^^^^
   = hint: add `timezone = "Europe/London"` at the top of the policy, or to this window

error: invalid time `25:00` for `from`
  --> gate.toml:12:8
   |
12 | from = "25:00"
   |        ^^^^^^^
   = hint: write 24-hour `HH:MM`, e.g. `20:00`

invalid: 6 errors
"#;
    assert_eq!(run.stderr, expected);
}

#[test]
fn policy_check_json_and_github_formats() {
    let s = Sandbox::new();
    s.write("gate.toml", "version = 2\n[reviewers]\nrequired = 2\n");
    let run = s.run(&["policy", "check", "--json"]);
    assert_eq!(run.code, 3, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["valid"], json!(false));
    let diags = doc["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 2);
    assert_eq!(diags[0]["severity"], "error");
    assert_eq!(diags[0]["message"], "unsupported policy version 2");
    assert_eq!(
        (diags[0]["line"].as_u64(), diags[0]["column"].as_u64()),
        (Some(1), Some(11))
    );
    assert_eq!(
        diags[1]["message"],
        "2 reviewers required but only 0 listed in `[reviewers.keys]`"
    );
    assert_eq!(
        (diags[1]["line"].as_u64(), diags[1]["column"].as_u64()),
        (Some(3), Some(12))
    );

    let run = s.run(&["policy", "check", "--format", "github"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stdout,
        "::error file=gate.toml,line=1,col=11::unsupported policy version 2 (hint: this gate understands `version = 1`)\n\
         ::error file=gate.toml,line=3,col=12::2 reviewers required but only 0 listed in `[reviewers.keys]` (hint: no post could ever be approved: list more keys or lower `required`)\n"
    );

    let ok = sandbox().run(&["policy", "check", "--json"]);
    assert_eq!(ok.code, 0);
    assert_eq!(ok.json(), json!({"valid": true, "diagnostics": []}));
}

/// Policies that would be slow to match: more terms or longer terms than the stated limits
/// (100,000 terms a table, 256 bytes a term) are errors that name the limit and point at
/// the first term past it; a policy at the limit is valid.
#[test]
fn policy_check_enforces_term_limits() {
    let s = Sandbox::new();
    let mut policy = String::from("version = 1\n[banned_terms]\nwarn = [\"ok\"]\ndeny = [\n");
    for i in 0..100_000 {
        policy.push_str(&format!("\"x{i}\",\n"));
    }
    policy.push_str(&format!("\"{}\",\n", "a".repeat(257)));
    policy.push_str("\"x-past-the-limit\",\n]\n");
    s.write("gate.toml", &policy);
    let run = s.run(&["policy", "check", "--json"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let doc = run.json();
    let diags = doc["diagnostics"].as_array().unwrap();
    let at = |d: &serde_json::Value| (d["line"].as_u64(), d["column"].as_u64());
    assert_eq!(diags.len(), 2, "{diags:?}");
    // Deny terms are counted first: x0 (line 5) to x99999 (line 100,004) are the 100,000
    // allowed, so the long term on line 100,005 is past both limits.
    assert_eq!(
        diags[0]["message"],
        "`[banned_terms]` has more than 100000 terms (the limit on deny, warn and allow together)"
    );
    assert_eq!(at(&diags[0]), (Some(100_005), Some(1)));
    assert_eq!(
        diags[1]["message"],
        "the deny term is 257 bytes long, over the limit of 256 bytes a term"
    );
    assert_eq!(at(&diags[1]), (Some(100_005), Some(1)));
    assert!(
        diags
            .iter()
            .all(|d| d["severity"] == "error" && d["hint"].is_string())
    );

    // At the limits: valid, and `gate check` still judges posts with it.
    let mut policy = String::from("version = 1\n[banned_terms]\ndeny = [\n");
    for i in 0..99_999 {
        policy.push_str(&format!("\"x{i}\",\n"));
    }
    policy.push_str(&format!("\"{}\",\n]\n", "b".repeat(256)));
    s.write("gate.toml", &policy);
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = s.run(&["check", "we say X123 here"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stdout.contains("x123"), "{}", run.stdout);
}

#[test]
fn policy_check_rejects_bad_toml_with_position() {
    let s = Sandbox::new();
    s.write("gate.toml", "version = 1\n[banned_terms\ndeny = []\n");
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.starts_with("error: invalid TOML: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(" --> gate.toml:2:"), "{}", run.stderr);
}

#[test]
fn policy_check_semantic_errors() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        r#"version = 1
timezone = "Mars/Olympus"

[accounts.m]
platform = "mastodon"

[accounts.b]
platform = "bluesky"
server = "http://bsky.example"
reviewers_required = 1

[reviewers.keys]
carol = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC carol"

[[quiet_hours]]
days = ["mon", "someday"]
from = "20:00"

[[blackouts]]
from = "2026-12-27T00:00Z"
to = "2026-12-24T00:00+01:00"
"#,
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
    assert_eq!(
        messages,
        [
            "2:12 unknown time zone `Mars/Olympus`",
            "4:11 mastodon account `m` has no `server`",
            "9:10 invalid `server` URL `http://bsky.example`: plain `http://` is only allowed for loopback test servers",
            "10:22 account `b` requires 1 reviewer but only 0 are listed in `[reviewers.keys]`",
            "13:9 the key of reviewer `carol` is not an OpenSSH ed25519 public key: not an openssh public key line (expected \"ssh-ed25519 <base64> [comment]\")",
            "15:1 a quiet-hours window needs both `from` and `to`, or neither",
            "16:16 unknown day `someday`",
            "21:6 a blackout must end after it starts",
        ]
    );
}

// ---------------------------------------------------------------- policy lookup

#[test]
fn no_policy_is_exit_3_never_no_rules() {
    let s = Sandbox::new();
    let run = s.run(&["check", "hello", "--now", WEEKDAY]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: no policy file found\n  = hint: pass `--policy PATH`, set `GATE_POLICY`, or put `gate.toml` in this folder or a parent (or in `$XDG_CONFIG_HOME/gate/`); `policy.example.toml` is a start\n"
    );
}

#[test]
fn policy_lookup_order() {
    let s = Sandbox::new();
    // The config folder is the last resort.
    s.write(
        "config/gate/gate.toml",
        "version = 1\n[banned_terms]\ndeny = [\"config\"]\n",
    );
    std::fs::create_dir_all(s.path().join("a/b")).unwrap();
    let judge = |dir: &str, extra: &[(&str, &str)], args: &[&str]| {
        let mut cmd = s.command(
            &[
                args,
                &[
                    "check",
                    "config parent env flag",
                    "--json",
                    "--now",
                    WEEKDAY,
                ],
            ]
            .concat(),
        );
        cmd.current_dir(s.path().join(dir));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["posts"][0]["findings"][0]["term"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(judge("a/b", &[], &[]), "config");
    s.write(
        "a/gate.toml",
        "version = 1\n[banned_terms]\ndeny = [\"parent\"]\n",
    );
    assert_eq!(judge("a/b", &[], &[]), "parent");
    let env_policy = s.write(
        "env.toml",
        "version = 1\n[banned_terms]\ndeny = [\"env\"]\n",
    );
    assert_eq!(
        judge("a/b", &[("GATE_POLICY", env_policy.to_str().unwrap())], &[]),
        "env"
    );
    let flag_policy = s.write(
        "flag.toml",
        "version = 1\n[banned_terms]\ndeny = [\"flag\"]\n",
    );
    assert_eq!(
        judge(
            "a/b",
            &[("GATE_POLICY", env_policy.to_str().unwrap())],
            &["--policy", flag_policy.to_str().unwrap()]
        ),
        "flag"
    );
}

// ---------------------------------------------------------------- check: verdicts

#[test]
fn check_denies_banned_terms_with_spans_in_the_original_text() {
    let s = sandbox();
    let text = "Big news: #LAYOFFS start today!";
    let run = judge(&s, text, "brand", WEEKDAY);
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["verdict"], "deny");
    let post = &doc["posts"][0];
    assert_eq!(post["source"], "<argument>");
    assert_eq!(post["account"], "brand");
    assert_eq!(post["verdict"], "deny");
    let f = &post["findings"][0];
    assert_eq!(f["rule"], "banned_term");
    assert_eq!(f["severity"], "deny");
    assert_eq!(f["term"], "layoffs");
    let (start, end) = (
        f["start"].as_u64().unwrap() as usize,
        f["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[start..end], "LAYOFFS");
}

#[test]
fn check_human_output_underlines_the_term() {
    let s = sandbox();
    let run = s.run(&[
        "check",
        "We will kill it.\nLayoffs follow.",
        "--account",
        "brand",
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stdout,
        "deny   <argument> → brand\n\
         \x20 deny   banned_term: \"kill\" matches the banned term `kill`\n\
         \x20        1 | We will kill it.\n\
         \x20          |         ^^^^\n\
         \x20 deny   banned_term: \"Layoffs\" matches the banned term `layoffs`\n\
         \x20        2 | Layoffs follow.\n\
         \x20          | ^^^^^^^\n"
    );
}

#[test]
fn check_allows_and_warns() {
    let s = sandbox();
    let run = judge(
        &s,
        "Our kill switch is guaranteed to work",
        "brand",
        WEEKDAY,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["verdict"], "allow");
    let findings = doc["posts"][0]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["severity"], "warn");
    assert_eq!(findings[0]["term"], "guaranteed");
}

#[test]
fn check_regex_and_evasions() {
    let s = sandbox();
    for text in [
        "Win FREE   iPhones today",
        "l\u{0430}yoffs",                     // Cyrillic а
        "ＬＡＹＯＦＦＳ",                     // full-width
        "lay\u{200B}offs",                    // zero-width space
        "Nobody here... knows how-to DRIVE!", // a phrase across punctuation
    ] {
        let run = judge(&s, text, "brand", WEEKDAY);
        assert_eq!(run.code, 4, "{text:?}: {run:?}");
    }
}

#[test]
fn check_holds_in_quiet_hours_with_until() {
    let s = sandbox();
    // Monday 21:00 London (GMT): held until Tuesday 08:00.
    let run = judge(&s, "hello", "brand", "2026-11-23T21:00:00Z");
    assert_eq!(run.code, 5, "{run:?}");
    let f = &run.json()["posts"][0]["findings"][0];
    assert_eq!(f["rule"], "quiet_hours");
    assert_eq!(f["severity"], "hold");
    assert_eq!(f["until"], "2026-11-24T08:00:00Z");
    assert_eq!(f["reason"], "Evenings");
}

#[test]
fn check_holds_in_a_blackout() {
    let s = sandbox();
    let run = judge(&s, "hello", "brand", "2026-12-25T12:00:00Z");
    assert_eq!(run.code, 5, "{run:?}");
    let f = &run.json()["posts"][0]["findings"][0];
    assert_eq!(f["rule"], "blackout");
    // 27 Dec 2026 is a Sunday: the blackout ends at midnight and no weekday window follows.
    assert_eq!(f["until"], "2026-12-27T00:00:00Z");
}

#[test]
fn check_length_per_network() {
    let s = sandbox();
    let long = "a".repeat(281);
    let run = judge(&s, &long, "x", WEEKDAY);
    assert_eq!(run.code, 4, "{run:?}");
    let f = &run.json()["posts"][0]["findings"][0];
    assert_eq!(f["rule"], "length");
    assert_eq!(f["length"], 281);
    assert_eq!(f["limit"], 280);
    // The same text fits Bluesky's 300 graphemes and Mastodon's 500 characters.
    for account in ["bsky", "brand"] {
        let run = judge(&s, &long, account, WEEKDAY);
        assert_eq!(run.code, 0, "{account}: {run:?}");
    }
}

#[test]
fn check_reads_stdin() {
    let s = sandbox();
    let run = s.run_with_stdin(
        &[
            "check",
            "-",
            "--account",
            "brand",
            "--json",
            "--now",
            WEEKDAY,
        ],
        "layoffs\n",
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(run.json()["posts"][0]["source"], "<stdin>");
}

#[test]
fn exit_code_precedence_frozen_deny_review_hold() {
    let s = Sandbox::new();
    let (_, carol) = keygen(s.path(), "carol", "");
    let policy =
        format!("{POLICY}\n[reviewers]\nrequired = 1\n[reviewers.keys]\ncarol = \"{carol}\"\n");
    s.write("gate.toml", &policy);
    let evening = "2026-11-23T21:00:00Z";
    let verdict = |text: &str, now: &str| {
        let run = judge(&s, text, "brand", now);
        (run.code, run.json()["verdict"].as_str().unwrap().to_owned())
    };
    // review + hold → review
    assert_eq!(verdict("hello", evening), (6, "review".into()));
    // deny + review + hold → deny
    assert_eq!(verdict("layoffs", evening), (4, "deny".into()));
    // review alone
    assert_eq!(verdict("hello", WEEKDAY), (6, "review".into()));
    // frozen beats everything
    s.write(
        "gate.toml",
        &format!("{policy}\n[freeze]\nreason = \"incident\"\n"),
    );
    assert_eq!(verdict("layoffs", evening), (7, "frozen".into()));
}

#[test]
fn local_freeze_and_unfreeze() {
    let s = sandbox();
    let run = s.run(&["freeze", "--reason", "account compromised"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = judge(&s, "hello", "brand", WEEKDAY);
    assert_eq!(run.code, 7, "{run:?}");
    let f = &run.json()["posts"][0]["findings"][0];
    assert_eq!(f["rule"], "freeze");
    assert_eq!(f["severity"], "frozen");
    assert_eq!(f["reason"], "account compromised");
    let run = s.run(&["unfreeze"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.run(&["check", "hello", "--account", "brand", "--now", WEEKDAY]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn check_usage_errors_name_the_flag() {
    let s = sandbox();
    let run = s.run(&["check", "hello", "--now", "tomorrow"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid value `tomorrow` for `--now`\n  hint: write an RFC 3339 instant with an offset, e.g. `2026-11-23T10:00:00Z`\n"
    );
    let run = s.run(&["check", "hello", "--account", "brnd", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: unknown account `brnd` in `--account`\n  hint: did you mean `brand`?\n"
    );
    let run = s.run(&["check"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = s.run(&["check", "--bogus"]);
    assert_eq!(run.code, 2, "{run:?}");
}

// ---------------------------------------------------------------- post files

#[test]
fn check_post_files_and_folders() {
    let s = sandbox();
    s.write(
        "posts/a.post.toml",
        "account = \"brand\"\ntext = \"All good here\"\n",
    );
    s.write(
        "posts/deep/b.post.toml",
        "accounts = [\"brand\", \"x\"]\ntext = \"Layoffs\"\n",
    );
    s.write("posts/notes.txt", "not a post");
    let run = s.run(&["check", "--file", "posts", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    let rows: Vec<(String, String, String)> = doc["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["source"].as_str().unwrap().to_owned(),
                p["account"].as_str().unwrap().to_owned(),
                p["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("posts/a.post.toml".into(), "brand".into(), "allow".into()),
            (
                "posts/deep/b.post.toml".into(),
                "brand".into(),
                "deny".into()
            ),
            ("posts/deep/b.post.toml".into(), "x".into(), "deny".into()),
        ]
    );
}

#[test]
fn post_file_errors_are_positioned() {
    let s = sandbox();
    s.write("p.post.toml", "acount = \"brand\"\naccount = \"brnd\"\ntext = \"hi\"\n\n[[media]]\npath = \"missing.png\"\n");
    let run = s.run(&["check", "--file", "p.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: unknown key `acount` in a post file\n --> p.post.toml:1:1\n  |\n1 | acount = \"brand\"\n  | ^^^^^^\n  = hint: did you mean `account`?\n\n\
         error: unknown account `brnd`\n --> p.post.toml:2:11\n  |\n2 | account = \"brnd\"\n  |           ^^^^^^\n  = hint: did you mean `brand`?\n\n\
         error: cannot read media `missing.png`: no such file or directory\n --> p.post.toml:6:8\n  |\n6 | path = \"missing.png\"\n  |        ^^^^^^^^^^^^^\n  = hint: media paths are relative to the post file's folder\n"
    );
}

#[test]
fn an_invalid_post_does_not_hide_the_others() {
    let s = sandbox();
    s.write("posts/bad.post.toml", "text = \"no account\"\n");
    s.write(
        "posts/good.post.toml",
        "account = \"brand\"\ntext = \"Layoffs\"\n",
    );
    let run = s.run(&["check", "--file", "posts", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    let doc = run.json();
    // SPEC §5: the file that could not be read is an `invalid` entry, never missing or `allow`.
    assert_eq!(doc["posts"].as_array().unwrap().len(), 2);
    assert_eq!(doc["posts"][0]["verdict"], "deny");
    assert_eq!(doc["posts"][1]["verdict"], "invalid");
    assert_eq!(doc["verdict"], "invalid");
    assert_eq!(doc["errors"][0]["message"], "the post names no account");
}

// ---------------------------------------------------------------- JSON Lines calendar

#[test]
fn jsonl_gives_one_result_per_line_in_order() {
    let s = sandbox();
    s.write(
        "cal.jsonl",
        "{\"text\": \"hello\", \"account\": \"brand\", \"at\": \"2026-11-23T10:00:00Z\"}\n\
         {\"text\": \"layoffs\", \"account\": \"x\"}\n\
         {\"text\": \"evening\", \"account\": \"brand\", \"at\": \"2026-11-23T21:00:00Z\"}\n",
    );
    let run = s.run(&["check", "--jsonl", "cal.jsonl", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 4, "{run:?}");
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["source"], "cal.jsonl:1");
    assert_eq!(lines[0]["verdict"], "allow");
    assert_eq!(lines[1]["verdict"], "deny");
    assert_eq!(lines[1]["account"], "x");
    assert_eq!(lines[2]["verdict"], "hold");
    assert_eq!(lines[2]["findings"][0]["until"], "2026-11-24T08:00:00Z");
}

/// `gate check ... | head -1`: the reader closes the pipe after one line; gate stops quietly
/// and exits 0, as `head` users expect (no error, no panic on stderr), however many threads
/// judge the calendar (with 8, most wait for the writer, which must wake them to stop).
#[test]
fn a_closed_stdout_is_not_a_failure() {
    let s = sandbox();
    let lines: String = (0..20_000)
        .map(|i| format!("{{\"text\": \"hello number {i}\", \"account\": \"brand\"}}\n"))
        .collect();
    s.write("cal.jsonl", &lines);
    for jobs in ["1", "2", "8"] {
        closed_after_one_line(&s, jobs);
    }
}

/// `--jobs` is for a calendar: with inline text or post files it is a usage error (exit 2),
/// not silently ignored.
#[test]
fn jobs_without_a_calendar_is_a_usage_error() {
    let s = sandbox();
    s.write("a.post.toml", "text = \"Hello\"\naccounts = [\"brand\"]\n");
    for args in [
        &["check", "-j", "2", "Hello", "--now", WEEKDAY][..],
        &[
            "check",
            "--jobs",
            "2",
            "--file",
            "a.post.toml",
            "--now",
            WEEKDAY,
        ],
    ] {
        let run = s.run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(
            run.stderr
                .starts_with("error: `--jobs` applies to a `--jsonl` calendar"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(run.stdout, "", "{args:?}");
    }
}

fn closed_after_one_line(s: &Sandbox, jobs: &str) {
    use std::io::BufRead as _;
    let mut cmd = s.command(&[
        "check",
        "--jsonl",
        "cal.jsonl",
        "--json",
        "--now",
        WEEKDAY,
        "--jobs",
        jobs,
    ]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("gate starts");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: the pipe is closed after one line.
    let output = child.wait_with_output().unwrap();
    assert!(first.contains("\"verdict\""), "{first}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "", "a broken pipe is said nothing about");
}

/// Every command that answers on stdout, its reader gone before it writes (`gate … | true`):
/// exit 0 and nothing on stderr, never a panic about a failed print.
#[test]
fn every_answer_on_a_closed_stdout_exits_0_quietly() {
    let s = sandbox();
    s.write(
        "a.post.toml",
        "text = \"Hello from the closed pipe\"\naccounts = [\"brand\"]\n",
    );
    let commands: [&[&str]; 8] = [
        &["schema", "policy"],
        &["completions", "bash"],
        &["man"],
        &["digest", "--file", "a.post.toml"],
        &["plan", ".", "--now", WEEKDAY],
        &["state", "status"],
        &["policy", "check", "--format", "markdown"],
        &["check", "Hello, closed pipe", "--now", WEEKDAY, "--json"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = s
            .command(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("error"),
            "{args:?}: a closed stdout is said nothing about: {stderr}"
        );
    }
}

#[test]
fn jsonl_bad_lines_are_reported_where_they_are() {
    let s = sandbox();
    s.write(
        "cal.jsonl",
        "{\"text\": \"hello\"}\n{\"txt\": \"oops\"}\n{\"text\": \"hi\", \"account\": \"nope\"}\n",
    );
    let run = s.run(&["check", "--jsonl", "cal.jsonl", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["verdict"], "allow");
    assert_eq!(lines[1]["source"], "cal.jsonl:2");
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `txt`"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["error"], "unknown account `nope`");
    assert_eq!(
        run.stderr,
        "error: invalid calendar line: unknown field `txt`, expected one of `text`, `account`, `at`\n --> cal.jsonl:2:6\n  |\n2 | {\"txt\": \"oops\"}\n  |      ^\n\n\
         error: unknown account `nope`\n --> cal.jsonl:3:27\n  |\n3 | {\"text\": \"hi\", \"account\": \"nope\"}\n  |                           ^^^^^^\n"
    );
}

// ---------------------------------------------------------------- policy test

#[test]
fn policy_test_reports_failures_and_counts() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        &format!(
            "{POLICY}\n[[tests]]\ntext = \"Layoffs today\"\nexpect = \"deny\"\naccount = \"brand\"\n\n\
             [[tests]]\nname = \"wrong on purpose\"\ntext = \"hello\"\naccount = \"brand\"\nnow = \"2026-11-23T21:00:00Z\"\nexpect = \"allow\"\n"
        ),
    );
    let run = s.run(&["policy", "test"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stdout,
        "FAIL gate.toml:36 wrong on purpose\n     expected: allow\n          got: hold\n               hold: quiet hours (Evenings): held until 2026-11-24T08:00:00Z\n1 passed, 1 failed\n"
    );
}

#[test]
fn the_example_policy_is_valid_and_its_tests_pass() {
    let s = Sandbox::new();
    let policy = repo().join("policy.example.toml");
    let run = s.run(&["policy", "check", policy.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.run(&["policy", "test", policy.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.ends_with(" passed, 0 failed\n"), "{run:?}");
}

#[test]
fn the_examples_behave_as_the_readme_says() {
    let s = Sandbox::new();
    let policy = repo().join("policy.example.toml");
    let posts = repo().join("examples/posts");
    let run = s.run(&[
        "--policy",
        policy.to_str().unwrap(),
        "check",
        "--file",
        posts.to_str().unwrap(),
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let refused = repo().join("examples/refused");
    let run = s.run(&[
        "--policy",
        policy.to_str().unwrap(),
        "check",
        "--file",
        refused.to_str().unwrap(),
        "--json",
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    let verdicts: Vec<(String, String)> = run.json()["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let source = p["source"].as_str().unwrap();
            let name = source.rsplit('/').next().unwrap().to_owned();
            (name, p["verdict"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("detroit.post.toml".into(), "deny".into()),
            ("edited.post.toml".into(), "review".into()),
            ("expired.post.toml".into(), "deny".into()),
            ("layoffs.post.toml".into(), "deny".into()),
            ("unapproved.post.toml".into(), "review".into()),
        ]
    );
    let calendar = repo().join("examples/calendar.jsonl");
    let run = s.run(&[
        "--policy",
        policy.to_str().unwrap(),
        "check",
        "--jsonl",
        calendar.to_str().unwrap(),
        "--json",
    ]);
    let verdicts = run.verdicts();
    assert_eq!(verdicts, ["allow", "hold", "hold", "deny", "deny"]);
}

// ---------------------------------------------------------------- completions, man page

#[test]
fn completions_and_man_page() {
    let s = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let run = s.run(&["completions", shell]);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains("policy"), "{shell}");
    }
    let run = s.run(&["man"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.starts_with(".ie \\n(.g .ds Aq \\(aq"),
        "{}",
        &run.stdout[..80]
    );
    assert!(run.stdout.contains(".TH gate 1"));
}

#[test]
fn verbose_shows_the_normalised_text() {
    let s = sandbox();
    let run = s.run(&[
        "-v",
        "check",
        "Ｆ.Ｕ.Ｃ.Ｋ — l\u{0430}yoffs!",
        "--account",
        "brand",
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stdout.lines().nth(1),
        Some("  normalised: fuck layoffs"),
        "{run:?}"
    );
}

#[test]
fn link_rules_deny_allow_and_flag_shorteners() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n[accounts.brand]\nplatform = \"bluesky\"\n\n[links]\nallow = [\"example.com\"]\ndeny = [\"*.evil.example\"]\n",
    );
    let text = "Docs: https://docs.example.com/start and https://other.org/x";
    let run = judge(&s, text, "brand", WEEKDAY);
    assert_eq!(run.code, 4, "{run:?}");
    let f = &run.json()["posts"][0]["findings"][0];
    assert_eq!(f["rule"], "link");
    assert_eq!(f["severity"], "deny");
    assert_eq!(f["domain"], "other.org");
    let (start, end) = (
        f["start"].as_u64().unwrap() as usize,
        f["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&text[start..end], "https://other.org/x");
    assert_eq!(
        f["message"],
        "links to `other.org`, which is not on the policy's allow list"
    );

    // Without any [links] table a shortener is a warning; the post still passes.
    let s = sandbox();
    let run = judge(&s, "New post: bit.ly/3xYz", "brand", WEEKDAY);
    assert_eq!(run.code, 0, "{run:?}");
    let f = &run.json()["posts"][0]["findings"][0];
    assert_eq!(
        (
            f["rule"].as_str(),
            f["severity"].as_str(),
            f["domain"].as_str()
        ),
        (Some("link"), Some("warn"), Some("bit.ly"))
    );
}

#[test]
fn link_rules_are_validated() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n[links]\ndeny = [\"not a domain\"]\nshorteners = \"block\"\n",
    );
    let run = s.run(&["policy", "check", "--format", "github"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.stdout,
        "::error file=gate.toml,line=3,col=9::`not a domain` is not a domain name (hint: write `example.com` (the domain and its subdomains) or `*.example.com` (subdomains only))\n\
         ::error file=gate.toml,line=4,col=14::unknown value `block` for `shorteners` (hint: use `deny`, `warn` (the default) or `allow`)\n"
    );
}

#[test]
fn alt_text_can_be_required() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n[accounts.brand]\nplatform = \"bluesky\"\n\n[media]\nrequire_alt_text = true\n",
    );
    std::fs::write(s.path().join("a.png"), b"\x89PNG not really").unwrap();
    s.write(
        "p.post.toml",
        "account = \"brand\"\ntext = \"Look\"\n[[media]]\npath = \"a.png\"\n",
    );
    let run = s.run(&["check", "--file", "p.post.toml", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 4, "{run:?}");
    let f = &run.json()["posts"][0]["findings"][0];
    assert_eq!(f["rule"], "media");
    assert_eq!(
        f["message"],
        "`a.png` has no alt text; the policy requires a description of every image"
    );
    s.write(
        "p.post.toml",
        "account = \"brand\"\ntext = \"Look\"\n[[media]]\npath = \"a.png\"\nalt = \"A chart\"\n",
    );
    let run = s.run(&["check", "--file", "p.post.toml", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 0, "{run:?}");
}

// ---------------------------------------------------------------- post options

#[test]
fn post_options_are_checked_where_they_are_written() {
    let s = sandbox();
    s.write(
        "p.post.toml",
        "account = \"brand\"\ntext = \"hi\"\nlanguage = \"en_GB\"\nvisibility = \"unlistd\"\n",
    );
    let run = s.run(&["check", "--file", "p.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid `language`: `en_GB` is not a language tag: subtags are joined with `-`, not `_`\n --> p.post.toml:3:12\n  |\n3 | language = \"en_GB\"\n  |            ^^^^^^^\n  = hint: write a BCP 47 language tag: a 2- or 3-letter language, then subtags joined with `-`, e.g. `en`, `en-GB`, `pt-BR`\n\n\
         error: invalid `visibility` `unlistd`\n --> p.post.toml:4:14\n  |\n4 | visibility = \"unlistd\"\n  |              ^^^^^^^^^\n  = hint: did you mean `unlisted`?\n"
    );
    s.write(
        "p.post.toml",
        "account = \"brand\"\ntext = \"hi\"\nlanguage = \"english\"\nvisibility = 3\n",
    );
    let run = s.run(&["check", "--file", "p.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid `language`: `english` is not a language tag\n --> p.post.toml:3:12\n  |\n3 | language = \"english\"\n  |            ^^^^^^^^^\n  = hint: write a BCP 47 language tag: a 2- or 3-letter language, then subtags joined with `-`, e.g. `en`, `en-GB`, `pt-BR`\n\n\
         error: `visibility` must be a string, found an integer\n --> p.post.toml:4:14\n  |\n4 | visibility = 3\n  |              ^\n"
    );
}

#[test]
fn post_options_that_the_accounts_cannot_take_are_positioned() {
    let s = sandbox();
    s.write(
        "p.post.toml",
        "accounts = [\"brand\", \"bsky\"]\ntext = \"hi\"\nvisibility = \"private\"\nreply_to = \"110\"\n",
    );
    let run = s.run(&["check", "--file", "p.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: visibility `private` is for Mastodon only; `bsky` is a Bluesky account, which has no such thing\n --> p.post.toml:3:14\n  |\n3 | visibility = \"private\"\n  |              ^^^^^^^^^\n  = hint: Bluesky posts are public: remove the visibility, or post to Mastodon accounts only\n\n\
         error: a reply goes to one account; this post goes to `brand`, `bsky`\n --> p.post.toml:4:12\n  |\n4 | reply_to = \"110\"\n  |            ^^^^^\n  = hint: a post's id belongs to one network: write one reply per account\n"
    );
    // One account, but a target its network cannot take.
    s.write(
        "p.post.toml",
        "account = \"x\"\ntext = \"hi\"\nreply_to = \"https://mastodon.example/@brand/110\"\n",
    );
    let run = s.run(&["check", "--file", "p.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: `https://mastodon.example/@brand/110` is not an address on x.com\n --> p.post.toml:3:12\n"
        ),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("= hint: on X, reply to a post id"),
        "{run:?}"
    );
}

/// Valid options are accepted by `gate check`, shown, and leave the digest alone.
#[test]
fn post_options_are_shown_and_outside_the_digest() {
    let s = sandbox();
    s.write("plain.post.toml", "account = \"brand\"\ntext = \"hi\"\n");
    s.write(
        "p.post.toml",
        "account = \"brand\"\ntext = \"hi\"\nlanguage = \"pt-br\"\nvisibility = \"unlisted\"\nreply_to = \"https://mastodon.example/@brand/110\"\n",
    );
    let run = s.run(&["check", "--file", "p.post.toml", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 0, "{run:?}");
    let post = &run.json()["posts"][0];
    assert_eq!(post["language"], "pt-BR");
    assert_eq!(post["visibility"], "unlisted");
    assert_eq!(post["reply_to"], "https://mastodon.example/@brand/110");
    let run = s.run(&["check", "--file", "p.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(
            "  sent with: language pt-BR, visibility unlisted, in reply to https://mastodon.example/@brand/110\n"
        ),
        "{run:?}"
    );
    // Plain posts show no such line and no such keys.
    let run = s.run(&[
        "check",
        "--file",
        "plain.post.toml",
        "--json",
        "--now",
        WEEKDAY,
    ]);
    let post = &run.json()["posts"][0];
    assert!(
        post.get("language").is_none() && post.get("visibility").is_none(),
        "{post}"
    );
    let digest = |f: &str| s.run(&["digest", "--file", f]).stdout;
    assert_eq!(digest("p.post.toml"), digest("plain.post.toml"));
}

// ---------------------------------------------------------------- hostile files

/// One line that is not UTF-8, and one longer than the cap, in the middle of a calendar: each
/// is that line's error in its place (`invalid`), the lines after them are still judged, and
/// the run exits 2 with one JSON object per line.
#[test]
fn jsonl_lines_that_are_not_utf8_or_too_long_are_their_own_errors() {
    let s = sandbox();
    let mut bytes = b"{\"text\": \"hello\"}\n{\"text\": \"caf\xe9\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"text\": \"");
    bytes.extend(std::iter::repeat_n(b'a', (1 << 20) + 10));
    bytes.extend_from_slice(b"\"}\n{\"text\": \"Layoffs start today\"}\n{\"text\": \"last\"}");
    std::fs::write(s.path().join("cal.jsonl"), &bytes).unwrap();
    let run = s.run(&["check", "--jsonl", "cal.jsonl", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let verdicts: Vec<&str> = lines
        .iter()
        .map(|l| l["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["allow", "invalid", "invalid", "deny", "allow"]);
    assert_eq!(lines[1]["source"], "cal.jsonl:2");
    assert_eq!(lines[4]["source"], "cal.jsonl:5");
    assert!(
        run.stderr.contains("error: this calendar line is not valid UTF-8 (byte 0xe9 at offset 13)\n --> cal.jsonl:2:14"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: this calendar line is longer than 1 MiB\n --> cal.jsonl:3:1\n"),
        "{}",
        run.stderr
    );
}

/// A post file or a policy that is not UTF-8 gets the line and column of the first bad byte.
#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let s = sandbox();
    std::fs::write(
        s.path().join("bad.post.toml"),
        b"account = \"brand\"\ntext = \"Caf\xe9 opens\"\n",
    )
    .unwrap();
    let run = s.run(&["check", "--file", "bad.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: the post file is not valid UTF-8 (byte 0xe9 at offset 29)\n --> bad.post.toml:2:12\n"
        ),
        "{}",
        run.stderr
    );
    std::fs::write(
        s.path().join("gate.toml"),
        b"version = 1\n# r\xc3\xa9sum\xc3\xa9 \xff\n",
    )
    .unwrap();
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("--> gate.toml:2:10"), "{}", run.stderr);
}

/// A post file that cannot be parsed never reads as `allow` in the JSON, beside one that can.
#[test]
fn an_unparsable_post_file_is_invalid_in_the_json() {
    let s = sandbox();
    s.write(
        "posts/ok.post.toml",
        "account = \"brand\"\ntext = \"Fine\"\n",
    );
    s.write("posts/broken.post.toml", "account = \"brand\"\ntext = \n");
    let run = s.run(&["check", "--file", "posts", "--json", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["verdict"], "invalid");
    let posts = doc["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 2);
    let broken = posts
        .iter()
        .find(|p| p["source"].as_str().unwrap().ends_with("broken.post.toml"))
        .unwrap();
    assert_eq!(broken["verdict"], "invalid");
    assert!(!broken["errors"].as_array().unwrap().is_empty());
    assert!(posts.iter().any(|p| p["verdict"] == "allow"));
}

/// Media proposed in a pull request cannot make the checking (or sending) machine read files
/// outside the post's folder, hang on a FIFO, or stream a device.
#[test]
fn media_outside_the_folder_or_not_a_regular_file_is_refused() {
    let s = sandbox();
    s.write("secret.txt", "the deploy key");
    s.write("posts/ok.png", "png");
    std::os::unix::fs::symlink(s.path().join("secret.txt"), s.path().join("posts/link.png"))
        .unwrap();
    let fifo = s.path().join("posts/pipe.png");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", s.path().join("posts/zero.png")).unwrap();
    let absolute = s.path().join("secret.txt");
    let cases = [
        ("../secret.txt", "it is outside the post file's folder"),
        ("link.png", "it is outside the post file's folder"),
        (
            absolute.to_str().unwrap(),
            "it is outside the post file's folder",
        ),
        ("pipe.png", "it is a named pipe, not a regular file"),
        ("zero.png", "it is outside the post file's folder"),
    ];
    for (path, why) in cases {
        s.write(
            "posts/m.post.toml",
            &format!(
                "account = \"brand\"\ntext = \"Pic\"\n[[media]]\npath = \"{path}\"\nalt = \"a\"\n"
            ),
        );
        let started = std::time::Instant::now();
        let run = s.run(&["check", "--file", "posts/m.post.toml", "--now", WEEKDAY]);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{path}: took {:?}",
            started.elapsed()
        );
        assert_eq!(run.code, 2, "{path}: {run:?}");
        assert!(
            run.stderr
                .contains(&format!("error: cannot read media `{path}`: {why}")),
            "{path}: {}",
            run.stderr
        );
        assert!(!run.stdout.contains("deploy key") && !run.stderr.contains("deploy key"));
    }
    // A regular file inside the folder is read.
    s.write(
        "posts/m.post.toml",
        "account = \"brand\"\ntext = \"Pic\"\n[[media]]\npath = \"ok.png\"\nalt = \"a\"\n",
    );
    assert_eq!(
        s.run(&["check", "--file", "posts/m.post.toml", "--now", WEEKDAY])
            .code,
        0
    );
}

/// stdin and post files are read up to 1 MiB; more is an error naming the cap.
#[test]
fn stdin_and_post_files_are_capped() {
    let s = sandbox();
    let big = "a ".repeat(600_000);
    let run = s.run_with_stdin(&["check", "-", "--now", WEEKDAY], &big);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: cannot read the post from stdin: it is larger than 1 MiB"),
        "{}",
        run.stderr
    );
    s.write(
        "big.post.toml",
        &format!("account = \"brand\"\ntext = \"{big}\"\n"),
    );
    let run = s.run(&["check", "--file", "big.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("error: cannot read the post file: it is larger than 1 MiB"),
        "{}",
        run.stderr
    );
}

/// `gate freeze` on a journal gate cannot write (damaged, or newer than this gate) still
/// freezes, and says exactly that: frozen, but not audited.
#[test]
fn a_freeze_that_cannot_be_audited_says_it_froze() {
    for damage in ["garbage", "newer"] {
        let s = sandbox();
        let journal = s.path().join("state/journal.sqlite3");
        std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
        match damage {
            "garbage" => std::fs::write(&journal, b"this is not a database, not at all").unwrap(),
            _ => {
                assert_eq!(s.run(&["log", "--verify"]).code, 0);
                let run = s.run(&["freeze", "--reason", "setup"]);
                assert_eq!(run.code, 0, "{run:?}");
                assert_eq!(s.run(&["unfreeze"]).code, 0);
                rusqlite::Connection::open(&journal)
                    .unwrap()
                    .execute("UPDATE schema_version SET version = 99", [])
                    .unwrap();
            }
        }
        let run = s.run(&["freeze", "--reason", "account compromised"]);
        assert_eq!(run.code, 1, "{damage}: {run:?}");
        assert!(
            run.stderr
                .starts_with("error: frozen, but the freeze is not in the audit trail: "),
            "{damage}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: the freeze is in force"),
            "{damage}: {}",
            run.stderr
        );
        let run = s.run(&["check", "hello", "--account", "brand", "--now", WEEKDAY]);
        assert_eq!(run.code, 7, "{damage}: still frozen: {run:?}");
    }
}

// ---------------------------------------------------------------- first-user papercuts

#[test]
fn the_check_summary_counts_invalid_files_not_errors() {
    let s = sandbox();
    s.write(
        "posts/a.post.toml",
        "account = \"brand\"\ntext = \"fine\"\n",
    );
    // One file, four errors (two unknown keys, no account, no text): one invalid file.
    s.write("posts/b.post.toml", "acount = \"brand\"\ntxt = \"x\"\n");
    let run = s.run(&["check", "--file", "posts", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stdout,
        "allow  posts/a.post.toml → brand\n2 checks: 1 allow, 1 invalid\n"
    );
    assert_eq!(run.stderr.matches("error: ").count(), 4, "{run:?}");
}

#[test]
fn text_after_file_is_not_read_as_a_path() {
    let s = sandbox();
    s.write(
        "posts/a.post.toml",
        "account = \"brand\"\ntext = \"fine\"\n",
    );
    let run = s.run(&["check", "--file", "posts", "hello there", "--now", WEEKDAY]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "error: `hello there` after `--file` is neither a file nor a folder\n  hint: `--file` reads every value after it as a path; check inline text on its own: `gate check \"TEXT\"`\n"
    );
    // Several real paths still work.
    s.write("b.post.toml", "account = \"brand\"\ntext = \"also fine\"\n");
    let run = s.run(&["check", "--file", "posts", "b.post.toml", "--now", WEEKDAY]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn freeze_names_its_folder_a_second_freeze_and_a_policy_freeze_are_said() {
    let mut s = sandbox();
    let folder = s.path().join("state");
    // No `$USER` or `$LOGNAME` (cron, containers): the freeze still says who.
    let run = s.run(&["freeze", "--reason", "first"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "frozen: every `gate post` that uses the state folder `{}` now stops (exit 7)\n  hint: lift it with `gate unfreeze`; to stop every machine that syncs the policy, add `[freeze] reason = \"...\"` to it\n",
            folder.display()
        )
    );
    let record: serde_json::Value = serde_json::from_str(&s.read("state/freeze.json")).unwrap();
    let by = record["by"].as_str().expect("`by` without `$USER`");
    assert!(!by.is_empty());

    s.set_var("USER", "alice");
    let run = s.run(&["freeze", "--reason", "second"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "note: this replaces the freeze in force since {} by {by}: first\n",
            chrono::DateTime::parse_from_rfc3339(record["since"].as_str().unwrap())
                .unwrap()
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        "{run:?}"
    );
    let run = judge(&s, "hello", "brand", WEEKDAY);
    assert_eq!(
        run.json()["posts"][0]["findings"][0]["message"],
        "posting is frozen by `gate freeze` in this state folder: second"
    );

    let run = s.run(&["unfreeze"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "unfrozen: the state folder `{}` no longer stops posting\n",
            folder.display()
        )
    );
    // Under a policy's `[freeze]`, unfreeze says that posts are still refused, and why.
    s.write(
        "gate.toml",
        &format!("{POLICY}\n[freeze]\nreason = \"merger quiet period\"\n"),
    );
    let run = s.run(&["unfreeze"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "nothing to unfreeze: `gate freeze` is not in force in the state folder `{}`\n\
             warning: posting is still frozen by the policy `{}`: merger quiet period\n  \
             hint: `gate unfreeze` lifts only `gate freeze`; remove `[freeze]` from the policy to post again\n",
            folder.display(),
            "gate.toml"
        )
    );
    let run = s.run(&["--json", "unfreeze"]);
    assert_eq!(run.json()["frozen"], true);
    assert_eq!(run.json()["policy_freeze"]["reason"], "merger quiet period");
    assert_eq!(judge(&s, "hello", "brand", WEEKDAY).code, 7);
}

#[test]
fn one_misspelt_key_is_one_error_and_no_policy_names_no_file() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n\n[accounts.brand]\nplatfrom = \"mastodon\"\nserver = \"https://m.example\"\n",
    );
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: unknown key `platfrom` in `[accounts.brand]`\n --> gate.toml:4:1\n  |\n4 | platfrom = \"mastodon\"\n  | ^^^^^^^^\n  = hint: did you mean `platform`?\n\ninvalid: 1 error\n"
    );
    // With no key like it, the missing `platform` is reported, each platform named once.
    s.write(
        "gate.toml",
        "version = 1\n\n[accounts.brand]\nserver = \"https://m.example\"\n",
    );
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: account `brand` has no `platform`\n --> gate.toml:3:11\n  |\n3 | [accounts.brand]\n  |           ^^^^^\n  = hint: add `platform = \"NAME\"`, one of `mastodon`, `bluesky`, `x`\n"
        ),
        "{run:?}"
    );
    // No policy anywhere: no `--> gate.toml` pointing at a file that does not exist.
    std::fs::remove_file(s.path().join("gate.toml")).unwrap();
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(!run.stderr.contains("-->"), "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: no policy file found\n  = hint: "),
        "{run:?}"
    );
}

/// The example's commented `client_metadata_url` is documented as what it does and, once
/// uncommented, is valid where it stands.
#[test]
fn the_example_client_metadata_url_works_uncommented() {
    let s = Sandbox::new();
    let example = std::fs::read_to_string(repo().join("policy.example.toml")).unwrap();
    assert!(
        !example.contains("not used yet"),
        "stale comment in the example"
    );
    let mut uncommented = 0;
    let text: String = example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with("client_metadata_url")
                    || (rest.starts_with("[accounts.") && rest.ends_with(".oauth]")) =>
            {
                uncommented += 1;
                format!("{rest}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    assert!(
        uncommented >= 1,
        "the example shows no `client_metadata_url`"
    );
    s.write("gate.toml", &text);
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// The README's first `gate post` example reaches its prompt under the example policy: its
/// account needs no reviewer (inline text carries no approvals) and the text passes.
#[test]
fn the_readmes_first_post_example_can_be_sent() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("gate post \""))
        .expect("a `gate post \"TEXT\"` example");
    let text = line.split('"').nth(1).unwrap();
    let account = line
        .split_whitespace()
        .skip_while(|w| *w != "--account")
        .nth(1)
        .expect("the example names its account");
    let s = Sandbox::new();
    let policy = repo().join("policy.example.toml");
    let run = s.run(&[
        "--policy",
        policy.to_str().unwrap(),
        "check",
        text,
        "--account",
        account,
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 0, "`{line}` cannot be sent: {run:?}");
}
