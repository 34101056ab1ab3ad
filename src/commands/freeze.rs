//! `gate freeze` and `gate unfreeze`: the crisis switch for this machine.

use chrono::Utc;

use crate::audit::{self, Entry, Event};
use crate::cli::FreezeArgs;
use crate::commands::{Ctx, print_json};
use crate::error::{Code, Error};
use crate::state;

pub fn freeze(ctx: &Ctx, args: &FreezeArgs) -> Result<Code, Error> {
    if args.reason.trim().is_empty() {
        return Err(Error::usage("`--reason` is empty")
            .with_hint("say why posting stops, e.g. `--reason \"account compromised\"`"));
    }
    // The freeze takes effect first: a failing audit write must not keep posting open.
    let path = state::write_freeze(&ctx.env, args.reason.trim(), Utc::now())?;
    let mut entry = Entry::new(Event::Freeze);
    entry.text = Some(args.reason.trim().to_owned());
    if let Err(e) = audit::record(&ctx.env, &entry) {
        // The freeze holds: say so first, so nobody in a crisis reads "failed" and thinks
        // posting is still open.
        let why = anstream::adapter::strip_str(&e.render()).to_string();
        let why = why.trim_start_matches("error: ").lines().next().unwrap_or_default().to_owned();
        if ctx.global.json {
            print_json(&serde_json::json!({"frozen": true, "reason": args.reason.trim(), "audited": false, "audit_error": why}))?;
        }
        return Err(Error::other(format!(
            "frozen, but the freeze is not in the audit trail: {why}"
        ))
        .with_hint(format!(
            "the freeze is in force (`{}`): every `gate post` here stops; repair the journal, then record it again with `gate freeze`",
            path.display()
        )));
    }
    if ctx.global.json {
        print_json(&serde_json::json!({"frozen": true, "reason": args.reason.trim()}))?;
    } else {
        ctx.note(&format!(
            "frozen: every `gate post` on this machine now stops (exit 7); state in `{}`",
            path.display()
        ));
        ctx.note("  hint: lift it with `gate unfreeze`");
    }
    Ok(Code::Ok)
}

pub fn unfreeze(ctx: &Ctx) -> Result<Code, Error> {
    // Lifting a freeze is recorded first: no unaudited unfreeze.
    if let Some(freeze) = state::read_freeze(&ctx.env)? {
        let mut entry = Entry::new(Event::Unfreeze);
        entry.text = Some(freeze.reason);
        audit::record(&ctx.env, &entry)?;
    }
    let was = state::remove_freeze(&ctx.env)?;
    if ctx.global.json {
        print_json(&serde_json::json!({"frozen": false, "was_frozen": was}))?;
    } else if was {
        ctx.note("unfrozen: posting from this machine is allowed again");
    } else {
        ctx.note("this machine was not frozen");
    }
    Ok(Code::Ok)
}
