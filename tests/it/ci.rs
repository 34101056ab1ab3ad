//! CI: `--format github` and `--format markdown` (SPEC §9), the composite action in
//! `action.yml` run step by step as the runner would, and `gate man --out`.

use crate::common;

use std::path::Path;

use common::{Sandbox, keygen, repo};

/// A Monday morning in London: no quiet hours.
const WEEKDAY: &str = "2026-11-23T10:00:00Z";
/// A Monday evening in London, inside the quiet hours (20:00 to 08:00).
const EVENING: &str = "2026-11-23T21:00:00Z";

const POLICY: &str = r#"version = 1
timezone = "Europe/London"

[accounts.brand]
platform = "mastodon"
server = "https://mastodon.example"

[accounts.bsky]
platform = "bluesky"

[banned_terms]
deny = ["layoffs", "nobody here knows how to drive"]
warn = ["guaranteed"]

[[quiet_hours]]
days = ["mon", "tue", "wed", "thu", "fri"]
from = "20:00"
to = "08:00"
reason = "Evenings"
"#;

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.write("gate.toml", POLICY);
    s
}

fn check(s: &Sandbox, file: &str, format: &str, now: &str) -> common::Run {
    s.run(&["check", "--file", file, "--format", format, "--now", now])
}

// ---------------------------------------------------------------- --format github

