//! `gate approve`: a reviewer signs a post file's exact content and appends the approval.
//!
//! The approval is appended to the file's bytes as they are, so comments and layout above it
//! survive untouched; toml_edit formats the new entry and proves the result still parses.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::audit;
use crate::cli::ApproveArgs;
use crate::commands::Ctx;
use crate::core::evaluate::{Context, Engine, Severity, overall};
use crate::core::reviewers;
use crate::core::style::STYLES;
use crate::error::{Code, Error, io_reason};
use crate::output;

pub fn run(ctx: &Ctx, args: &ApproveArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    if policy.reviewer_keys.is_empty() {
        return Err(Error::usage("the policy lists no reviewers").with_hint(
            "add `[reviewers.keys]` with each reviewer's `ssh-ed25519 ...` public key",
        ));
    }
    let post = crate::inputs::load_post(&args.file, &policy)
        .map_err(|diagnostics| Error::Input { diagnostics })?;
    let key_path = key_path(ctx, args)?;
    // The public half names the reviewer without the passphrase, which is asked for only
    // after the post and the name it is signed as have been shown.
    let key = read_private_key(&key_path)?;
    let Some(reviewer) = reviewers::reviewer_for_key(&policy.reviewer_keys, key.public_key())
    else {
        return Err(Error::usage(format!(
            "the key `{}` is not listed in the policy's `[reviewers.keys]`",
            key_path.display()
        ))
        .with_hint(format!(
            "ask for its public key to be added: {}",
            key.public_key().to_openssh().unwrap_or_default()
        )));
    };
    let reviewer = reviewer.to_owned();

    let accounts: Vec<_> = post
        .accounts
        .iter()
        .filter_map(|a| policy.account(a))
        .collect();
    let engine = Engine::new(&policy);
    let store = ctx.store(Some(&policy), crate::store::Access::Write)?;
    let context = Context {
        now: Utc::now(),
        local_freeze: store.freeze()?,
        sends: crate::core::limits::Sends::default(),
        instances: std::collections::BTreeMap::new(),
    };
    let evaluations = engine.evaluate(&post, &accounts, &context);
    let message = post.digest_message(&post.accounts);

    let outcome = reviewers::verify_approvals(
        &policy.reviewer_keys,
        post.author.as_deref(),
        message.as_bytes(),
        &post.approvals,
    );
    if outcome.valid.contains(&reviewer) {
        ctx.print.note(&format!(
            "`{reviewer}` has already approved this exact content of `{}`",
            args.file.display()
        ));
        return Ok(Code::Ok);
    }
    if reviewers::is_author(
        &policy.reviewer_keys,
        post.author.as_deref(),
        &reviewer,
        key.public_key().key_data(),
    ) {
        return Err(Error::usage(format!(
            "`{reviewer}` wrote this post and cannot approve it"
        ))
        .with_hint("another listed reviewer has to sign it"));
    }

    if !ctx.global.quiet {
        let mut err = String::new();
        let _ = writeln!(
            err,
            "{}post{:#}: {}",
            STYLES.bold,
            STYLES.bold,
            args.file.display()
        );
        let _ = writeln!(err, "signing as: `{reviewer}`");
        let _ = writeln!(err, "accounts: {}", post.accounts.join(", "));
        for (i, item) in post.items.iter().enumerate() {
            if post.thread {
                let _ = writeln!(err, "item {i} of the thread:");
            }
            for m in &item.media {
                let _ = writeln!(
                    err,
                    "media: {} ({} bytes, sha256 {}) alt: {}",
                    m.written,
                    m.bytes,
                    m.sha256,
                    m.alt.as_deref().unwrap_or("(none)")
                );
            }
            let _ = writeln!(err, "text:");
            for line in item.text.lines() {
                let _ = writeln!(err, "  | {line}");
            }
        }
        for e in &evaluations {
            err.push_str(&output::evaluation(&post, e, ctx.verbosity()));
        }
        ctx.print.say(err);
    }

    let denied = evaluations
        .iter()
        .flat_map(|e| &e.findings)
        .any(|f| f.severity == Severity::Deny);
    if denied && !args.force {
        ctx.print.error(
            &Error::other("content rules deny this post; not signing")
                .with_hint("fix the post, or pass `--force` to sign it anyway"),
        );
        return Ok(Code::Deny);
    }
    if overall(&evaluations) == crate::core::evaluate::Verdict::Frozen {
        ctx.print
            .note("note: posting is frozen; your approval will count once the freeze is lifted");
    }

    if !args.yes {
        if !ctx.env.stdin_is_terminal {
            return Err(Error::usage(
                "refusing to sign without confirmation: stdin is not a terminal",
            )
            .with_hint("pass `--yes` once you have read the post"));
        }
        let question = format!("Sign this post as `{reviewer}`?");
        let confirmed = crate::commands::confirm(question)?;
        if !confirmed {
            ctx.print.note("not signed");
            return Ok(Code::Failure);
        }
    }

    let key = unlock(ctx, key, &key_path)?;
    let signature = reviewers::sign(&key, message.as_bytes())
        .map_err(|e| Error::other(format!("cannot sign: {e}")))?;
    append_approval(&args.file, &reviewer, &signature)?;

    // Read the file back: the approval must parse and count, or something is badly wrong.
    let reread = crate::inputs::load_post(&args.file, &policy)
        .map_err(|diagnostics| Error::Input { diagnostics })?;
    let check = reviewers::verify_approvals(
        &policy.reviewer_keys,
        reread.author.as_deref(),
        message.as_bytes(),
        &reread.approvals,
    );
    if !check.valid.contains(&reviewer) {
        return Err(Error::other(
            "the appended approval does not verify; the post file was changed meanwhile?",
        ));
    }
    let digest =
        crate::core::policy::hex(&<sha2::Sha256 as sha2::Digest>::digest(message.as_bytes()));
    for account in &post.accounts {
        let entry = audit::Entry {
            account: Some(account.clone()),
            digest: Some(digest.clone()),
            text: Some(post.all_text()),
            reviewers: vec![reviewer.clone()],
            policy_sha256: Some(policy.sha256.clone()),
            ..audit::Entry::new(audit::Event::Approve)
        };
        store.record(&entry)?;
    }
    if ctx.global.json {
        let mut doc = serde_json::json!({"file": args.file.display().to_string(), "reviewer": reviewer, "valid": check.valid});
        if post.thread {
            // What was signed, item by item, against each account's limit.
            doc["items"] = evaluations
                .iter()
                .map(|e| serde_json::json!({"account": e.account, "items": e.items}))
                .collect();
        }
        ctx.print.json(&doc)?;
    } else {
        let required = policy.required_reviewers(&accounts);
        ctx.print.note(&format!(
            "approved by `{reviewer}`: {} of {required} required approval{} now valid",
            check.valid.len(),
            if required == 1 { "" } else { "s" }
        ));
    }
    Ok(Code::Ok)
}

