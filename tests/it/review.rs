//! Signed reviews end to end: `gate digest`, `gate approve`, OpenSSH interop both ways, and
//! the two-person rule.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{Sandbox, keygen, require_tool};

const NOW: &str = "2026-11-23T10:00:00Z";

struct Team {
    s: Sandbox,
    carol: std::path::PathBuf,
    dave: std::path::PathBuf,
    erin: std::path::PathBuf,
    mallory: std::path::PathBuf,
    carol_pub: String,
}

/// A policy needing two reviewers among carol, dave and erin; mallory's key is not listed.
fn team() -> Team {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path().join("keys")).unwrap();
    let keys = s.path().join("keys");
    let (carol, carol_pub) = keygen(&keys, "carol", "");
    let (dave, dave_pub) = keygen(&keys, "dave", "");
    let (erin, erin_pub) = keygen(&keys, "erin", "");
    let (mallory, _) = keygen(&keys, "mallory", "");
    s.write(
        "gate.toml",
        &format!(
            "version = 1\n\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://mastodon.example\"\n\n\
             [banned_terms]\ndeny = [\"layoffs\"]\n\n\
             [reviewers]\nrequired = 2\n[reviewers.keys]\ncarol = \"{carol_pub}\"\ndave = \"{dave_pub}\"\nerin = \"{erin_pub}\"\n"
        ),
    );
    Team {
        s,
        carol,
        dave,
        erin,
        mallory,
        carol_pub,
    }
}

const POST: &str = "# Launch day. Comments and layout must survive approvals.\n\
account = \"brand\"   # the main account\n\
author = \"erin\"\n\
text = \"\"\"\nVersion 2.0 is out today.\n\"\"\"\n";

fn check(t: &Team) -> serde_json::Value {
    let run = t.s.run(&[
        "check",
        "--file",
        "launch.post.toml",
        "--json",
        "--now",
        NOW,
    ]);
    let doc = run.json();
    let code = run.code;
    assert!(code == 0 || code == 6, "{run:?}");
    doc["posts"][0].clone()
}

