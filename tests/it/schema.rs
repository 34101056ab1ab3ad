//! `gate schema policy|post`: the committed documents are what gate prints, every file gate
//! accepts (the examples and the policies this test suite writes) validates against them with a
//! real JSON Schema validator, files gate rejects for an unknown key or a wrong type do not, and
//! the schemas list exactly the keys the readers take.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Sandbox, repo};
use gate::core::diagnostic::{Diagnostic, Source};
use gate::core::policy::{self, Policy};
use gate::core::post;
use serde_json::Value;

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::meta::validate(schema).expect("a valid draft 2020-12 schema");
    jsonschema::draft202012::new(schema).expect("the schema compiles")
}

/// TOML as JSON, the way TOML editors check it against a schema: a date-time is its text.
fn to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => Value::from(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}

fn toml_json(text: &str) -> Value {
    to_json(toml::Value::Table(
        toml::from_str::<toml::Table>(text).expect("valid TOML"),
    ))
}

/// The schema's complaints about `instance`, one line each (empty when it is valid).
fn problems(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn read_policy(name: &str, text: &str) -> (Option<Policy>, Vec<Diagnostic>) {
    policy::parse(&Source::new(name, text))
}

fn example_policy() -> Policy {
    let path = repo().join("policy.example.toml");
    let (policy, diagnostics) = gate::inputs::load_policy(&path);
    policy.unwrap_or_else(|| panic!("the example policy is invalid: {diagnostics:?}"))
}

fn policy_schema() -> Value {
    gate::commands::schema::policy()
}

fn post_schema() -> Value {
    gate::commands::schema::post()
}

// ---------------------------------------------------------------- the committed files

#[test]
fn the_committed_schemas_are_what_gate_prints() {
    let s = Sandbox::new();
    for (kind, file) in [
        ("policy", "policy.schema.json"),
        ("post", "post.schema.json"),
    ] {
        let run = s.run(&["schema", kind]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stderr, "");
        let committed = std::fs::read_to_string(repo().join("schema").join(file)).unwrap();
        assert_eq!(
            run.stdout, committed,
            "schema/{file} is stale: regenerate it with `gate schema {kind} > schema/{file}`"
        );
        let printed: Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            printed["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert!(
            printed["$id"]
                .as_str()
                .unwrap()
                .starts_with("urn:gate:schema:")
        );
        assert!(printed["title"].as_str().unwrap().starts_with("gate "));
        validator(&printed);
    }
}

#[test]
fn schema_needs_a_kind_and_explains_itself() {
    let s = Sandbox::new();
    let run = s.run(&["schema"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = s.run(&["schema", "calendar"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("[possible values: policy, post]"),
        "{run:?}"
    );
    let run = s.run(&["schema", "--help"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("draft 2020-12"), "{run:?}");
    assert!(
        run.stdout.contains("#:schema ./schema/policy.schema.json"),
        "{run:?}"
    );
    let run = s.run(&["--help"]);
    assert!(run.stdout.contains("schema "), "{run:?}");
}

#[test]
fn the_example_files_name_their_schema_on_the_first_line() {
    let policy = std::fs::read_to_string(repo().join("policy.example.toml")).unwrap();
    assert_eq!(
        policy.lines().next(),
        Some("#:schema ./schema/policy.schema.json")
    );
    let posts = example_posts();
    assert!(posts.len() >= 6, "{posts:?}");
    for path in posts {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        let target = first
            .strip_prefix("#:schema ")
            .unwrap_or_else(|| panic!("{} does not name its schema", path.display()));
        // The path is relative to the file, as taplo resolves it.
        let resolved = path.parent().unwrap().join(target);
        assert_eq!(
            resolved.canonicalize().unwrap(),
            repo()
                .join("schema/post.schema.json")
                .canonicalize()
                .unwrap(),
            "{}",
            path.display()
        );
    }
}

fn example_posts() -> Vec<PathBuf> {
    gate::inputs::find_post_files(&repo().join("examples")).unwrap()
}

// ---------------------------------------------------------------- valid files validate

#[test]
fn the_example_policy_and_posts_validate() {
    let v = validator(&policy_schema());
    let text = std::fs::read_to_string(repo().join("policy.example.toml")).unwrap();
    assert_eq!(problems(&v, &toml_json(&text)), Vec::<String>::new());

    let policy = example_policy();
    let v = validator(&post_schema());
    for path in example_posts() {
        // gate accepts each as a post file (the refused ones are refused by the rules, later).
        if let Err(d) = gate::inputs::load_post(&path, &policy) {
            panic!("gate rejects {}: {d:?}", path.display());
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            problems(&v, &toml_json(&text)),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
    }
}

/// A string literal from a test file: where it was and its value.
struct Literal {
    file: String,
    line: usize,
    text: String,
}

/// Every string literal in Rust source holding `version = 1`, unescaped. A `format!` string's
/// placeholders become a loopback URL (so `server = "{}"` reads as a fake server's address)
/// and its `{{ }}` become braces.
fn policy_literals(file: &str, source: &str) -> Vec<Literal> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let line_of = |i: usize| chars[..i].iter().filter(|c| **c == '\n').count() + 1;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\'' {
            // A char literal (`'"'`, `'\''`) or a lifetime.
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
            continue;
        }
        let start = i;
        let (text, end) = if c == 'r' && matches!(next, Some('#') | Some('"')) {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                i += 1;
                continue;
            }
            j += 1;
            let body = j;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    break;
                }
                j += 1;
            }
            (chars[body..j].iter().collect::<String>(), j + 1 + hashes)
        } else if c == '"' {
            let mut j = i + 1;
            let mut text = String::new();
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                    match chars.get(j) {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some('r') => text.push('\r'),
                        Some('0') => text.push('\0'),
                        Some('\n') => {
                            while chars.get(j + 1).is_some_and(|c| c.is_whitespace()) {
                                j += 1;
                            }
                        }
                        Some('u') => {
                            let close = (j..chars.len()).find(|&k| chars[k] == '}').unwrap();
                            let hex: String = chars[j + 2..close].iter().collect();
                            text.push(
                                char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap(),
                            );
                            j = close;
                        }
                        Some('x') => {
                            let hex: String = chars[j + 1..j + 3].iter().collect();
                            text.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
                            j += 2;
                        }
                        Some(other) => text.push(*other),
                        None => {}
                    }
                } else {
                    text.push(chars[j]);
                }
                j += 1;
            }
            (text, j + 1)
        } else {
            i += 1;
            continue;
        };
        i = end;
        // A byte string (`b"..."`) is read past but is not a policy's text.
        let prefix = |k: usize| k > 0 && (chars[k - 1].is_alphanumeric() || chars[k - 1] == '_');
        let bytes = start > 0 && chars[start - 1] == 'b' && !prefix(start - 1);
        if bytes || !text.contains("version = 1") {
            continue;
        }
        let before: String = chars[..start].iter().collect();
        let is_format = before.trim_end().ends_with("format!(");
        let text = if is_format {
            fill_placeholders(&text)
        } else {
            text
        };
        out.push(Literal {
            file: file.to_owned(),
            line: line_of(start),
            text,
        });
    }
    out
}

