//! `gate auth logout ACCOUNT`: revokes the sign-in at the server (unless `--offline`), then
//! deletes it from the keychain whatever the server said.

use serde_json::json;

use super::{account, audited};
use crate::audit::Event;
use crate::cli::AuthLogoutArgs;
use crate::commands::Ctx;
use crate::credential::{self, Credential};
use crate::error::{Code, Error};
use crate::keychain::Keychain;

pub fn logout(ctx: &Ctx, args: &AuthLogoutArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let account = account(&policy, &args.account)?;
    let keychain = Keychain::open(&ctx.env)?;
    let user = credential::user(account);
    let stored = keychain.get(&user)?;
    let credential = stored
        .as_ref()
        .and_then(|s| Credential::from_secret(s).ok());
    // Revoke first, delete whatever happens: a token that cannot be revoked still leaves.
    let revoked: Option<Result<(), Error>> = match &credential {
        Some(c) if !args.offline => {
            crate::platforms::sign_in_of(account.platform).revoke(&keychain, account, c)
        }
        _ => None,
    };
    let removed = keychain.delete(&user)?;
    audited(ctx, Event::Logout, &policy, account)?;
    let name = &account.name;
    let revoke_error = match &revoked {
        Some(Err(e)) => Some(e.message()),
        _ => None,
    };
    if ctx.global.json {
        ctx.print.json(&json!({
            "account": name,
            "user": user,
            "removed": removed,
            "keychain": keychain.backend().id(),
            "revoked": matches!(revoked, Some(Ok(()))),
            "revoke_error": revoke_error,
        }))?;
    } else if removed {
        match &revoked {
            Some(Ok(())) => ctx.print.note(&format!(
                "revoked the token for `{name}` at {}",
                credential::host(&account.server)
            )),
            Some(Err(_)) => ctx.print.note(&format!(
                "could not revoke the token for `{name}` at the server: {}",
                revoke_error.as_deref().unwrap_or("")
            )),
            None => {}
        }
        ctx.print.note(&format!(
            "removed the token for `{name}` from {}",
            keychain.backend().place()
        ));
        if !matches!(revoked, Some(Ok(()))) {
            ctx.print.note("  note: the token was not revoked at the server; revoke it in the account's settings");
        }
    } else {
        ctx.print.note(&format!(
            "no token for `{name}` was stored in {}",
            keychain.backend().place()
        ));
    }
    Ok(Code::Ok)
}