fn reviewers_finding(post: &serde_json::Value) -> Option<serde_json::Value> {
    post["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "reviewers")
        .cloned()
}

fn approve(t: &Team, key: &Path) -> common::Run {
    t.s.run(&[
        "approve",
        "--file",
        "launch.post.toml",
        "--key",
        key.to_str().unwrap(),
        "--yes",
    ])
}

#[test]
fn two_reviewers_are_needed_and_counted() {
    let t = team();
    t.s.write("launch.post.toml", POST);
    let post = check(&t);
    assert_eq!(post["verdict"], "review");
    let f = reviewers_finding(&post).unwrap();
    assert_eq!(
        (f["required"].as_u64(), f["valid"].as_u64()),
        (Some(2), Some(0))
    );

    let run = approve(&t, &t.carol);
    assert_eq!(run.code, 0, "{run:?}");
    let run = t.s.run(&[
        "check",
        "--file",
        "launch.post.toml",
        "--json",
        "--now",
        NOW,
    ]);
    assert_eq!(run.code, 6, "{run:?}");
    let f = reviewers_finding(&run.json()["posts"][0]).unwrap();
    assert_eq!(
        (f["required"].as_u64(), f["valid"].as_u64()),
        (Some(2), Some(1))
    );

    // The same reviewer again changes nothing.
    let before = t.s.read("launch.post.toml");
    let run = approve(&t, &t.carol);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.s.read("launch.post.toml"), before);

    let run = approve(&t, &t.dave);
    assert_eq!(run.code, 0, "{run:?}");
    let run = t.s.run(&[
        "check",
        "--file",
        "launch.post.toml",
        "--json",
        "--now",
        NOW,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["posts"][0]["verdict"], "allow");
}

#[test]
fn approve_leaves_the_rest_of_the_file_byte_for_byte() {
    let t = team();
    t.s.write("launch.post.toml", POST);
    assert_eq!(approve(&t, &t.carol).code, 0);
    let after = t.s.read("launch.post.toml");
    assert!(
        after.starts_with(POST),
        "the original bytes must be a prefix:\n{after}"
    );
    let appended = &after[POST.len()..];
    assert!(appended.starts_with("\n[[approvals]]\nreviewer = \"carol\"\nsignature = \"\"\"\n-----BEGIN SSH SIGNATURE-----\n"), "{appended}");
    assert!(
        appended.ends_with("-----END SSH SIGNATURE-----\n\"\"\"\n"),
        "{appended}"
    );
    assert_eq!(approve(&t, &t.dave).code, 0);
    assert!(t.s.read("launch.post.toml").starts_with(&after));
}

#[test]
fn editing_after_signing_invalidates_the_approval() {
    let t = team();
    t.s.write("launch.post.toml", POST);
    assert_eq!(approve(&t, &t.carol).code, 0);
    let edited =
        t.s.read("launch.post.toml")
            .replace("Version 2.0 is out today.", "Version 2.0 is out today!");
    t.s.write("launch.post.toml", &edited);
    let f = reviewers_finding(&check(&t)).unwrap();
    assert_eq!(f["valid"].as_u64(), Some(0));
    assert_eq!(f["rejected"][0]["reviewer"], "carol");
    assert_eq!(
        f["rejected"][0]["reason"],
        "signature does not match the post (edited after signing?)"
    );
}

#[test]
fn openssh_signatures_count_and_gate_signatures_verify_in_openssh() {
    require_tool("ssh-keygen");
    let t = team();
    t.s.write("launch.post.toml", POST);
    // gate digest | ssh-keygen -Y sign, pasted into the file by hand.
    let digest = t.s.run(&["digest", "--file", "launch.post.toml"]);
    assert_eq!(digest.code, 0, "{digest:?}");
    assert!(
        digest.stdout.starts_with("gate-post-v1\n"),
        "{}",
        digest.stdout
    );
    let message = t.s.path().join("message");
    std::fs::write(&message, &digest.stdout).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "gate-post", "-f"])
        .arg(&t.dave)
        .stdin(std::fs::File::open(&message).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signature = String::from_utf8(out.stdout).unwrap();
    let with_dave = format!(
        "{POST}\n[[approvals]]\nreviewer = \"dave\"\nsignature = \"\"\"\n{signature}\"\"\"\n"
    );
    t.s.write("launch.post.toml", &with_dave);
    let f = reviewers_finding(&check(&t)).unwrap();
    assert_eq!(f["valid"].as_u64(), Some(1), "{f}");
    assert_eq!(f["reviewers"], serde_json::json!(["dave"]));

    // gate approve's signature verifies with ssh-keygen -Y verify.
    assert_eq!(approve(&t, &t.carol).code, 0);
    let file = t.s.read("launch.post.toml");
    let armour = file
        .rsplit("signature = \"\"\"\n")
        .next()
        .unwrap()
        .split("\"\"\"")
        .next()
        .unwrap();
    let sig = t.s.write("carol.sig", armour);
    let signers =
        t.s.write("allowed_signers", &format!("carol {}\n", t.carol_pub));
    let verify = |message_file: &Path| {
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", "gate-post", "-I", "carol", "-f"])
            .arg(&signers)
            .arg("-s")
            .arg(&sig)
            .stdin(std::fs::File::open(message_file).unwrap())
            .output()
            .unwrap()
    };
    let out = verify(&message);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tampered = t.s.write("tampered", &digest.stdout.replace("2.0", "3.0"));
    assert!(!verify(&tampered).status.success());

    let post = check(&t);
    assert_eq!(post["verdict"], "allow", "{post}");
}

#[test]
fn the_author_cannot_approve_their_own_post() {
    let t = team();
    t.s.write("launch.post.toml", POST);
    let run = approve(&t, &t.erin);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        "  hint: another listed reviewer has to sign it"
    );
    assert_eq!(t.s.read("launch.post.toml"), POST);
}

#[test]
fn the_author_cannot_approve_under_her_name_in_another_case() {
    // `gate approve` refuses by the same rule the check of approvals counts by (case folded
    // beyond ASCII), so it never signs an approval that would not count.
    let t = team();
    let policy = t.s.read("gate.toml").replace("\nerin = ", "\n\"zoë\" = ");
    t.s.write("gate.toml", &policy);
    let post = POST.replace("author = \"erin\"", "author = \"ZOË\"");
    t.s.write("launch.post.toml", &post);
    let run = approve(&t, &t.erin);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("`zoë` wrote this post and cannot approve it"),
        "{run:?}"
    );
    assert_eq!(t.s.read("launch.post.toml"), post);
}