#[test]
fn a_banned_term_on_the_third_line_is_annotated_on_its_line_and_columns() {
    let s = sandbox();
    s.write(
        "posts/q3.post.toml",
        "# Quarterly update.\naccount = \"brand\"\ntext = \"Results are in: no \\\"layoffs\\\" this year\"\n",
    );
    let run = check(&s, "posts/q3.post.toml", "github", WEEKDAY);
    assert_eq!(run.code, 4, "{run:?}");
    // `layoffs` starts after `text = "Results are in: no \"` (29 characters): column 30,
    // and ends before column 37 on line 3 of the file.
    assert_eq!(
        run.stdout,
        "::error file=posts/q3.post.toml,line=3,col=30,endLine=3,endColumn=37,title=gate deny banned_term::\"layoffs\" matches the banned term `layoffs` (account `brand`)\n"
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn a_multi_line_text_is_annotated_on_the_file_s_own_lines() {
    let s = sandbox();
    s.write(
        "posts/launch.post.toml",
        "accounts = [\"brand\", \"bsky\"]\ntext = \"\"\"\nVersion 2.0 is out, \\\n    GUARANTEED.\nAnd no layoffs:\t\\u0064one.\n\"\"\"\n",
    );
    let run = check(&s, "posts/launch.post.toml", "github", WEEKDAY);
    assert_eq!(run.code, 4, "{run:?}");
    // The line-ending backslash joins lines 3 and 4 of the file; the finding for both
    // accounts is one annotation naming them.
    assert_eq!(
        run.stdout,
        "::error file=posts/launch.post.toml,line=5,col=8,endLine=5,endColumn=15,title=gate deny banned_term::\"layoffs\" matches the banned term `layoffs` (accounts `brand`, `bsky`)\n\
         ::warning file=posts/launch.post.toml,line=4,col=5,endLine=4,endColumn=15,title=gate warn banned_term::\"GUARANTEED\" matches the warned term `guaranteed` (accounts `brand`, `bsky`)\n"
    );
}

#[test]
fn literal_strings_are_mapped_without_escapes() {
    let s = sandbox();
    s.write(
        "p.post.toml",
        "account = 'brand'\ntext = '''\nC:\\new\\layoffs\n'''\n",
    );
    let run = check(&s, "p.post.toml", "github", WEEKDAY);
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stdout,
        "::error file=p.post.toml,line=3,col=8,endLine=3,endColumn=15,title=gate deny banned_term::\"layoffs\" matches the banned term `layoffs` (account `brand`)\n"
    );
}

/// A policy needing two approvals among carol, dave and erin, and a post by erin that carol
/// signed.
fn reviewed() -> Sandbox {
    let s = Sandbox::new();
    let keys = s.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (carol, carol_pub) = keygen(&keys, "carol", "");
    let (_, dave_pub) = keygen(&keys, "dave", "");
    let (_, erin_pub) = keygen(&keys, "erin", "");
    s.write(
        "gate.toml",
        &format!(
            "{POLICY}\n[reviewers]\nrequired = 2\n[reviewers.keys]\ncarol = \"{carol_pub}\"\ndave = \"{dave_pub}\"\nerin = \"{erin_pub}\"\n"
        ),
    );
    s.write(
        "posts/launch.post.toml",
        "account = \"brand\"\nauthor = \"erin\"\ntext = \"Version 2.0 is out today.\"\n",
    );
    let run = s.run(&[
        "approve",
        "--file",
        "posts/launch.post.toml",
        "--key",
        carol.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    s
}

#[test]
fn a_review_names_who_may_still_sign() {
    let s = reviewed();
    let run = check(&s, "posts/launch.post.toml", "github", WEEKDAY);
    assert_eq!(run.code, 6, "{run:?}");
    // carol's approval counted and erin wrote the post: only dave may still sign.
    assert_eq!(
        run.stdout,
        "::notice file=posts/launch.post.toml,line=3,col=8,title=gate review reviewers::needs 2 reviewer approvals, has 1 valid; 1 more approval: `dave` may sign (account `brand`)\n"
    );
    let run = check(&s, "posts/launch.post.toml", "markdown", WEEKDAY);
    assert_eq!(run.code, 6, "{run:?}");
    assert_eq!(
        run.stdout,
        "| post | account | verdict | findings | waits on |\n\
         | --- | --- | --- | --- | --- |\n\
         | `posts/launch.post.toml` | `brand` | **review** | review `reviewers`: needs 2 reviewer approvals, has 1 valid | 1 more approval: `dave` may sign |\n\
         \n\
         1 check: 1 review\n"
    );
}

#[test]
fn a_hold_says_until_when() {
    let s = sandbox();
    s.write(
        "posts/evening.post.toml",
        "account = \"bsky\"\ntext = \"See you tomorrow\"\n",
    );
    let run = check(&s, "posts/evening.post.toml", "github", EVENING);
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(
        run.stdout,
        "::notice file=posts/evening.post.toml,line=2,col=8,title=gate hold quiet_hours::quiet hours (Evenings): held until 2026-11-24T08:00:00Z (account `bsky`)\n"
    );
    let run = check(&s, "posts/evening.post.toml", "markdown", EVENING);
    assert_eq!(run.code, 5, "{run:?}");
    assert_eq!(
        run.stdout,
        "| post | account | verdict | findings | waits on |\n\
         | --- | --- | --- | --- | --- |\n\
         | `posts/evening.post.toml` | `bsky` | **hold** | hold `quiet_hours`: quiet hours (Evenings): held until 2026-11-24T08:00:00Z | held until 2026-11-24T08:00:00Z |\n\
         \n\
         1 check: 1 hold\n"
    );
}

#[test]
fn calendar_lines_and_inline_text_are_annotated_where_they_are() {
    let s = sandbox();
    s.write(
        "calendar.jsonl",
        "{\"text\": \"fine\", \"account\": \"brand\"}\n{\"text\": \"layoffs, 100%\", \"account\": \"brand\"}\n{\"text\": 3}\n",
    );
    let run = s.run(&[
        "check",
        "--jsonl",
        "calendar.jsonl",
        "--format",
        "github",
        "--now",
        WEEKDAY,
    ]);
    // A bad line is a usage error whatever the format (SPEC §2).
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stdout,
        "::error file=calendar.jsonl,line=2,title=gate deny banned_term::\"layoffs\" matches the banned term `layoffs` (account `brand`)\n\
         ::error file=calendar.jsonl,line=3,col=10,title=gate invalid file::invalid calendar line: invalid type: integer `3`, expected a string\n"
    );
    let run = s.run(&[
        "check",
        "--jsonl",
        "calendar.jsonl",
        "--format",
        "markdown",
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stdout,
        "| post | account | verdict | findings | waits on |\n\
         | --- | --- | --- | --- | --- |\n\
         | `calendar.jsonl:1` | `brand` | allow |  |  |\n\
         | `calendar.jsonl:2` | `brand` | **deny** | deny `banned_term`: \"layoffs\" matches the banned term `layoffs` |  |\n\
         | `calendar.jsonl:3` |  | **invalid** | calendar.jsonl:3:10: invalid calendar line: invalid type: integer `3`, expected a string |  |\n\
         \n\
         3 checks: 1 allow, 1 deny, 1 invalid\n"
    );
    let run = s.run(&[
        "check",
        "we have layoffs",
        "--account",
        "bsky",
        "--format",
        "github",
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stdout,
        "::error title=gate deny banned_term::\"layoffs\" matches the banned term `layoffs` (account `bsky`)\n"
    );
}

#[test]
fn properties_and_messages_are_escaped_as_github_documents() {
    let s = sandbox();
    s.write(
        "a,b:c.post.toml",
        "account = \"brand\"\ntext = \"layoffs\"\n",
    );
    s.write(
        "broken.post.toml",
        "account = \"brand\"\ntext = \"100%\"\nnope = 1\n",
    );
    let run = s.run(&[
        "check",
        "--file",
        "a,b:c.post.toml",
        "broken.post.toml",
        "--format",
        "github",
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stdout,
        "::error file=a%2Cb%3Ac.post.toml,line=2,col=9,endLine=2,endColumn=16,title=gate deny banned_term::\"layoffs\" matches the banned term `layoffs` (account `brand`)\n\
         ::error file=broken.post.toml,line=3,col=1,title=gate invalid file::unknown key `nope` in a post file (hint: a post file takes: `account`, `accounts`, `author`, `text`, `media`, `approvals`, `language`, `visibility`, `reply_to`, `thread`, `not_before`, `not_after`)\n"
    );
}

#[test]
fn markdown_cells_cannot_break_the_table() {
    let s = sandbox();
    s.write(
        "bad.post.toml",
        "account = \"brand\"\ntext = \"layoffs | more\"\n",
    );
    s.write("worse.post.toml", "account = \"nobody\"\ntext = \"x\"\n");
    let run = s.run(&[
        "check",
        "--file",
        "bad.post.toml",
        "worse.post.toml",
        "--format",
        "markdown",
        "--now",
        WEEKDAY,
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[2],
        "| `bad.post.toml` | `brand` | **deny** | deny `banned_term`: \"layoffs\" matches the banned term `layoffs` |  |"
    );
    assert_eq!(
        lines[3],
        "| `worse.post.toml` |  | **invalid** | worse.post.toml:1:11: unknown account `nobody` |  |"
    );
    assert_eq!(lines[5], "2 checks: 1 deny, 1 invalid");
    // The human errors still reach the log.
    assert!(run.stderr.contains("unknown account `nobody`"), "{run:?}");
}

#[test]
fn exit_codes_do_not_change_with_the_format() {
    let s = sandbox();
    s.write(
        "deny.post.toml",
        "account = \"brand\"\ntext = \"layoffs\"\n",
    );
    s.write("hold.post.toml", "account = \"brand\"\ntext = \"later\"\n");
    s.write("ok.post.toml", "account = \"brand\"\ntext = \"fine\"\n");
    for (file, now, code) in [
        ("deny.post.toml", WEEKDAY, 4),
        ("hold.post.toml", EVENING, 5),
        ("ok.post.toml", WEEKDAY, 0),
    ] {
        for format in ["human", "json", "github", "markdown"] {
            let run = check(&s, file, format, now);
            assert_eq!(run.code, code, "{file} {format}: {run:?}");
        }
    }
    let run = check(&s, "ok.post.toml", "github", WEEKDAY);
    assert_eq!(run.stdout, "", "an allowed post has nothing to annotate");
}

#[test]
fn policy_check_prints_a_markdown_table() {
    let s = Sandbox::new();
    s.write("gate.toml", "version = 1\ntimezon = \"UTC\"\n");
    let run = s.run(&["policy", "check", "--format", "markdown"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.stdout,
        "| file | line | severity | problem |\n| --- | --- | --- | --- |\n| `gate.toml` | 2 | **error** | unknown key `timezon` in the policy (hint: did you mean `timezone`?) |\n"
    );
    let s = sandbox();
    let run = s.run(&["policy", "check", "--format", "markdown"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "| file | line | severity | problem |\n| --- | --- | --- | --- |\n| `gate.toml` |  | valid |  |\n"
    );
}

// ---------------------------------------------------------------- action.yml

/// `${{ inputs.NAME }}` and `${{ github.NAME }}` replaced as the runner would; any other
/// expression is a test failure, so the action cannot depend on something untested.
fn expand(text: &str, inputs: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        let expr = rest[start + 3..end].trim();
        let value = if let Some(name) = expr.strip_prefix("inputs.") {
            inputs
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("action.yml uses an undeclared input `{name}`"))
                .1
                .clone()
        } else if expr == "github.action_repository" {
            "OWNER/gate".to_owned()
        } else {
            panic!("action.yml uses an expression this test does not model: {expr}");
        };
        out.push_str(&value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

struct ActionRun {
    code: i32,
    stdout: String,
    stderr: String,
    summary: String,
}

impl std::fmt::Debug for ActionRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}--- summary\n{}",
            self.code, self.stdout, self.stderr, self.summary
        )
    }
}

/// Runs every step of `action.yml` but the install step, as a composite action's runner does:
/// each `run:` under `bash --noprofile --norc -eo pipefail`, the step's `env:` with the inputs
/// (the defaults, then `with`), `GITHUB_STEP_SUMMARY` a file, and gate the built binary.
fn run_action(s: &Sandbox, with: &[(&str, &str)]) -> ActionRun {
    run_steps(s, with, false, &[])
}

/// Runs `action.yml`'s steps: every one but the install step, or (`install`) that one alone,
/// with `extra` variables (the runner's own, like `GITHUB_REPOSITORY`).
fn run_steps(
    s: &Sandbox,
    with: &[(&str, &str)],
    install: bool,
    extra: &[(&str, &str)],
) -> ActionRun {
    let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    let action: serde_yaml::Value = serde_yaml::from_str(&text).expect("action.yml is YAML");
    assert_eq!(action["runs"]["using"].as_str(), Some("composite"));
    let mut inputs: Vec<(String, String)> = Vec::new();
    for (name, spec) in action["inputs"].as_mapping().expect("inputs") {
        let name = name.as_str().unwrap().to_owned();
        assert!(
            spec["description"].as_str().is_some_and(|d| !d.is_empty()),
            "input `{name}` has a description"
        );
        let default = spec["default"].as_str().unwrap_or("").to_owned();
        inputs.push((name, default));
    }
    for (name, value) in with {
        let slot = inputs
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("`{name}` is not an input of the action"));
        slot.1 = (*value).to_owned();
    }
    let bin = s.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let gate = bin.join("gate");
    if !gate.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_gate"), &gate).unwrap();
    }
    let summary = s.path().join("step-summary.md");
    std::fs::write(&summary, "").unwrap();
    let steps = action["runs"]["steps"].as_sequence().expect("steps");
    assert!(
        steps.iter().any(|st| st["id"].as_str() == Some("install")),
        "the action installs gate in a step with `id: install`"
    );
    let mut last = None;
    for step in steps {
        if (step["id"].as_str() == Some("install")) != install {
            continue;
        }
        assert_eq!(step["shell"].as_str(), Some("bash"), "{step:?}");
        let script = s.path().join("step.sh");
        std::fs::write(&script, step["run"].as_str().expect("a run step")).unwrap();
        let mut cmd = s.program("bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script);
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path).env("GITHUB_STEP_SUMMARY", &summary);
        cmd.envs(extra.iter().copied());
        if let Some(env) = step["env"].as_mapping() {
            for (k, v) in env {
                cmd.env(k.as_str().unwrap(), expand(v.as_str().unwrap(), &inputs));
            }
        }
        let run = common::run_command(cmd, "");
        let failed = run.code != 0;
        last = Some(run);
        if failed {
            break;
        }
    }
    let run = last.expect("the action has a step besides the install");
    ActionRun {
        code: run.code,
        stdout: run.stdout,
        stderr: run.stderr,
        summary: std::fs::read_to_string(&summary).unwrap(),
    }
}

/// The repository's examples, laid out as a user's repository: `gate.toml` and `posts/`.
fn examples() -> Sandbox {
    let s = Sandbox::new();
    let policy = std::fs::read_to_string(repo().join("policy.example.toml")).unwrap();
    s.write("gate.toml", &policy);
    for folder in ["posts", "refused"] {
        copy_dir(
            &repo().join("examples").join(folder),
            &s.path().join("posts").join(folder),
        );
    }
    s
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_action_annotates_the_examples_and_writes_the_summary() {
    let s = examples();
    let run = run_action(&s, &[]);
    // The refused examples are denied whatever the time: deny wins over hold and review.
    assert_eq!(run.code, 4, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    for want in [
        "::error file=posts/refused/detroit.post.toml,line=5,col=99,endLine=5,endColumn=112,title=gate deny banned_term::\"f.u.c.k.i.n.g\" matches the banned term `fucking` (account `brand-bsky`)",
        "::error file=posts/refused/layoffs.post.toml,line=4,col=96,endLine=4,endColumn=103,title=gate deny banned_term::\"Layoffs\" matches the banned term `layoffs` (account `brand`)",
        "::warning file=posts/refused/edited.post.toml,line=6,col=45,endLine=6,endColumn=55,title=gate warn banned_term::\"GUARANTEED\" matches the warned term `guaranteed` (account `brand`)",
        "::notice file=posts/refused/edited.post.toml,line=6,col=8,title=gate review reviewers::needs 1 reviewer approval, has 0 valid; 1 more approval: `carol` or `dave` may sign (account `brand`)",
        "::notice file=posts/refused/unapproved.post.toml,line=5,col=8,title=gate review reviewers::needs 2 reviewer approvals, has 0 valid; 2 more approvals: `carol` or `dave` may sign (account `brand-x`)",
    ] {
        assert!(lines.contains(&want), "missing {want}\n{run:?}");
    }
    // The rest depends on the clock (policy.example.toml has quiet hours and a blackout):
    // only holds, never another kind of line.
    for line in &lines {
        assert!(
            line.starts_with("::error ")
                || line.starts_with("::warning ")
                || line.contains("title=gate review reviewers::")
                || (line.starts_with("::notice ") && line.contains("held ")),
            "unexpected line {line}\n{run:?}"
        );
    }
    assert!(run.summary.starts_with("### gate check\n\n| post | account | verdict | findings | waits on |\n| --- | --- | --- | --- | --- |\n"), "{run:?}");
    assert!(
        run.summary.contains("| `posts/refused/detroit.post.toml` | `brand-bsky` | **deny** | deny `banned_term`: \"f.u.c.k.i.n.g\" matches the banned term `fucking`"),
        "{run:?}"
    );
    assert!(
        run.summary
            .contains("| 1 more approval: `carol` or `dave` may sign"),
        "{run:?}"
    );
    for row in run
        .summary
        .lines()
        .filter(|l| l.starts_with("| `posts/posts/"))
    {
        assert!(
            row.contains("| allow |") || row.contains("| **hold** |") && row.contains("held until"),
            "an example post is allowed, or held until a time: {row}"
        );
    }
    assert_eq!(
        run.summary
            .lines()
            .filter(|l| l.starts_with("| `posts/"))
            .count(),
        // Nine posts, and the thread example (one row: it goes to one account).
        10,
        "{run:?}"
    );
}

#[test]
fn the_action_checks_the_policy_and_passes_on_a_valid_one() {
    let s = examples();
    let run = run_action(&s, &[("command", "policy-check")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.summary,
        "### gate policy-check\n\n| file | line | severity | problem |\n| --- | --- | --- | --- |\n| `gate.toml` |  | valid |  |\n\n"
    );
    s.write("broken.toml", "version = 1\nplatfrom = 3\n");
    let run = run_action(
        &s,
        &[("command", "policy-check"), ("policy", "broken.toml")],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .starts_with("::error file=broken.toml,line=2,col=1::unknown key `platfrom`"),
        "{run:?}"
    );
}

#[test]
fn the_action_passes_a_held_queue_unless_told_not_to() {
    let s = sandbox();
    // Held every day of the week, all day: the verdict does not depend on the clock.
    s.write(
        "gate.toml",
        "version = 1\ntimezone = \"UTC\"\n\n[accounts.brand]\nplatform = \"bluesky\"\n\n[[quiet_hours]]\nreason = \"Always\"\n",
    );
    s.write(
        "posts/a.post.toml",
        "account = \"brand\"\ntext = \"hello\"\n",
    );
    let run = run_action(&s, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("title=gate hold quiet_hours::quiet hours (Always): held"),
        "{run:?}"
    );
    assert!(run.stdout.ends_with("::notice title=gate hold::some posts are held (quiet hours, a blackout or a rate limit); they wait for their time\n"), "{run:?}");
    assert!(run.summary.contains("| **hold** |"), "{run:?}");
    let run = run_action(&s, &[("allow-hold", "false")]);
    assert_eq!(run.code, 5, "{run:?}");
    let run = run_action(&s, &[("command", "post")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stdout,
        "::error title=gate action::unknown command `post` (hint: use `check` or `policy-check`)\n"
    );
}

#[test]
fn the_example_workflows_use_the_action_and_one_sender_at_a_time() {
    let check: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("examples/github-workflow.yml")).unwrap(),
    )
    .unwrap();
    let steps = check["jobs"]["policy"]["steps"].as_sequence().unwrap();
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(
        uses.iter().any(|u| u.starts_with("OWNER/gate@")),
        "{uses:?}"
    );
    assert!(
        !steps.iter().any(|s| s["run"]
            .as_str()
            .is_some_and(|r| r.contains("cargo install"))),
        "the check workflow installs gate through the action"
    );
    let post: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("examples/github-workflow-post.yml")).unwrap(),
    )
    .unwrap();
    let on = &post["on"];
    assert!(
        on["push"]["branches"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|b| b == "main")
    );
    assert!(on["schedule"][0]["cron"].as_str().is_some());
    assert!(on.get("workflow_dispatch").is_some());
    assert_eq!(
        post["concurrency"]["cancel-in-progress"].as_bool(),
        Some(false)
    );
    assert!(post["concurrency"]["group"].as_str().is_some());
    let runs: Vec<&str> = post["jobs"]["post"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect();
    assert!(runs.contains(&"gate post --due posts/ --yes"), "{runs:?}");
}

// ---------------------------------------------------------------- gate man

#[test]
fn man_out_writes_one_page_per_subcommand_with_the_extra_sections() {
    let s = Sandbox::new();
    let run = s.run(&["man", "--out", "man"]);
    assert_eq!(run.code, 0, "{run:?}");
    for page in [
        "gate.1",
        "gate-post.1",
        "gate-check.1",
        "gate-policy-check.1",
        "gate-auth-login.1",
        "gate-auth-status.1",
        "gate-man.1",
    ] {
        let path = s.path().join("man").join(page);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{page}: {e}"));
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
        ] {
            assert!(text.contains(section), "{page} lacks {section}");
        }
        for var in [
            "GATE_POLICY",
            "GATE_HOME",
            "GATE_STATE_URL",
            "GATE_KEYCHAIN",
            "XDG_CONFIG_HOME",
            "NO_COLOR",
        ] {
            assert!(text.contains(var), "{page} lacks {var}");
        }
        assert!(
            text.contains("needs more valid reviewer approvals"),
            "{page}"
        );
    }
    let mut pages: Vec<String> = std::fs::read_dir(s.path().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "gate-approve.1",
        "gate-auth.1",
        "gate-auth-logout.1",
        "gate-completions.1",
        "gate-digest.1",
        "gate-freeze.1",
        "gate-log.1",
        "gate-policy.1",
        "gate-policy-test.1",
        "gate-retract.1",
        "gate-unfreeze.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    assert!(
        !pages.iter().any(|p| p.contains("help")),
        "no page for clap's `help`: {pages:?}"
    );
    let post = s.read("man/gate-post.1");
    assert!(
        post.contains("gate 0.1.0"),
        "the footer names gate, not the subcommand"
    );
    assert!(
        post.contains("gate\\-post"),
        "the page is named for the subcommand"
    );
    assert!(
        post.contains("\\-\\-dry\\-run"),
        "the page has the subcommand's options"
    );
    // `gate man` alone still prints gate.1, with the same sections.
    let run = s.run(&["man"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, s.read("man/gate.1"));
    // `man` is listed in `gate --help`.
    let help = s.run(&["--help"]);
    assert!(
        help.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("man ")),
        "{help:?}"
    );
    // Rendered by man(1) when it is installed (not required).
    let man = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(s.path().join("man/gate-check.1"))
        .env("MANWIDTH", "100")
        .output();
    if let Ok(out) = man
        && out.status.success()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("EXIT STATUS"), "{text}");
        assert!(text.contains("--format"), "{text}");
    }
}

#[test]
fn a_term_across_lines_and_a_freeze_are_annotated_too() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        &format!("{POLICY}\n[freeze]\nreason = \"account compromised\"\n"),
    );
    s.write(
        "p.post.toml",
        "account = \"bsky\"\ntext = \"\"\"\nand nobody here knows\nhow to drive\n\"\"\"\n",
    );
    let run = check(&s, "p.post.toml", "github", WEEKDAY);
    assert_eq!(run.code, 7, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    // A span over two lines gets lines only: GitHub takes no columns for it.
    assert!(
        lines.iter().any(|l| l.starts_with(
            "::error file=p.post.toml,line=3,endLine=4,title=gate deny banned_term::"
        )),
        "{run:?}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("::notice file=p.post.toml,line=2,col=8,title=gate frozen freeze::")
            && l.contains("account compromised")),
        "{run:?}"
    );
    let run = check(&s, "p.post.toml", "markdown", WEEKDAY);
    assert_eq!(run.code, 7, "{run:?}");
    assert!(run.stdout.contains("| **frozen** |"), "{run:?}");
    assert!(
        run.stdout.contains("| the freeze to be lifted |"),
        "{run:?}"
    );
}