/// A `format!` string as the test would fill it: each placeholder gets a value of the kind
/// its place takes (a whole line of extra keys: nothing; a table name: an account's; an
/// unquoted value: a port; `platform`: a network; a reviewer's `*_pub`: a key of its own;
/// anything else: a loopback server's URL).
fn fill_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('{') {
            let close = tail.find('}').unwrap_or(tail.len() - 1);
            let name = &tail[1..close];
            let line = out.rsplit('\n').next().unwrap_or("").to_owned();
            let value = if line.is_empty() {
                String::new()
            } else if line.starts_with('[') {
                "brand".to_owned()
            } else if line.ends_with("= ") {
                "8765".to_owned()
            } else if line.trim_start().starts_with("platform") {
                "mastodon".to_owned()
            } else if name.ends_with("_pub") {
                public_key(name)
            } else {
                "http://127.0.0.1:9".to_owned()
            };
            out.push_str(&value);
            rest = &tail[close + 1..];
        } else {
            out.push('}');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// An OpenSSH ed25519 public key line of its own for each name.
fn public_key(name: &str) -> String {
    use sha2::Digest as _;
    let seed: [u8; 32] = sha2::Sha256::digest(name.as_bytes()).into();
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    ssh_key::PublicKey::new(ssh_key::public::KeyData::Ed25519(pair.public), name)
        .to_openssh()
        .unwrap()
}

/// Every policy written by a test in this suite, with whether gate accepts it.
fn suite_policies() -> Vec<(Literal, bool, Vec<Diagnostic>)> {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["tests/it", "tests/it/common"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests/it/schema.rs")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let name = path.strip_prefix(repo()).unwrap().display().to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        for literal in policy_literals(&name, &source) {
            let (policy, diagnostics) = read_policy(&literal.file, &literal.text);
            out.push((literal, policy.is_some(), diagnostics));
        }
    }
    out
}

