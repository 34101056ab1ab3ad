//! `gate retract`: delete a post that gate sent. The journal is the only source of what may
//! be retracted: a post gate did not send is refused before the keychain or the network is
//! touched. The walk, under the delivery's lock: find the delivery (by id or URL, or the
//! account's latest with `--last`) → already retracted: say so, exit 0 → confirm (a terminal,
//! or `--yes`) → refreshed credential → `Platform::delete` → journal `retracted`.

use std::io::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::cli::RetractArgs;
use crate::commands::{Ctx, print_json};
use crate::core::policy::Account;
use crate::error::{Code, Error};
use crate::platforms::{self, SendError};
use crate::store::{Access, Delivery, State, Store};

/// How long to wait for a `gate post` that holds the same delivery.
const LOCK_WAIT: Duration = Duration::from_secs(300);

pub fn run(ctx: &Ctx, args: &RetractArgs) -> Result<Code, Error> {
    let policy = ctx.load_policy(None)?;
    let account = super::named_account(&policy, &args.account, "")?;
    let name = account.name.as_str();
    let wanted = args.post.as_deref().map(|p| p.trim().trim_end_matches('/'));
    let unknown = || {
        let what = wanted.map_or_else(
            || format!("gate has sent no post to `{name}`"),
            |p| format!("gate did not send `{p}` to `{name}`"),
        );
        Error::usage(format!("{what}: gate only retracts posts it sent")).with_hint(
            "give the id or URL that `gate post` printed; delete a post made elsewhere on the network itself",
        )
    };
    let store = ctx.store(Some(&policy), Access::Write)?;
    let store: &dyn Store = store.as_ref();
    let found = match wanted {
        Some(p) => store.find_sent(name, p)?,
        None => store.last_sent(name)?,
    };
    let Some(row) = found else {
        return Err(unknown());
    };
    if row.state == State::Retracted {
        return already(ctx, &row);
    }

    // Unattended without `--yes`: refuse before the keychain or the network is touched.
    if !args.yes && !ctx.env.stdin_is_terminal {
        return Err(Error::usage(
            "refusing to retract without confirmation: stdin is not a terminal",
        )
        .with_hint("pass `--yes` to retract from a script"));
    }
    if !args.yes {
        show(&row, store.sent_text(&row.digest, name).as_deref());
        let confirmed = crate::commands::confirm(format!("Delete this post from `{name}`?"))?;
        if !confirmed {
            ctx.note("not retracted");
            return Ok(Code::Failure);
        }
    }

    // One process at a time per delivery: the same lock `gate post` sends under.
    let _lock = store.lock_delivery(&row.digest, name, LOCK_WAIT)?;
    let Some(row) = store.get(&row.digest, name)? else {
        return Err(unknown());
    };
    if row.state == State::Retracted {
        return already(ctx, &row);
    }
    let id = row.remote_id.clone().unwrap_or_default();
    let credential = crate::platforms::credential_for(&ctx.env, account)?;
    let platform = platforms::connect(account, credential, crate::http::client()?)?;
    let gone_before = match platform.delete(&id) {
        Ok(()) => false,
        // Nothing to delete: it is gone already (deleted on the network, or by an earlier
        // retract whose answer was lost).
        Err(SendError::Refused { status: 404, .. }) => true,
        Err(e) => return Err(delete_error(account, e)),
    };
    let now = Utc::now();
    let mut entry = crate::audit::Entry::new(crate::audit::Event::Retract);
    entry.account = Some(name.to_owned());
    entry.digest = Some(row.digest.clone());
    entry.url = row.url.clone();
    entry.policy_sha256 = Some(policy.sha256.clone());
    store.mark_retracted(&row.digest, name, &entry, now)?;
    if gone_before {
        ctx.note("the network no longer had this post; recorded as retracted");
    }
    report(ctx, &row, now, false)
}

fn already(ctx: &Ctx, row: &Delivery) -> Result<Code, Error> {
    let at = row.retracted_at.unwrap_or(DateTime::UNIX_EPOCH);
    report(ctx, row, at, true)
}

fn report(ctx: &Ctx, row: &Delivery, at: DateTime<Utc>, earlier: bool) -> Result<Code, Error> {
    let url = row.url.clone().unwrap_or_default();
    let at = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    if ctx.global.json {
        print_json(&json!({
            "retracted": {
                "account": row.account,
                "id": row.remote_id,
                "url": url,
                "sent_at": row.sent_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                "retracted_at": at,
                "earlier": earlier,
            }
        }))?;
    } else {
        if earlier {
            ctx.note(&format!(
                "already retracted from `{}` at {at}: {url}",
                row.account
            ));
        } else {
            ctx.note(&format!("retracted from `{}`: {url}", row.account));
        }
        let _ = writeln!(std::io::stdout(), "{url}");
    }
    Ok(Code::Ok)
}

/// The post about to be deleted, on stderr before the question: its text as sent (from the
/// audit trail), then where and when.
fn show(row: &Delivery, text: Option<&str>) {
    let mut err = anstream::stderr().lock();
    match text {
        Some(text) => {
            let _ = writeln!(err, "{text}");
            let _ = writeln!(err, "---");
        }
        None => {
            let _ = writeln!(err, "(the audit trail holds no text for this post)\n---");
        }
    }
    let _ = writeln!(err, "account: `{}` ({})", row.account, row.platform);
    let _ = writeln!(err, "post:    {}", row.url.as_deref().unwrap_or("?"));
    if let Some(t) = row.sent_at {
        let _ = writeln!(
            err,
            "sent:    {}",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
    }
}

/// A failed delete as gate's error: 401 → exit 8, the rest exit 9.
fn delete_error(account: &Account, e: SendError) -> Error {
    let name = &account.name;
    match e {
        SendError::Credentials { message } => Error::credentials(format!("`{name}`: {message}"))
            .with_hint(format!(
                "the token was rejected; run `gate auth login {name}`; nothing was retracted"
            )),
        SendError::Refused { message, .. } | SendError::RateLimited { message, .. } => {
            Error::network(format!("`{name}`: {message}")).with_hint(
                "the network did not delete the post; run the same `gate retract` again later",
            )
        }
        SendError::Unknown { message } => Error::network(format!("`{name}`: {message}"))
            .with_hint(
                "the post may or may not be deleted; run the same `gate retract` again: it is safe to repeat",
            ),
    }
}
