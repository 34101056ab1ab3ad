//! `gate freeze` and `gate unfreeze`: the crisis switch for this machine.

use chrono::Utc;

use crate::cli::FreezeArgs;
use crate::commands::{Ctx, print_json};
use crate::error::{Code, Error};
use crate::state;

pub fn freeze(ctx: &Ctx, args: &FreezeArgs) -> Result<Code, Error> {
    if args.reason.trim().is_empty() {
        return Err(Error::usage("`--reason` is empty")
            .with_hint("say why posting stops, e.g. `--reason \"account compromised\"`"));
    }
    let path = state::write_freeze(&ctx.env, args.reason.trim(), Utc::now())?;
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
