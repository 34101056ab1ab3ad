//! `gate retract`: delete a post that gate sent. The journal is the only source of what may
//! be retracted: a post gate did not send is refused before the keychain or the network is
//! touched. The walk, under the delivery's lock: find the delivery (by id or URL, or the
//! account's latest with `--last`) → already retracted: say so, exit 0 → confirm (a terminal,
//! or `--yes`) → refreshed credential → `Platform::delete` → journal `retracted`.
//!
//! `--last` on a thread (SPEC §8) deletes every item gate sent of it, the last item first, so
//! no reply is ever left without its parent while the others are still there. Each item is
//! its own delivery: one that fails stops the walk, the ones deleted stay recorded, and the
//! same command again resumes with the item that failed. An id or URL names one item only.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::cli::RetractArgs;
use crate::commands::Ctx;
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
    if wanted.is_none() {
        let thread = store.thread(&row.digest, name)?;
        if thread.len() > 1 {
            return retract_thread(ctx, store, &policy, account, args.yes, thread);
        }
    }
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
        show(
            ctx,
            &row,
            store
                .sent_text(&row.digest, name, row.url.as_deref().unwrap_or_default())
                .as_deref(),
        );
        let confirmed = crate::commands::confirm(format!("Delete this post from `{name}`?"))?;
        if !confirmed {
            ctx.print.note("not retracted");
            return Ok(Code::Failure);
        }
    }

    // One process at a time per delivery: the same lock `gate post` sends under.
    let _lock = store.lock_delivery(&row.digest, name, row.item, LOCK_WAIT)?;
    let Some(row) = store.get(&row.digest, name, row.item)? else {
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
    store.mark_retracted(&row.digest, name, row.item, &entry, now)?;
    if gone_before {
        ctx.print
            .note("the network no longer had this post; recorded as retracted");
    }
    report(ctx, &row, now, false)
}

/// Deletes one item (under its lock): `Ok(None)` when it was retracted before, else when.
fn delete_item(
    store: &dyn Store,
    policy: &crate::core::policy::Policy,
    account: &Account,
    platform: &dyn platforms::Publisher,
    item: &Delivery,
) -> Result<Option<(DateTime<Utc>, bool)>, Error> {
    let name = account.name.as_str();
    let _lock = store.lock_delivery(&item.digest, name, item.item, LOCK_WAIT)?;
    let row = store.get(&item.digest, name, item.item)?;
    let Some(row) = row.filter(|r| r.state == State::Sent) else {
        return Ok(None);
    };
    let id = row.remote_id.clone().unwrap_or_default();
    let gone_before = match platform.delete(&id) {
        Ok(()) => false,
        Err(SendError::Refused { status: 404, .. }) => true,
        Err(e) => return Err(delete_error(account, e)),
    };
    let now = Utc::now();
    let mut entry = crate::audit::Entry::new(crate::audit::Event::Retract);
    entry.account = Some(name.to_owned());
    entry.digest = Some(row.digest.clone());
    entry.url = row.url.clone();
    entry.policy_sha256 = Some(policy.sha256.clone());
    store.mark_retracted(&row.digest, name, row.item, &entry, now)?;
    Ok(Some((now, gone_before)))
}

