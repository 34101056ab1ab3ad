//! `gate state status`, `gate state migrate [--print-sql]`, `gate state import` and
//! `gate state password`: which state store is in use and what it holds (SPEC §6).

use std::io::Read as _;

use secrecy::SecretString;
use serde_json::json;

use crate::cli::StateMigrateArgs;
use crate::commands::Ctx;
use crate::error::{Code, Error};
use crate::store::postgres::{self, Postgres};
use crate::store::sqlite::Sqlite;
use crate::store::{Access, FreezeState, Store};

pub fn status(ctx: &Ctx) -> Result<Code, Error> {
    let policy = ctx.policy_for_state()?;
    let Some(target) = crate::store::team_target(&ctx.env, policy.as_ref())? else {
        let store = Sqlite::open(&ctx.env, Access::Read);
        let version = store.schema_version()?;
        let freeze = FreezeState::read(&store, policy.as_ref())?;
        let location = store.location();
        if ctx.global.json {
            ctx.print.json(&json!({
                "backend": "sqlite",
                "location": location,
                "reachable": true,
                "schema": {"version": version, "current": crate::store::sqlite::VERSION},
                "frozen": freeze.frozen(),
                "freeze": freeze.json(),
            }))?;
        } else {
            ctx.print
                .line(format_args!("backend:   sqlite (this machine only)"))?;
            ctx.print.line(format_args!("location:  {location}"))?;
            match version {
                Some(v) => ctx.print.line(format_args!(
                    "schema:    version {v} (this gate: {})",
                    crate::store::sqlite::VERSION
                ))?,
                None => ctx.print.line(format_args!(
                    "schema:    not created yet (the first send creates it)"
                ))?,
            }
            ctx.print
                .line(format_args!("freeze:    {}", freeze.line()))?;
        }
        return Ok(Code::Ok);
    };
    let shown = target.shown.clone();
    let source = target.source;
    match Postgres::connect(&ctx.env, target, false) {
        Ok(store) => {
            let freeze = FreezeState::read(&store, policy.as_ref())?;
            let version = store.version;
            let schema = match version {
                0 => "absent",
                v if v < postgres::VERSION => "older",
                _ => "current",
            };
            if ctx.global.json {
                ctx.print.json(&json!({
                    "backend": "postgres",
                    "location": shown,
                    "from": source,
                    "reachable": true,
                    "schema": {"version": version, "current": postgres::VERSION, "state": schema},
                    "frozen": freeze.frozen(),
                    "freeze": freeze.json(),
                }))?;
            } else {
                ctx.print
                    .line(format_args!("backend:   postgres (shared by the team)"))?;
                ctx.print
                    .line(format_args!("location:  {shown} (from {source})"))?;
                ctx.print.line(format_args!("reachable: yes"))?;
                match schema {
                    "absent" => ctx.print.line(format_args!(
                        "schema:    none yet (the first send creates it, or `gate state migrate`)"
                    ))?,
                    _ => ctx.print.line(format_args!(
                        "schema:    version {version} (this gate: {})",
                        postgres::VERSION
                    ))?,
                }
                ctx.print
                    .line(format_args!("freeze:    {}", freeze.line()))?;
            }
            Ok(Code::Ok)
        }
        Err(e) => {
            if ctx.global.json {
                ctx.print.json(&json!({
                    "backend": "postgres",
                    "location": shown,
                    "from": source,
                    "reachable": false,
                    "error": e.message(),
                }))?;
            }
            Err(e)
        }
    }
}

pub fn migrate(ctx: &Ctx, args: &StateMigrateArgs) -> Result<Code, Error> {
    if args.print_sql {
        ctx.print.out(format_args!(
            "-- gate state store, PostgreSQL schema version {}\nBEGIN;\n{}{}COMMIT;\n{}",
            postgres::VERSION,
            postgres::TO_V1.trim_start(),
            postgres::TO_V2.trim_start(),
            postgres::GRANTS
        ))?;
        return Ok(Code::Ok);
    }
    let policy = ctx.policy_for_state()?;
    match crate::store::team_target(&ctx.env, policy.as_ref())? {
        Some(target) => {
            let store = Postgres::connect(&ctx.env, target, true)?;
            if ctx.global.json {
                ctx.print.json(
                    &json!({"backend": "postgres", "location": store.shown(), "version": store.version}),
                )?;
            } else {
                ctx.print.note(&format!(
                    "the team state store `{}` is at schema version {}",
                    store.shown(),
                    store.version
                ));
            }
        }
        None => {
            let store = Sqlite::open(&ctx.env, Access::Write);
            store.create()?;
            let version = store.schema_version()?;
            if ctx.global.json {
                ctx.print.json(
                    &json!({"backend": "sqlite", "location": store.location(), "version": version}),
                )?;
            } else {
                ctx.print.note(&format!(
                    "the SQLite store `{}` is at schema version {}",
                    store.location(),
                    version.unwrap_or_default()
                ));
            }
        }
    }
    Ok(Code::Ok)
}