#[test]
fn every_policy_the_test_suite_writes_that_gate_accepts_validates() {
    let v = validator(&policy_schema());
    let policies = suite_policies();
    let accepted: Vec<&Literal> = policies
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(l, _, _)| l)
        .collect();
    assert!(
        accepted.len() >= 10,
        "only {} policies from the suite are valid",
        accepted.len()
    );
    // The big one at the top of tests/it/cli.rs is among them.
    assert!(
        accepted.iter().any(|l| l.file == "tests/it/cli.rs"
            && l.text.contains("[[quiet_hours]]")
            && l.text.contains("[[blackouts]]")
            && l.text.contains("regex = ")),
        "the policy of tests/it/cli.rs was not found"
    );
    let mut failures = Vec::new();
    for l in &accepted {
        let instance = toml_json(&l.text);
        let p = problems(&v, &instance);
        if !p.is_empty() {
            failures.push(format!("{}:{}: {p:?}\n{}", l.file, l.line, l.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What gate checks across keys or beyond a value's form, which a JSON Schema cannot say.
const BEYOND_A_SCHEMA: &[&str] = &[
    "listed in `[reviewers.keys]`",
    "have the same key",
    "a blackout must end after it starts",
    "invalid regex",
    "quiet hours need a time zone",
    "has no offset and the policy has no `timezone`",
    "unknown account",
];

#[test]
fn policies_of_the_suite_that_gate_rejects_fail_the_schema_too() {
    let v = validator(&policy_schema());
    let mut checked = 0;
    for (l, ok, diagnostics) in suite_policies() {
        if ok || toml::from_str::<toml::Table>(&l.text).is_err() {
            continue;
        }
        let by_form: Vec<&str> = diagnostics
            .iter()
            .filter(|d| d.is_error() && !BEYOND_A_SCHEMA.iter().any(|m| d.message.contains(m)))
            .map(|d| d.message.as_str())
            .collect();
        if by_form.is_empty() {
            continue;
        }
        checked += 1;
        assert!(
            !v.is_valid(&toml_json(&l.text)),
            "{}:{}: gate says {by_form:?} but the schema accepts it",
            l.file,
            l.line,
        );
    }
    assert!(checked >= 5, "only {checked} such policies in the suite");
}

// ---------------------------------------------------------------- invalid files fail

/// Each of these: gate rejects it with this message, and the schema rejects it too.
const INVALID_POLICIES: &[(&str, &str)] = &[
    (
        "version = 1\n[accounts.brand]\nplatfrom = \"mastodon\"\n",
        "unknown key `platfrom`",
    ),
    (
        "version = 1\nbanned_term = []\n",
        "unknown key `banned_term`",
    ),
    (
        "version = 1\n[links]\nshortener = \"deny\"\n",
        "unknown key `shortener`",
    ),
    (
        "version = 1\n[[tests]]\ntext = \"hi\"\nexpect = \"allow\"\nnote = \"x\"\n",
        "unknown key `note`",
    ),
    (
        "version = 1\n[accounts.brand]\nplatform = \"bluesky\"\nmax_chars = \"300\"\n",
        "`max_chars` must be an integer",
    ),
    ("version = \"1\"\n", "`version` must be an integer"),
    ("version = 2\n", "unsupported policy version 2"),
    (
        "version = 1\n[banned_terms]\ndeny = \"layoffs\"\n",
        "`deny` must be an array of strings",
    ),
    (
        "version = 1\n[media]\nrequire_alt_text = \"yes\"\n",
        "`require_alt_text` must be true or false",
    ),
    (
        "version = 1\ntimezone = \"Europe/Londn\"\n",
        "unknown time zone `Europe/Londn`",
    ),
    (
        "version = 1\n[accounts.brand]\nplatform = \"twitter\"\n",
        "unknown platform `twitter`",
    ),
    (
        "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\n",
        "has no `server`",
    ),
    (
        "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"http://mastodon.example\"\n",
        "invalid `server` URL",
    ),
    (
        "version = 1\ntimezone = \"UTC\"\n[[quiet_hours]]\nfrom = \"8pm\"\nto = \"08:00\"\n",
        "invalid time `8pm`",
    ),
    (
        "version = 1\ntimezone = \"UTC\"\n[[quiet_hours]]\ndays = [\"funday\"]\n",
        "unknown day `funday`",
    ),
    (
        "version = 1\n[links]\nshorteners = \"block\"\n",
        "unknown value `block`",
    ),
    (
        "version = 1\n[limits]\nmax_posts_per_hour = 0\n",
        "must be a whole number from 1 up",
    ),
    (
        "version = 1\n[freeze]\nsince = \"2026-11-22T18:00:00Z\"\n",
        "needs a `reason`",
    ),
    (
        "version = 1\n[[tests]]\ntext = \"hi\"\nexpect = \"pass\"\n",
        "unknown verdict `pass`",
    ),
    (
        "version = 1\n[accounts.b]\nplatform = \"x\"\nhandle = \"brand.example\"\n",
        "`handle` is only for bluesky accounts",
    ),
    (
        "version = 1\n[accounts.b]\nplatform = \"bluesky\"\n[accounts.b.oauth]\nclient_id = \"abc\"\n",
        "`client_id` is not used for bluesky accounts",
    ),
    (
        "version = 1\n[reviewers.keys]\ncarol = \"ssh-rsa AAAAB3Nza carol\"\n",
        "is not an OpenSSH ed25519 public key",
    ),
];

#[test]
fn invalid_policies_are_rejected_by_gate_and_by_the_schema() {
    let v = validator(&policy_schema());
    for (text, message) in INVALID_POLICIES {
        let (policy, diagnostics) = read_policy("gate.toml", text);
        assert!(policy.is_none(), "gate accepts {text:?}");
        assert!(
            diagnostics.iter().any(|d| d.message.contains(message)),
            "{text:?}: {diagnostics:?}"
        );
        assert!(!v.is_valid(&toml_json(text)), "the schema accepts {text:?}");
    }
}

#[test]
fn an_unknown_key_anywhere_in_a_valid_policy_fails_the_schema() {
    let v = validator(&policy_schema());
    let text = std::fs::read_to_string(repo().join("policy.example.toml")).unwrap();
    let valid = toml_json(&text);
    let mut places = Vec::new();
    objects(&valid, String::new(), &mut places);
    assert!(places.len() >= 20, "{places:?}");
    for place in places {
        let mut bad = valid.clone();
        let target = bad.pointer_mut(&place).unwrap().as_object_mut().unwrap();
        // Maps whose keys are names (accounts, reviewers' keys) take new names of their kind.
        if place == "/accounts" || place == "/reviewers/keys" {
            continue;
        }
        target.insert("colour".into(), Value::from("blue"));
        assert!(!v.is_valid(&bad), "the schema takes `colour` at {place}");
    }
}

/// The JSON pointer of every object in `value`.
fn objects(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            out.push(at.clone());
            for (k, v) in map {
                objects(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                objects(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

const INVALID_POSTS: &[(&str, &str)] = &[
    (
        "account = \"brand\"\ntext = \"hi\"\nnot_before = 2026-12-01T09:00:00\n",
        "has no offset",
    ),
    (
        "account = \"brand\"\ntext = \"hi\"\nnot_after = \"tomorrow at 9\"\n",
        "is not a date-time",
    ),
    (
        "account = \"brand\"\ntext = \"hi\"\nnot_after = 2026-12-01\n",
        "must be a date and a time of day",
    ),
    (
        "acount = \"brand\"\ntext = \"hi\"\n",
        "unknown key `acount`",
    ),
    (
        "account = \"brand\"\ntext = \"hi\"\n[[media]]\npath = \"a.png\"\nalt_text = \"x\"\n",
        "unknown key `alt_text`",
    ),
    (
        "account = \"brand\"\ntext = \"hi\"\n[[approvals]]\nreviewer = \"carol\"\nsig = \"x\"\n",
        "unknown key `sig`",
    ),
    (
        "account = \"brand\"\ntext = 42\n",
        "`text` must be a string",
    ),
    (
        "accounts = \"brand\"\ntext = \"hi\"\n",
        "`accounts` must be an array of strings",
    ),
    (
        "account = \"brand\"\naccounts = [\"brand\"]\ntext = \"hi\"\n",
        "either `account` or `accounts`",
    ),
    ("text = \"hi\"\n", "the post names no account"),
    ("account = \"brand\"\n", "the post has no `text`"),
    (
        "account = \"brand\"\ntext = \"  \"\n",
        "the post's `text` is empty",
    ),
    ("accounts = []\ntext = \"hi\"\n", "`accounts` is empty"),
    (
        "account = \"brand\"\ntext = \"hi\"\nvisibility = \"Public\"\n",
        "invalid `visibility`",
    ),
    (
        "account = \"brand\"\ntext = \"hi\"\nlanguage = \"en_GB\"\n",
        "invalid `language`",
    ),
    (
        "account = \"brand\"\ntext = \"hi\"\n[[media]]\nalt = \"x\"\n",
        "needs `path`",
    ),
];

#[test]
fn invalid_post_files_are_rejected_by_gate_and_by_the_schema() {
    let policy = example_policy();
    let v = validator(&post_schema());
    for (text, message) in INVALID_POSTS {
        let source = Source::new("x.post.toml", *text);
        let diagnostics = gate::inputs::parse_post(&source, Path::new("x.post.toml"), &policy)
            .err()
            .unwrap_or_else(|| panic!("gate accepts {text:?}"));
        assert!(
            diagnostics.iter().any(|d| d.message.contains(message)),
            "{text:?}: {diagnostics:?}"
        );
        assert!(!v.is_valid(&toml_json(text)), "the schema accepts {text:?}");
    }
    // And a few the reader takes.
    for text in [
        "account = \"brand\"\ntext = \"hi\"\nlanguage = \"EN-gb\"\nvisibility = \"unlisted\"\nreply_to = \"109\"\n",
        "accounts = [\"brand\", \"brand-bsky\"]\ntext = \"hi\"\nauthor = \"erin\"\n",
        "account = \"brand\"\ntext = \"hi\"\nnot_before = 2026-12-01T09:00:00+01:00\nnot_after = 2026-12-01T12:00:00.5Z\n",
        "account = \"brand\"\ntext = \"hi\"\nnot_after = \"2026-12-01T12:00:00+01:00\"\n",
    ] {
        let source = Source::new("x.post.toml", text);
        if let Err(d) = gate::inputs::parse_post(&source, Path::new("x.post.toml"), &policy) {
            panic!("{text:?}: {d:?}");
        }
        assert_eq!(
            problems(&v, &toml_json(text)),
            Vec::<String>::new(),
            "{text:?}"
        );
    }
}

// ---------------------------------------------------------------- forms the readers check

#[test]
fn every_date_time_the_policy_reader_takes_matches_the_schema() {
    let v = validator(&policy_schema());
    let blackout = |from: &str| {
        format!(
            "version = 1\ntimezone = \"UTC\"\n[[blackouts]]\nfrom = \"{from}\"\nto = \"2099-01-01T00:00:00Z\"\n"
        )
    };
    let taken = [
        "2026-12-24",
        "2026-12-24T00:00",
        "2026-12-24T00:00:00",
        "2026-12-24 00:00",
        "2026-12-24 00:00:00",
        "2026-12-24T00:00Z",
        "2026-12-24T00:00+01:00",
        "2026-12-24 00:00+01:00",
        "2026-12-24T00:00:00Z",
        "2026-12-24T00:00:00.250-05:00",
        "2026-12-24t00:00:00z",
        " 2026-12-24T00:00 ",
    ];
    for from in taken {
        let text = blackout(from);
        let (policy, d) = read_policy("gate.toml", &text);
        assert!(policy.is_some(), "{from:?}: {d:?}");
        assert_eq!(
            problems(&v, &toml_json(&text)),
            Vec::<String>::new(),
            "{from:?}"
        );
    }
    // Unquoted TOML date-times are read too, and editors check them as their text.
    let text = "version = 1\ntimezone = \"UTC\"\n[[blackouts]]\nfrom = 2026-12-24T00:00:00\nto = 2026-12-27T00:00:00Z\n[freeze]\nreason = \"x\"\nsince = 2026-11-22\n";
    assert!(read_policy("gate.toml", text).0.is_some());
    assert_eq!(problems(&v, &toml_json(text)), Vec::<String>::new());
    for wrong in ["tomorrow", "24/12/2026", "2026-12-24T00:00 London"] {
        let text = blackout(wrong);
        assert!(read_policy("gate.toml", &text).0.is_none(), "{wrong:?}");
        assert!(!v.is_valid(&toml_json(&text)), "{wrong:?}");
    }
}

#[test]
fn urls_times_and_language_tags_match_where_the_readers_take_them() {
    let policy_v = validator(&policy_schema());
    let account = |server: &str| {
        format!("version = 1\n[accounts.a]\nplatform = \"mastodon\"\nserver = \"{server}\"\n")
    };
    for server in [
        "https://m.example",
        "https://m.example/",
        "https://m.example:8443/base/path",
        "http://127.0.0.1:9",
        "http://localhost",
        "http://localhost:3000/",
        "http://[::1]:8080/x",
    ] {
        let text = account(server);
        let (p, d) = read_policy("gate.toml", &text);
        assert!(p.is_some(), "{server}: {d:?}");
        assert!(policy_v.is_valid(&toml_json(&text)), "{server}");
    }
    for server in [
        "ftp://m.example",
        "https://",
        "https://m.example/a b",
        "https://m.example/?q=1",
        "https://m.example/#top",
        "http://10.0.0.1",
        "http://localhost.example.com",
        "m.example",
    ] {
        let text = account(server);
        assert!(read_policy("gate.toml", &text).0.is_none(), "{server}");
        assert!(!policy_v.is_valid(&toml_json(&text)), "{server}");
    }
    let window = |from: &str| {
        format!(
            "version = 1\ntimezone = \"UTC\"\n[[quiet_hours]]\nfrom = \"{from}\"\nto = \"08:00\"\n"
        )
    };
    for (from, ok) in [
        ("00:00", true),
        ("23:59", true),
        ("09:30", true),
        ("24:00", false),
        ("9:30", false),
        ("12:60", false),
        ("12.30", false),
    ] {
        let text = window(from);
        assert_eq!(read_policy("gate.toml", &text).0.is_some(), ok, "{from}");
        assert_eq!(policy_v.is_valid(&toml_json(&text)), ok, "{from}");
    }
    let policy = example_policy();
    let post_v = validator(&post_schema());
    for (tag, ok) in [
        ("en", true),
        ("EN-gb", true),
        ("pt-BR", true),
        ("zh-hant-tw", true),
        ("es-419", true),
        ("gsw", true),
        ("e", false),
        ("english", false),
        ("en_GB", false),
        ("en-", false),
        ("en-toolongsubtag", false),
    ] {
        let text = format!("account = \"brand\"\ntext = \"hi\"\nlanguage = \"{tag}\"\n");
        let read = gate::inputs::parse_post(
            &Source::new("x.post.toml", text.clone()),
            Path::new("x.post.toml"),
            &policy,
        );
        assert_eq!(read.is_ok(), ok, "{tag}");
        assert_eq!(post_v.is_valid(&toml_json(&text)), ok, "{tag}");
    }
}

#[test]
fn the_closed_value_sets_are_the_readers() {
    let v = validator(&policy_schema());
    let schema = policy_schema();
    let account = &schema["properties"]["accounts"]["additionalProperties"];
    let platforms: Vec<&str> = account["properties"]["platform"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["mastodon", "bluesky", "x"]);
    for platform in platforms {
        let text = format!(
            "version = 1\n[accounts.a]\nplatform = \"{platform}\"\nserver = \"https://s.example\"\n"
        );
        assert!(read_policy("gate.toml", &text).0.is_some(), "{platform}");
        assert!(v.is_valid(&toml_json(&text)), "{platform}");
    }
    let names = |pointer: &str| -> Vec<String> {
        schema
            .pointer(pointer)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_owned())
            .collect()
    };
    for verdict in names("/properties/tests/items/properties/expect/enum") {
        let text = format!("version = 1\n[[tests]]\ntext = \"hi\"\nexpect = \"{verdict}\"\n");
        assert!(read_policy("gate.toml", &text).0.is_some(), "{verdict}");
        assert!(v.is_valid(&toml_json(&text)), "{verdict}");
    }
    for value in names("/properties/links/properties/shorteners/enum") {
        let text = format!("version = 1\n[links]\nshorteners = \"{value}\"\n");
        assert!(read_policy("gate.toml", &text).0.is_some(), "{value}");
    }
    let days = names("/properties/quiet_hours/items/properties/days/items/anyOf/0/enum");
    assert_eq!(days.len(), 14);
    for day in days
        .iter()
        .map(String::as_str)
        .chain(["MON", "Sunday", "wEdNeSdAy"])
    {
        let text =
            format!("version = 1\ntimezone = \"UTC\"\n[[quiet_hours]]\ndays = [\"{day}\"]\n");
        assert!(read_policy("gate.toml", &text).0.is_some(), "{day}");
        assert!(v.is_valid(&toml_json(&text)), "{day}");
    }
    let zones = names("/$defs/timezone/enum");
    assert!(zones.len() > 400, "{}", zones.len());
    for zone in &zones {
        let text = format!("version = 1\ntimezone = \"{zone}\"\n");
        assert!(read_policy("gate.toml", &text).0.is_some(), "{zone}");
    }
    let post = post_schema();
    let visibility: Vec<&str> = post["properties"]["visibility"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(visibility, ["public", "unlisted", "private", "direct"]);
}

// ---------------------------------------------------------------- keys: the readers' and no other

/// Each object of the policy schema, where it is, the reader's key table for it, and a TOML
/// prefix that puts a key there.
fn policy_tables() -> Vec<(&'static str, &'static [&'static str], &'static str)> {
    vec![
        ("/properties", policy::TOP_KEYS, ""),
        (
            "/properties/state/properties",
            policy::STATE_KEYS,
            "[state]\n",
        ),
        (
            "/properties/schedule/properties",
            policy::SCHEDULE_KEYS,
            "[schedule]\n",
        ),
        (
            "/properties/accounts/additionalProperties/properties",
            policy::ACCOUNT_KEYS,
            "[accounts.a]\n",
        ),
        (
            "/properties/accounts/additionalProperties/properties/oauth/properties",
            policy::OAUTH_KEYS,
            "[accounts.a.oauth]\n",
        ),
        (
            "/properties/accounts/additionalProperties/properties/banned_terms/properties",
            policy::TERM_KEYS,
            "[accounts.a.banned_terms]\n",
        ),
        (
            "/properties/banned_terms/properties",
            policy::TERM_KEYS,
            "[banned_terms]\n",
        ),
        (
            "/properties/reviewers/properties",
            policy::REVIEWER_KEYS,
            "[reviewers]\n",
        ),
        (
            "/properties/quiet_hours/items/properties",
            policy::WINDOW_KEYS,
            "[[quiet_hours]]\n",
        ),
        (
            "/properties/blackouts/items/properties",
            policy::BLACKOUT_KEYS,
            "[[blackouts]]\n",
        ),
        (
            "/properties/freeze/properties",
            policy::FREEZE_KEYS,
            "[freeze]\n",
        ),
        (
            "/properties/links/properties",
            policy::LINK_KEYS,
            "[links]\n",
        ),
        (
            "/properties/media/properties",
            policy::MEDIA_RULE_KEYS,
            "[media]\n",
        ),
        (
            "/properties/limits/properties",
            policy::LIMIT_KEYS,
            "[limits]\n",
        ),
        (
            "/properties/tests/items/properties",
            policy::TEST_KEYS,
            "[[tests]]\n",
        ),
    ]
}

fn post_tables() -> Vec<(&'static str, &'static [&'static str], &'static str)> {
    vec![
        ("/properties", post::POST_KEYS, ""),
        (
            "/properties/media/items/properties",
            post::MEDIA_KEYS,
            "[[media]]\n",
        ),
        (
            "/properties/approvals/items/properties",
            post::APPROVAL_KEYS,
            "[[approvals]]\n",
        ),
        (
            "/properties/thread/items/properties",
            post::THREAD_KEYS,
            "[[thread]]\n",
        ),
        (
            "/properties/thread/items/properties/media/items/properties",
            post::MEDIA_KEYS,
            "[[thread]]\n[[thread.media]]\n",
        ),
    ]
}

fn keys_at(schema: &Value, pointer: &str) -> Vec<String> {
    let mut keys: Vec<String> = schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no {pointer}"))
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    keys.sort();
    keys
}

fn unknown_key(diagnostics: &[Diagnostic], key: &str) -> bool {
    let message = format!("unknown key `{key}`");
    diagnostics.iter().any(|d| d.message.starts_with(&message))
}

#[test]
fn the_policy_schema_lists_every_key_the_reader_takes_and_no_other() {
    let schema = policy_schema();
    let tables = policy_tables();
    for (pointer, table, prefix) in &tables {
        let keys = keys_at(&schema, pointer);
        assert_eq!(keys, sorted(table), "{pointer}");
        for key in &keys {
            // A key the schema describes is one the reader takes there ...
            let text = format!("{prefix}{key} = 0\n");
            let (_, d) = read_policy("gate.toml", &text);
            assert!(!unknown_key(&d, key), "{text:?}: {d:?}");
            // ... and is closed to keys it does not describe, as the reader is.
            let object = schema
                .pointer(pointer.trim_end_matches("/properties"))
                .unwrap();
            assert_eq!(object["additionalProperties"], false, "{pointer}");
            assert!(
                object["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty())
            );
        }
        let (_, d) = read_policy("gate.toml", &format!("{prefix}colour = 0\n"));
        assert!(unknown_key(&d, "colour"), "{prefix:?}: {d:?}");
    }
    // Every object the schema closes is one of these tables: nothing is described twice or
    // left out.
    let mut closed = Vec::new();
    closed_objects(&schema, String::new(), &mut closed);
    let mut expected: Vec<String> = tables
        .iter()
        .map(|(p, _, _)| p.trim_end_matches("/properties").to_owned())
        .collect();
    expected.sort();
    closed.sort();
    assert_eq!(closed, expected);
}

#[test]
fn the_post_schema_lists_every_key_the_reader_takes_and_no_other() {
    let schema = post_schema();
    let policy = example_policy();
    let tables = post_tables();
    for (pointer, table, prefix) in &tables {
        let keys = keys_at(&schema, pointer);
        assert_eq!(keys, sorted(table), "{pointer}");
        for key in keys.iter().map(String::as_str).chain(["colour"]) {
            let text = format!("{prefix}{key} = 0\n");
            let d = gate::inputs::parse_post(
                &Source::new("x.post.toml", text.clone()),
                Path::new("x.post.toml"),
                &policy,
            )
            .err()
            .unwrap_or_default();
            assert_eq!(unknown_key(&d, key), key == "colour", "{text:?}: {d:?}");
        }
    }
    let mut closed = Vec::new();
    closed_objects(&schema, String::new(), &mut closed);
    closed.sort();
    let mut expected: Vec<String> = tables
        .iter()
        .map(|(p, _, _)| p.trim_end_matches("/properties").to_owned())
        .collect();
    expected.sort();
    assert_eq!(closed, expected);
}

/// The pointer of every subschema with `additionalProperties: false` (the conditional
/// `allOf` branches only narrow what the tables take and are left out).
fn closed_objects(schema: &Value, at: String, out: &mut Vec<String>) {
    let Value::Object(map) = schema else { return };
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        out.push(at.clone());
    }
    for (k, v) in map {
        if k == "allOf" {
            continue;
        }
        match v {
            Value::Object(_) => closed_objects(v, format!("{at}/{k}"), out),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    closed_objects(item, format!("{at}/{k}/{i}"), out);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_key_has_a_description() {
    for schema in [policy_schema(), post_schema()] {
        let mut missing = Vec::new();
        described(&schema, String::new(), &mut missing);
        assert_eq!(missing, Vec::<String>::new());
    }
}

fn described(schema: &Value, at: String, missing: &mut Vec<String>) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::Object(properties)) = map.get("properties")
        && !at.contains("/allOf/")
    {
        for (key, sub) in properties {
            if sub["description"].as_str().is_none_or(|d| d.len() <= 10) {
                missing.push(format!("{at}/properties/{key}"));
            }
        }
    }
    for (k, v) in map {
        match v {
            Value::Object(_) => described(v, format!("{at}/{k}"), missing),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    described(item, format!("{at}/{k}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
}