#[test]
fn approve_refuses_an_unlisted_key() {
    let t = team();
    t.s.write("launch.post.toml", POST);
    let run = approve(&t, &t.mallory);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: the key `"), "{}", run.stderr);
    assert!(run.stderr.contains("` is not listed in the policy's `[reviewers.keys]`\n  hint: ask for its public key to be added: ssh-ed25519 "), "{}", run.stderr);
    assert_eq!(t.s.read("launch.post.toml"), POST);
}

#[test]
fn approve_refuses_denied_content_unless_forced() {
    let t = team();
    let denied = POST.replace("Version 2.0 is out today.", "Layoffs start today.");
    t.s.write("launch.post.toml", &denied);
    let run = approve(&t, &t.carol);
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(t.s.read("launch.post.toml"), denied);
    let run = t.s.run(&[
        "approve",
        "--file",
        "launch.post.toml",
        "--key",
        t.carol.to_str().unwrap(),
        "--yes",
        "--force",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn approve_unattended_without_yes_refuses() {
    let t = team();
    t.s.write("launch.post.toml", POST);
    let run = t.s.run(&[
        "approve",
        "--file",
        "launch.post.toml",
        "--key",
        t.carol.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.ends_with("error: refusing to sign without confirmation: stdin is not a terminal\n  hint: pass `--yes` once you have read the post\n"), "{}", run.stderr);
    assert_eq!(t.s.read("launch.post.toml"), POST);
}

#[test]
fn a_passphrase_key_unattended_is_a_clear_error() {
    let t = team();
    let (locked, locked_pub) = keygen(&t.s.path().join("keys"), "locked", "secret passphrase");
    // Listed: an unlisted key is refused before its passphrase matters.
    let policy = t.s.read("gate.toml");
    t.s.write("gate.toml", &format!("{policy}locked = \"{locked_pub}\"\n"));
    t.s.write("launch.post.toml", POST);
    let run = t.s.run(&[
        "approve",
        "--file",
        "launch.post.toml",
        "--key",
        locked.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("needs its passphrase and stdin is not a terminal"),
        "{}",
        run.stderr
    );
}

#[test]
fn digest_is_stable_and_documented() {
    let t = team();
    t.s.write("launch.post.toml", POST);
    let run = t.s.run(&["digest", "--file", "launch.post.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "gate-post-v1\naccounts 1\naccount 5\nbrand\ntext 26\nVersion 2.0 is out today.\n\nmedia 0\n"
    );
    // CRLF line endings sign the same bytes.
    t.s.write("launch.post.toml", &POST.replace('\n', "\r\n"));
    let crlf = t.s.run(&["digest", "--file", "launch.post.toml"]);
    assert_eq!(crlf.stdout, run.stdout);
}

/// The passphrase is asked for after the post and the name it is signed as are shown, and
/// after the reviewer said yes: never for a post they have not seen.
#[test]
fn approve_shows_the_post_and_the_signer_before_the_passphrase() {
    require_tool("script");
    let t = team();
    let (lena, lena_pub) = keygen(&t.s.path().join("keys"), "lena", "lena passphrase");
    let policy = t.s.read("gate.toml");
    t.s.write("gate.toml", &format!("{policy}lena = \"{lena_pub}\"\n"));
    t.s.write("launch.post.toml", POST);
    let mut cmd = t.s.program("sh");
    cmd.arg("-c").arg(format!(
        "(sleep 1; printf 'y\\r'; sleep 1; printf 'lena passphrase\\r') | timeout 20 script -qec \"\\\"$GATE\\\" approve --file launch.post.toml --key {}\" /dev/null",
        lena.display()
    ));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let signer = stdout.find("signing as: `lena`").expect(&stdout);
    let text = stdout.find("Version 2.0 is out today.").expect(&stdout);
    let question = stdout.find("Sign this post as `lena`?").expect(&stdout);
    let passphrase = stdout.find("Passphrase for").expect(&stdout);
    assert!(
        signer < question && text < question && question < passphrase,
        "{stdout}"
    );
    assert!(t.s.read("launch.post.toml").contains("reviewer = \"lena\""));
}