pub fn import(ctx: &Ctx) -> Result<Code, Error> {
    let policy = ctx.policy_for_state()?;
    let Some(target) = crate::store::team_target(&ctx.env, policy.as_ref())? else {
        return Err(
            Error::usage("no team state store is configured to import into")
                .with_hint("set `GATE_STATE_URL` or the policy's `[state] url`"),
        );
    };
    let local = Sqlite::open(&ctx.env, Access::Read);
    let checked = local.verify()?;
    if let crate::audit::Verdict::Broken { problem, .. } = &checked.verdict {
        return Err(Error::other(format!(
            "this machine's audit trail is not intact ({problem}): not importing it"
        ))
        .with_hint("`gate log --verify` names the damage; compare the journal with a backup"));
    }
    let entries = local.entries()?;
    let deliveries = local.deliveries()?;
    let freeze = crate::store::Store::freeze(&local)?;
    let team = Postgres::connect(&ctx.env, target, true)?;
    let (added, moved, already) = team.import(&deliveries, &entries, freeze.as_ref())?;
    let after = team.verify()?;
    let intact = matches!(after.verdict, crate::audit::Verdict::Intact { .. });
    let total = match &after.verdict {
        crate::audit::Verdict::Intact { entries, .. } => *entries,
        crate::audit::Verdict::Broken { .. } => 0,
    };
    if ctx.global.json {
        ctx.print.json(&json!({
            "imported": !already,
            "deliveries": deliveries.len(),
            "deliveries_added": added,
            "entries": moved,
            "team_entries": total,
            "team_chain_intact": intact,
            "from": local.location(),
            "to": team.shown(),
        }))?;
    } else if already {
        ctx.print.note(&format!(
            "this machine's journal and audit trail were imported into `{}` before; nothing to do",
            team.shown()
        ));
    } else {
        ctx.print.note_with_hint(&format!(
            "imported {} deliveries ({added} new, {} already there) and {moved} audit entries from `{}` into `{}`; the team trail has {total} entries{}",
            deliveries.len(),
            deliveries.len() - added,
            local.location(),
            team.shown(),
            if intact { ", chain intact" } else { "" }
        ), "the local files are left as they were; this machine now uses the team store");
    }
    if !intact {
        return Err(Error::other(format!(
            "the team audit trail in `{}` is not intact after the import",
            team.shown()
        ))
        .with_hint("`gate log --verify` names the entry"));
    }
    Ok(Code::Ok)
}

pub fn password(ctx: &Ctx) -> Result<Code, Error> {
    let policy = ctx.policy_for_state()?;
    let Some(target) = crate::store::team_target(&ctx.env, policy.as_ref())? else {
        return Err(Error::usage("no team state store is configured")
            .with_hint("name it in the policy's `[state] url` first"));
    };
    let secret = if ctx.env.stdin_is_terminal {
        dialoguer::Password::new()
            .with_prompt(format!("Password for {}", target.shown))
            .interact()
            .map_err(|e| Error::other(format!("cannot read the password: {e}")))?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::other(format!("cannot read the password from stdin: {e}")))?;
        text.trim_end_matches(['\n', '\r']).to_owned()
    };
    if secret.is_empty() {
        return Err(Error::usage("the password is empty")
            .with_hint("give it on stdin, e.g. `printf %s \"$PW\" | gate state password`"));
    }
    let item = target.keychain_item();
    crate::keychain::Keychain::open(&ctx.env)?.set(&item, &SecretString::from(secret))?;
    ctx.print.note(&format!(
        "stored the password for `{}` in the OS keychain (service `gate`, item `{item}`)",
        target.shown
    ));
    Ok(Code::Ok)
}
