//! `gate auth login ACCOUNT`: signs in the way the flags say, through the account's network.

use serde_json::json;

use super::{Terminal, account, audited};
use crate::audit::Event;
use crate::cli::AuthLoginArgs;
use crate::commands::Ctx;
use crate::credential;
use crate::error::{Code, Error};
use crate::keychain::Keychain;
use crate::platforms::signin::How;

pub fn login(ctx: &Ctx, args: &AuthLoginArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let account = account(&policy, &args.account)?;
    let how = if args.app_password {
        How::AppPassword
    } else if args.with_token {
        How::Token
    } else {
        How::Browser {
            client_secret: args.client_secret.as_deref(),
        }
    };
    let network = crate::platforms::sign_in_of(account.platform);
    network.check(account, how)?;
    // Open the keychain first: no point signing in when the result cannot be kept.
    let keychain = Keychain::open(&ctx.env)?;
    let talk = Terminal {
        ctx,
        no_browser: args.no_browser,
        timeout: args.timeout,
    };
    let signed = network.sign_in(&talk, &keychain, account, how)?;
    // Stored as the account's, replacing what was there, and the login audited.
    let user = credential::user(account);
    let replaced = keychain.get(&user)?.is_some();
    keychain.set(&user, &signed.credential.to_secret())?;
    audited(ctx, Event::Login, &policy, account)?;
    if ctx.global.json {
        let mut doc = json!({
            "account": account.name,
            "user": user,
            "stored_in": keychain.backend().id(),
            "replaced": replaced,
        });
        for (key, value) in signed.json {
            doc[key] = value;
        }
        ctx.print.json(&doc)?;
    } else {
        let verb = if replaced {
            "replaced the token"
        } else {
            "stored a token"
        };
        ctx.print.note(
            &signed
                .said
                .replace("{verb}", verb)
                .replace("{place}", keychain.backend().place())
                .replace("{user}", &user),
        );
    }
    Ok(Code::Ok)
}