/// `--last` on a thread: every item gate sent, the last first.
fn retract_thread(
    ctx: &Ctx,
    store: &dyn Store,
    policy: &crate::core::policy::Policy,
    account: &Account,
    yes: bool,
    thread: Vec<Delivery>,
) -> Result<Code, Error> {
    let name = account.name.as_str();
    let total = thread.len();
    let mut items: Vec<Delivery> = thread
        .into_iter()
        .filter(|d| matches!(d.state, State::Sent | State::Retracted))
        .collect();
    items.sort_by_key(|d| std::cmp::Reverse(d.item));
    let unsent = total - items.len();
    let to_delete = items.iter().filter(|d| d.state == State::Sent).count();
    if to_delete > 0 {
        if !yes && !ctx.env.stdin_is_terminal {
            return Err(Error::usage(
                "refusing to retract without confirmation: stdin is not a terminal",
            )
            .with_hint("pass `--yes` to retract from a script"));
        }
        if !yes {
            for d in items.iter().rev().filter(|d| d.state == State::Sent) {
                ctx.print.say(format_args!("--- thread item {}\n", d.item));
                show(
                    ctx,
                    d,
                    store
                        .sent_text(&d.digest, name, d.url.as_deref().unwrap_or_default())
                        .as_deref(),
                );
            }
            let confirmed = crate::commands::confirm(format!(
                "Delete these {to_delete} posts of a thread from `{name}`?"
            ))?;
            if !confirmed {
                ctx.print.note("not retracted");
                return Ok(Code::Failure);
            }
        }
    }
    let platform = if to_delete > 0 {
        let credential = crate::platforms::credential_for(&ctx.env, account)?;
        Some(platforms::connect(
            account,
            credential,
            crate::http::client()?,
        )?)
    } else {
        None
    };
    let mut done = Vec::new();
    let mut failure = None;
    for d in &items {
        let outcome = match (&platform, d.state) {
            (Some(platform), State::Sent) => {
                delete_item(store, policy, account, platform.as_ref(), d)
            }
            _ => Ok(None),
        };
        match outcome {
            Ok(Some((at, gone_before))) => {
                if gone_before && !ctx.global.json {
                    ctx.print.note(&format!(
                        "item {}: the network no longer had it; recorded as retracted",
                        d.item
                    ));
                }
                done.push((d, at, false));
            }
            Ok(None) => {
                let at = store
                    .get(&d.digest, name, d.item)?
                    .and_then(|r| r.retracted_at)
                    .unwrap_or(DateTime::UNIX_EPOCH);
                done.push((d, at, true));
            }
            Err(e) => {
                let retracted = done.iter().filter(|(_, _, earlier)| !earlier).count();
                let left = items
                    .iter()
                    .filter(|o| o.item < d.item && o.state == State::Sent)
                    .count();
                let e = e.with_hint(format!(
                    "{retracted} item(s) of the thread were retracted; item {} and {left} earlier one(s) are still up; run the same `gate retract --last` again to go on from item {}",
                    d.item, d.item
                ));
                failure = Some((d.item, e));
                break;
            }
        }
    }
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    if ctx.global.json {
        let list: Vec<serde_json::Value> = done
            .iter()
            .map(|(d, at, earlier)| {
                json!({"item": d.item, "id": d.remote_id, "url": d.url, "retracted_at": stamp(*at), "earlier": earlier})
            })
            .collect();
        let mut doc = json!({"retracted": {"account": name, "thread": total, "items": list}});
        if let Some((item, e)) = &failure {
            doc["failed"] = json!({"item": item, "code": e.code().as_u8(), "message": e.message()});
        }
        ctx.print.json(&doc)?;
    } else {
        for (d, at, earlier) in &done {
            let url = d.url.as_deref().unwrap_or_default();
            if *earlier {
                ctx.print.note(&format!(
                    "item {}: already retracted from `{name}` at {}: {url}",
                    d.item,
                    stamp(*at)
                ));
            } else {
                ctx.print
                    .note(&format!("item {}: retracted from `{name}`: {url}", d.item));
            }
            // The post is deleted: a reader gone away changes nothing.
            let _ = ctx.print.line(url);
        }
        if unsent > 0 {
            ctx.print.note(&format!(
                "{unsent} of the thread's {total} items were never recorded as sent; nothing to retract for them"
            ));
        }
    }
    match failure {
        None => Ok(Code::Ok),
        Some((_, e)) => {
            // Reported here, not returned: with `--json` the document above is the answer.
            ctx.print.error(&e);
            Ok(e.code())
        }
    }
}

fn already(ctx: &Ctx, row: &Delivery) -> Result<Code, Error> {
    let at = row.retracted_at.unwrap_or(DateTime::UNIX_EPOCH);
    report(ctx, row, at, true)
}

fn report(ctx: &Ctx, row: &Delivery, at: DateTime<Utc>, earlier: bool) -> Result<Code, Error> {
    let url = row.url.clone().unwrap_or_default();
    let at = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    if ctx.global.json {
        ctx.print.json(&json!({
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
            ctx.print.note(&format!(
                "already retracted from `{}` at {at}: {url}",
                row.account
            ));
        } else {
            ctx.print
                .note(&format!("retracted from `{}`: {url}", row.account));
        }
        // The post is deleted: a reader gone away changes nothing.
        let _ = ctx.print.line(&url);
    }
    Ok(Code::Ok)
}

/// The post about to be deleted, on stderr before the question: its text as sent (from the
/// audit trail), then where and when.
fn show(ctx: &Ctx, row: &Delivery, text: Option<&str>) {
    use std::fmt::Write as _;
    let mut err = String::new();
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
    ctx.print.say(err);
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