#[test]
fn stdin_text_is_annotated_on_no_file() {
    let s = sandbox();
    let run = s.run_with_stdin(
        &[
            "check",
            "-",
            "--account",
            "bsky",
            "--format",
            "github",
            "--now",
            WEEKDAY,
        ],
        "layoffs are coming\n",
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stdout,
        "::error title=gate deny banned_term::\"layoffs\" matches the banned term `layoffs` (account `bsky`)\n"
    );
}

#[test]
fn the_action_installs_gate_from_its_source_at_a_tag() {
    let s = Sandbox::new();
    // A `cargo` that says what it was asked, in place of the download.
    s.write(
        "bin/cargo",
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$GITHUB_STEP_SUMMARY.cargo\"\n",
    );
    let cargo = s.path().join("bin/cargo");
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let asked = |with: &[(&str, &str)], extra: &[(&str, &str)]| {
        let _ = std::fs::remove_file(s.path().join("step-summary.md.cargo"));
        let run = run_steps(&s, with, true, extra);
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stdout.starts_with("gate "),
            "it shows the version installed: {run:?}"
        );
        s.read("step-summary.md.cargo")
    };
    assert_eq!(
        asked(&[], &[("GITHUB_SERVER_URL", "https://github.com")]),
        "install --locked --git https://github.com/OWNER/gate gate\n"
    );
    assert_eq!(
        asked(
            &[
                ("version", "v0.2.0"),
                ("source", "https://git.example.com/team/gate")
            ],
            &[]
        ),
        "install --locked --git https://git.example.com/team/gate --tag v0.2.0 gate\n"
    );
}
