//! `gate freeze` and `gate unfreeze`: the crisis switch for every `gate post` that uses this
//! state folder (`$GATE_HOME`, else `$XDG_STATE_HOME/gate`, else `~/.local/state/gate`).

use chrono::Utc;

use crate::audit::{Entry, Event};
use crate::cli::FreezeArgs;
use crate::commands::Ctx;
use crate::error::{Code, Error};
use crate::state;
use crate::store::{Access, LocalFreeze};

pub fn freeze(ctx: &Ctx, args: &FreezeArgs) -> Result<Code, Error> {
    if args.reason.trim().is_empty() {
        return Err(Error::usage("`--reason` is empty")
            .with_hint("say why posting stops, e.g. `--reason \"account compromised\"`"));
    }
    let store = ctx.store(None, Access::Write)?;
    // A second freeze replaces the first one's reason: said, never silent.
    let earlier = store.freeze()?;
    // The freeze takes effect first: a failing audit write must not keep posting open.
    store.set_freeze(&LocalFreeze {
        reason: args.reason.trim().to_owned(),
        since: Some(Utc::now()),
        by: crate::store::freezer(&ctx.env),
    })?;
    if let Some(earlier) = &earlier
        && !ctx.global.json
    {
        ctx.print.note(&format!(
            "note: this replaces the freeze in force{}{}: {}",
            earlier
                .since
                .map(|t| format!(
                    " since {}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ))
                .unwrap_or_default(),
            earlier
                .by
                .as_ref()
                .map(|b| format!(" by {b}"))
                .unwrap_or_default(),
            earlier.reason
        ));
    }
    let replaced = earlier
        .as_ref()
        .map(|e| serde_json::json!({"reason": e.reason, "since": e.since, "by": e.by}));
    let mut entry = Entry::new(Event::Freeze);
    entry.text = Some(args.reason.trim().to_owned());
    if let Err(e) = store.record(&entry) {
        // The freeze holds: say so first, so nobody in a crisis reads "failed" and thinks
        // posting is still open.
        let why = anstream::adapter::strip_str(&e.render()).to_string();
        let why = why
            .trim_start_matches("error: ")
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        if ctx.global.json {
            ctx.print.json(
                &serde_json::json!({"frozen": true, "reason": args.reason.trim(), "audited": false, "audit_error": why}),
            )?;
        }
        return Err(Error::other(format!(
            "frozen, but the freeze is not in the audit trail: {why}"
        ))
        .with_hint(format!(
            "the freeze is in force (`{}`): every `gate post` here stops; repair the journal, then record it again with `gate freeze`",
            freeze_place(store.as_ref())
        )));
    }
    if ctx.global.json {
        let mut doc = serde_json::json!({"frozen": true, "reason": args.reason.trim()});
        if let Some(replaced) = replaced {
            doc["replaced"] = replaced;
        }
        ctx.print.json(&doc)?;
    } else {
        if store.backend() == "sqlite" {
            ctx.print.note(&format!(
                "frozen: every `gate post` that uses the state folder `{}` now stops (exit 7)",
                state::dir(&ctx.env)?.display()
            ));
        } else {
            ctx.print.note(&format!(
                "frozen: every `gate post` that uses the team store `{}` now stops (exit 7), on every machine",
                store.location()
            ));
        }
        ctx.print.hint("lift it with `gate unfreeze`; to stop every machine that syncs the policy, add `[freeze] reason = \"...\"` to it");
    }
    Ok(Code::Ok)
}

pub fn unfreeze(ctx: &Ctx) -> Result<Code, Error> {
    let store = ctx.store(None, Access::Write)?;
    // Lifting a freeze is recorded first: no unaudited unfreeze.
    if let Some(freeze) = store.freeze()? {
        let mut entry = Entry::new(Event::Unfreeze);
        entry.text = Some(freeze.reason);
        store.record(&entry)?;
    }
    let was = store.clear_freeze()?;
    let place = match store.backend() {
        "sqlite" => format!("the state folder `{}`", state::dir(&ctx.env)?.display()),
        _ => format!("the team store `{}`", store.location()),
    };
    // `gate unfreeze` lifts only `gate freeze`: a policy's `[freeze]` still stops every post.
    let policy = ctx.global.policy.as_deref();
    let policy_freeze = crate::inputs::locate_policy(policy, &ctx.env).and_then(|(path, _)| {
        let (policy, _) = crate::inputs::load_policy(&path);
        policy.and_then(|p| p.freeze).map(|f| (path, f.reason))
    });
    if ctx.global.json {
        let mut doc = serde_json::json!({"frozen": policy_freeze.is_some(), "was_frozen": was});
        if let Some((path, reason)) = &policy_freeze {
            doc["policy_freeze"] =
                serde_json::json!({"policy": path.display().to_string(), "reason": reason});
        }
        ctx.print.json(&doc)?;
    } else if was {
        ctx.print
            .note(&format!("unfrozen: {place} no longer stops posting"));
    } else {
        ctx.print.note(&format!(
            "nothing to unfreeze: `gate freeze` is not in force in {place}"
        ));
    }
    if let Some((path, reason)) = policy_freeze
        && !ctx.global.json
    {
        ctx.print.warning(
            &format!(
                "posting is still frozen by the policy `{}`: {reason}",
                path.display()
            ),
            Some("`gate unfreeze` lifts only `gate freeze`; remove `[freeze]` from the policy to post again"),
        );
    }
    Ok(Code::Ok)
}

/// Where the freeze is kept, for messages: the SQLite store's freeze file, or the team store.
fn freeze_place(store: &dyn crate::store::Store) -> String {
    match store.backend() {
        "sqlite" => std::path::Path::new(&store.location())
            .with_file_name(crate::store::sqlite::FREEZE_FILE)
            .display()
            .to_string(),
        _ => store.location(),
    }
}