fn key_path(ctx: &Ctx, args: &ApproveArgs) -> Result<PathBuf, Error> {
    if let Some(path) = &args.key {
        return Ok(path.clone());
    }
    match ctx.env.var("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(Path::new(home).join(".ssh").join("id_ed25519")),
        None => {
            Err(Error::usage("cannot find your key: `HOME` is not set")
                .with_hint("pass `--key PATH`"))
        }
    }
}

/// The key as the file holds it, still encrypted if it has a passphrase.
fn read_private_key(path: &Path) -> Result<ssh_key::PrivateKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "cannot read the key `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
        .with_hint("pass your OpenSSH ed25519 private key with `--key PATH`")
    })?;
    let key = ssh_key::PrivateKey::from_openssh(&text).map_err(|_| {
        Error::usage(format!(
            "`{}` is not an OpenSSH private key",
            path.display()
        ))
        .with_hint(
            "pass the private half (not `.pub`) of an ed25519 key made by `ssh-keygen -t ed25519`",
        )
    })?;
    Ok(key)
}

/// The key ready to sign: asks for its passphrase (three tries) when it has one.
fn unlock(ctx: &Ctx, key: ssh_key::PrivateKey, path: &Path) -> Result<ssh_key::PrivateKey, Error> {
    if !key.is_encrypted() {
        return Ok(key);
    }
    if !ctx.env.stdin_is_terminal {
        return Err(Error::usage(format!(
            "the key `{}` needs its passphrase and stdin is not a terminal",
            path.display()
        ))
        .with_hint("run `gate approve` on a terminal"));
    }
    for _ in 0..3 {
        let passphrase = dialoguer::Password::new()
            .with_prompt(format!("Passphrase for {}", path.display()))
            .interact()
            .map_err(|e| Error::other(format!("cannot read the passphrase: {e}")))?;
        if let Ok(key) = key.decrypt(passphrase.as_bytes()) {
            return Ok(key);
        }
        ctx.print.say("wrong passphrase\n");
    }
    Err(Error::usage("wrong passphrase three times; not signed"))
}

/// Appends one `[[approvals]]` entry after the file's last byte and writes it back atomically.
fn append_approval(path: &Path, reviewer: &str, signature: &str) -> Result<(), Error> {
    let original = std::fs::read_to_string(path).map_err(|e| {
        Error::other(format!(
            "cannot read `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    let doc: toml_edit::DocumentMut = original
        .parse()
        .map_err(|e| Error::other(format!("cannot parse `{}` again: {e}", path.display())))?;
    let newline = if original.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let updated = if matches!(doc.get("approvals"), Some(toml_edit::Item::Value(_))) {
        // `approvals = [...]` written inline: only toml_edit can add to it.
        let mut doc = doc;
        let mut entry = toml_edit::InlineTable::new();
        entry.insert("reviewer", reviewer.into());
        entry.insert("signature", signature.into());
        if let Some(array) = doc["approvals"].as_array_mut() {
            array.push(entry);
        }
        doc.to_string()
    } else {
        let armour = signature.trim_end().replace('\n', newline);
        let mut text = String::new();
        if !original.is_empty() && !original.ends_with('\n') {
            text.push_str(newline);
        }
        text.push_str(newline);
        text.push_str("[[approvals]]");
        text.push_str(newline);
        text.push_str(&format!(
            "reviewer = {}",
            toml_edit::Value::from(reviewer).to_string().trim()
        ));
        text.push_str(newline);
        text.push_str(&format!(
            "signature = \"\"\"{newline}{armour}{newline}\"\"\""
        ));
        text.push_str(newline);
        let mut updated = original.clone();
        updated.push_str(&text);
        updated
    };
    updated.parse::<toml_edit::DocumentMut>().map_err(|e| {
        Error::other(format!(
            "the approval would make `{}` invalid: {e}",
            path.display()
        ))
    })?;
    crate::state::write_atomic(path, updated.as_bytes())
}
