//! `gate post`: judge a post with the real clock, confirm, then send it to each account
//! exactly once, journaling before and after every send.
//!
//! The walk per account, under the delivery's cross-process lock: read the journal (already
//! sent: print its URL, send nothing) → a `pending` row from an attempt that died or ended
//! unknown: `find` it before sending again → commit `pending` with the delivery's key →
//! publish → commit `sent` with the network's id and URL → print the URL.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::audit::{self, Event};
use crate::cli::PostArgs;
use crate::commands::check::{inline_accounts, read_stdin, targets};
use crate::commands::{Ctx, print_json};
use crate::credential::Credential;
use crate::env::Env;
use crate::error::{Code, Error, io_reason};
use crate::evaluate::{Context, Engine, Evaluation, Verdict, overall};
use crate::journal::{Journal, State};
use crate::output::Verbosity;
use crate::platforms::{self, Lookup, Media, Outgoing, Progress, Published, SendError};
use crate::policy::{Account, Platform as Network, hex};
use crate::post::{self, Origin, Post};
use crate::state;

/// How long a process waits for another that is sending the same delivery.
const LOCK_WAIT: Duration = Duration::from_secs(300);
/// How many times one run sends a delivery whose earlier try was not found, or was rate limited.
const SEND_TRIES: u32 = 3;
/// The longest `Retry-After` gate sleeps through by itself.
const RATE_WAIT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(12 * 3600);

pub fn run(ctx: &Ctx, args: &PostArgs) -> Result<Code, Error> {
    if args.text.is_none() && args.file.is_none() {
        return Err(Error::usage("nothing to post")
            .with_hint("give the text, `-` to read it from stdin, or `--file FILE`"));
    }
    if !args.account.is_empty() && args.file.is_some() {
        return Err(Error::usage(
            "`--account` applies to inline text; post files name their own accounts",
        ));
    }
    let max_wait = match &args.max_wait {
        Some(text) => parse_duration(text)?,
        None => DEFAULT_MAX_WAIT,
    };
    let policy = ctx.load_policy(None)?;
    let mut post = match (&args.text, &args.file) {
        (Some(text), _) if text == "-" => Post::inline(Origin::Stdin, read_stdin()?),
        (Some(text), _) => Post::inline(Origin::Argument, text.clone()),
        (None, Some(path)) => {
            post::load(path, &policy).map_err(|diagnostics| Error::Input { diagnostics })?
        }
        (None, None) => unreachable!("checked above"),
    };
    apply_flags(&mut post, args)?;
    let inline = inline_accounts(&policy, &args.account)?;
    let accounts = targets(&policy, &post, &inline);
    if accounts.is_empty() {
        return Err(Error::usage("no account to send to").with_hint(format!(
            "name one with `--account NAME`; the policy defines {}",
            crate::policy::account_list(&policy.accounts)
        )));
    }
    // A visibility Bluesky or X cannot honour, a reply to several accounts, a reply target
    // the network cannot take: refused before anything is judged or sent.
    if let Some(m) = post::misfits(&post.options, &accounts).into_iter().next() {
        return Err(Error::usage(m.message).with_hint(m.hint));
    }
    if let Some(language) = &post.options.language {
        for a in accounts.iter().filter(|a| a.platform == Network::X) {
            ctx.note(&format!(
                "note: X posts carry no language; `{}` gets the post without `{language}` (X detects it)",
                a.name
            ));
        }
    }

    // Judge with the real clock; with `--wait`, sleep through a hold and judge again.
    let engine = Engine::new(&policy);
    let started = Instant::now();
    let (evaluations, mut context) = loop {
        let now = Utc::now();
        let context = Context {
            now,
            local_freeze: state::read_freeze(&ctx.env)?,
            sends: if policy.limits.is_empty() {
                crate::limits::Sends::default()
            } else {
                crate::limits::load(&ctx.env, now)?
            },
            instances: BTreeMap::new(),
        };
        let evaluations = engine.evaluate(&post, &accounts, &context);
        if args.wait && overall(&evaluations) == Verdict::Hold {
            let until = evaluations
                .iter()
                .flat_map(|e| &e.findings)
                .filter_map(|f| f.until)
                .max();
            if let Some(until) = until
                && let Ok(pause) = (until - now).to_std()
                && started.elapsed() + pause <= max_wait
            {
                ctx.note(&format!(
                    "held until {}; waiting ({} s)",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    pause.as_secs()
                ));
                std::thread::sleep(pause + Duration::from_millis(500));
                continue;
            }
        }
        break (evaluations, context);
    };
    let mut verdict = overall(&evaluations);
    let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
    let digest = hex(&Sha256::digest(post.digest_message(&names).as_bytes()));
    let refuse = |evaluations: &[Evaluation], verdict: Verdict| -> Result<Code, Error> {
        for e in evaluations {
            audit::record(
                &ctx.env,
                &audit::for_post(Event::Refused, &policy, &post, &digest, e),
            )?;
        }
        report_verdict(ctx, &post, evaluations, verdict)?;
        Ok(verdict.code())
    };
    if verdict != Verdict::Allow {
        return refuse(&evaluations, verdict);
    }

    // Unattended without `--yes`: refuse before the keychain or the network is touched.
    if !args.yes && !args.dry_run && !ctx.env.stdin_is_terminal {
        return Err(
            Error::usage("refusing to send without confirmation: stdin is not a terminal")
                .with_hint(
                    "pass `--yes` to send from a script; `--dry-run` shows what would be sent",
                ),
        );
    }

    // Mastodon instances say how long a status may be: asked (without a token) for each
    // delivery that may still need the network, then the post is judged again with it. This
    // comes before the question, the journal and any upload.
    let client: OnceCell<reqwest::blocking::Client> = OnceCell::new();
    context.instances = instance_limits(ctx, &accounts, &digest, &client)?;
    let evaluations = if context.instances.is_empty() {
        evaluations
    } else {
        let again = engine.evaluate(&post, &accounts, &context);
        verdict = overall(&again);
        if verdict != Verdict::Allow {
            return refuse(&again, verdict);
        }
        again
    };
    let media = read_media(&post)?;

    if !args.yes && !args.dry_run {
        show(&post, &accounts);
        let confirmed = dialoguer::Confirm::new()
            .with_prompt(format!(
                "Send this post to {}?",
                crate::schema::list(&names.iter().map(String::as_str).collect::<Vec<_>>())
            ))
            .default(false)
            .interact()
            .map_err(|e| Error::other(format!("cannot ask for confirmation: {e}")))?;
        if !confirmed {
            ctx.note("not sent");
            return Ok(Code::Failure);
        }
    }

    if args.dry_run {
        return dry_run(ctx, &post, &accounts, &digest, &evaluations);
    }

    let journal = Journal::open(&ctx.env)?;
    let show_progress =
        ctx.env.stderr_is_terminal && !ctx.global.json && ctx.verbosity() != Verbosity::Quiet;
    let mut sent = Vec::new();
    let mut failed: Vec<(String, Error)> = Vec::new();
    for account in &accounts {
        let audited = |p: &Published| {
            audit::record_sent(
                &ctx.env,
                &policy,
                &post,
                &digest,
                &account.name,
                &evaluations,
                &p.url,
            )
        };
        let progress = Progress::new(show_progress, &account.name);
        let reply_to = match &post.options.reply_to {
            Some(written) => Some(platforms::target::reply_target(account, written).map_err(
                |why| Error::usage(why).with_hint(platforms::target::hint(account.platform)),
            )?),
            None => None,
        };
        let outgoing = Outgoing {
            text: &post.text,
            media: &media,
            reply_to: reply_to.as_deref(),
            language: post.options.language.as_deref(),
            visibility: post.options.visibility,
            key: "",
            progress: &progress,
        };
        let result = deliver(
            ctx,
            &journal,
            &client,
            account,
            &digest,
            &outgoing,
            &audited,
            args.force_resend,
        );
        match result {
            Ok((published, earlier)) => {
                if !ctx.global.json {
                    let how = if earlier { "already sent" } else { "sent" };
                    ctx.note(&format!("{how} to `{}`: {}", account.name, published.url));
                    let _ = writeln!(std::io::stdout(), "{}", published.url);
                }
                sent.push(json!({"account": account.name, "id": published.id, "url": published.url, "earlier": earlier}));
            }
            Err(e) => {
                let _ = write!(anstream::stderr(), "{}", e.render());
                failed.push((account.name.clone(), e));
            }
        }
    }
    if ctx.global.json {
        let mut doc = json!({"verdict": verdict, "posts": evaluations, "sent": sent});
        if !failed.is_empty() {
            doc["failed"] = failed
                .iter()
                .map(|(account, e)| json!({"account": account, "code": e.code().as_u8(), "message": plain(e)}))
                .collect();
        }
        print_json(&doc)?;
    }
    // SPEC §2: credentials before the network, then anything else.
    let order = [Code::Credentials, Code::Network, Code::Failure, Code::Usage];
    Ok(order
        .into_iter()
        .find(|c| failed.iter().any(|(_, e)| e.code() == *c))
        .unwrap_or(Code::Ok))
}

/// The account's credential from the keychain, refreshed first when it is about to expire
/// (under the account's lock); missing, expired beyond refresh or refused is exit 8.
pub(crate) fn credential_for(env: &Env, account: &Account) -> Result<Credential, Error> {
    match account.platform {
        Network::Bluesky => crate::platforms::bluesky::session::usable_session(env, account),
        Network::Mastodon | Network::X => crate::oauth::usable_credential(env, account),
    }
}

/// Sends one delivery at most once; returns the post and whether an earlier run made it.
/// `message` is what goes out (its `key` is chosen here). `audited` appends the audit entry
/// for a delivery this run confirmed, under the lock.
fn deliver(
    ctx: &Ctx,
    journal: &Journal,
    client: &OnceCell<reqwest::blocking::Client>,
    account: &Account,
    digest: &str,
    message: &Outgoing<'_>,
    audited: &dyn Fn(&Published) -> Result<(), Error>,
    force_resend: bool,
) -> Result<(Published, bool), Error> {
    let name = account.name.as_str();
    let _lock = crate::lock::acquire(
        &ctx.env,
        &format!("deliver-{}-{name}", &digest[..32]),
        LOCK_WAIT,
    )?;
    let row = journal.get(digest, name)?;
    if let Some(row) = &row
        && row.state == State::Sent
    {
        let published = Published {
            id: row.remote_id.clone().unwrap_or_default(),
            url: row.url.clone().unwrap_or_default(),
        };
        return Ok((published, true));
    }
    if let Some(row) = &row
        && row.state == State::Retracted
    {
        return Err(Error::other(format!(
            "this post to `{name}` was retracted with `gate retract`; gate sends a post once"
        ))
        .with_hint("to post it again, change its text; nothing was sent"));
    }
    // The keychain is read only for a delivery that may need the network.
    let credential = credential_for(&ctx.env, account)?;
    if client.get().is_none() {
        let _ = client.set(crate::http::client()?);
    }
    let client = client.get().expect("set above").clone();
    let platform = platforms::connect(account, credential, client)?;
    let key = match &row {
        Some(row) => row.key.clone(),
        None => platform.new_key(&format!("{digest}/{name}")),
    };
    let outgoing = Outgoing {
        key: &key,
        ..*message
    };
    let failed = |state: State, e: &Error| {
        let _ = journal.mark(digest, name, state, &plain(e), Utc::now());
    };

    if let Some(row) = &row
        && row.state == State::Pending
    {
        // An earlier run died or could not tell whether its post went out: look first.
        ctx.note(&format!(
            "an earlier attempt to send to `{name}` did not finish; checking whether it went out"
        ));
        match platform.find(&outgoing, row.created_at) {
            Ok(Lookup::Found(published)) => {
                journal.mark_sent(digest, name, &published.id, &published.url, Utc::now())?;
                audited(&published)?;
                return Ok((published, true));
            }
            Ok(Lookup::Absent) => {}
            Ok(Lookup::Undetermined { reason }) => {
                if !force_resend {
                    return Err(undetermined(account, &reason));
                }
                ctx.note(&format!(
                    "`{name}`: {reason}; sending anyway (`--force-resend`)"
                ));
            }
            Err(e) => return Err(send_error(account, e, true)),
        }
    }

    journal.begin(digest, name, account.platform.name(), &key, Utc::now())?;
    let claimed = row.as_ref().map_or_else(Utc::now, |r| r.created_at);
    fault_point(&ctx.env, "after-journal");
    let mut tries = 0;
    loop {
        tries += 1;
        match platform.publish(&outgoing) {
            Ok(published) => {
                fault_point(&ctx.env, "after-publish");
                journal.mark_sent(digest, name, &published.id, &published.url, Utc::now())?;
                audited(&published)?;
                return Ok((published, false));
            }
            Err(SendError::Unknown { message }) => match platform.find(&outgoing, claimed) {
                Ok(Lookup::Found(published)) => {
                    journal.mark_sent(digest, name, &published.id, &published.url, Utc::now())?;
                    audited(&published)?;
                    return Ok((published, false));
                }
                Ok(Lookup::Undetermined { reason }) if !force_resend => {
                    let e = undetermined(account, &reason);
                    failed(State::Pending, &e);
                    return Err(e);
                }
                // Not there: send again, with the same key.
                Ok(Lookup::Absent | Lookup::Undetermined { .. }) if tries < SEND_TRIES => {
                    std::thread::sleep(Duration::from_millis(500) * tries);
                }
                Ok(Lookup::Absent | Lookup::Undetermined { .. }) => {
                    let e = send_error(account, SendError::Unknown { message }, false);
                    failed(State::Pending, &e);
                    return Err(e);
                }
                Err(e) => {
                    let e = send_error(account, e, true);
                    failed(State::Pending, &e);
                    return Err(e);
                }
            },
            Err(SendError::RateLimited {
                retry_after: Some(pause),
                ..
            }) if tries < SEND_TRIES && pause <= RATE_WAIT => {
                ctx.note(&format!(
                    "`{name}` is rate limited; retrying in {} s",
                    pause.as_secs().max(1)
                ));
                std::thread::sleep(pause);
            }
            Err(e) => {
                let e = send_error(account, e, false);
                failed(State::Failed, &e);
                return Err(e);
            }
        }
    }
}

/// A lookup that cannot say whether an earlier attempt went out: exit 9, never a guess.
fn undetermined(account: &Account, reason: &str) -> Error {
    let name = &account.name;
    Error::network(format!(
        "`{name}`: an earlier attempt may have been sent, and gate cannot tell: {reason}"
    ))
    .with_hint(format!(
        "look at `{name}` on the network; only if the post is not there, run the same command again with `--force-resend`"
    ))
}

/// A platform's failure as gate's error: 401 → exit 8, the rest exit 9.
fn send_error(account: &Account, e: SendError, resolving: bool) -> Error {
    let name = &account.name;
    match e {
        SendError::Credentials { message } => Error::credentials(format!("`{name}`: {message}"))
            .with_hint(format!(
                "the token was rejected; run `gate auth login {name}`; nothing was sent"
            )),
        SendError::Refused { message, .. } => Error::network(format!("`{name}`: {message}"))
            .with_hint("the network refused the post; nothing was sent"),
        SendError::RateLimited {
            retry_after,
            message,
        } => {
            let when = retry_after.map_or_else(
                || "later".to_owned(),
                |d| format!("in {} s", d.as_secs().max(1)),
            );
            Error::network(format!("`{name}`: {message}")).with_hint(format!(
                "rate limited; nothing was sent; run the same `gate post` again {when}"
            ))
        }
        SendError::Unknown { message } => {
            let what = if resolving {
                "could not check whether an earlier attempt went out"
            } else {
                "the outcome is unknown"
            };
            Error::network(format!("`{name}`: {message}")).with_hint(format!(
                "{what}; run the same `gate post` again: it checks before sending and never posts twice"
            ))
        }
    }
}

/// Test builds only: `GATE_TEST_FAULT=after-journal|after-publish` stops the process at that
/// point (it announces itself on stderr and waits to be killed), so tests can SIGKILL it
/// between the journal and the network. Release builds have no such hook.
#[cfg(debug_assertions)]
fn fault_point(env: &Env, point: &str) {
    if env.var("GATE_TEST_FAULT") == Some(point) {
        let _ = writeln!(std::io::stderr(), "gate-test-fault: {point}");
        std::thread::sleep(Duration::from_secs(60));
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
fn fault_point(_: &Env, _: &str) {}

/// The length limits of the Mastodon instances of `accounts` whose delivery of this post
/// is not journaled yet (a sent post needs no network). An instance that cannot be asked, or
/// answers something else, is left out: the policy's limits apply (said with `-v`).
fn instance_limits(
    ctx: &Ctx,
    accounts: &[&Account],
    digest: &str,
    client: &OnceCell<reqwest::blocking::Client>,
) -> Result<BTreeMap<String, crate::length::Instance>, Error> {
    let mastodon: Vec<&&Account> = accounts
        .iter()
        .filter(|a| a.platform == Network::Mastodon)
        .collect();
    let mut limits = BTreeMap::new();
    if mastodon.is_empty() {
        return Ok(limits);
    }
    let journal = Journal::open_existing(&ctx.env)?;
    let mut asked: BTreeMap<&str, Option<crate::length::Instance>> = BTreeMap::new();
    for account in mastodon {
        if let Some(j) = &journal
            && j.get(digest, &account.name)?
                .is_some_and(|row| matches!(row.state, State::Sent | State::Retracted))
        {
            continue;
        }
        let server = account.server.as_str();
        let found = match asked.get(server) {
            Some(found) => *found,
            None => {
                if client.get().is_none() {
                    let _ = client.set(crate::http::client()?);
                }
                let found = match platforms::mastodon::instance(client.get().expect("set"), server)
                {
                    Ok(instance) => {
                        if ctx.verbosity() == Verbosity::Verbose {
                            ctx.note(&format!(
                                "{server}: statuses of up to {} characters, links count {}",
                                instance.max_characters, instance.characters_reserved_per_url
                            ));
                        }
                        Some(instance)
                    }
                    Err(why) => {
                        if ctx.verbosity() == Verbosity::Verbose {
                            ctx.note(&format!(
                                "{server}: cannot read the instance's length limit ({why}); using the policy's"
                            ));
                        }
                        None
                    }
                };
                asked.insert(server, found);
                found
            }
        };
        if let Some(instance) = found {
            limits.insert(account.name.clone(), instance);
        }
    }
    Ok(limits)
}

fn dry_run(
    ctx: &Ctx,
    post: &Post,
    accounts: &[&Account],
    digest: &str,
    evaluations: &[Evaluation],
) -> Result<Code, Error> {
    let journal = Journal::open_existing(&ctx.env)?;
    let mut plan = Vec::new();
    for account in accounts {
        credential_for(&ctx.env, account)?;
        let row = match &journal {
            Some(j) => j.get(digest, &account.name)?,
            None => None,
        };
        let (what, url) = match row {
            Some(r) if r.state == State::Sent => ("already sent", r.url),
            Some(r) if r.state == State::Retracted => {
                ("retracted earlier; would refuse to send", r.url)
            }
            Some(r) if r.state == State::Pending => {
                ("would check an unfinished attempt, then send", None)
            }
            _ => ("would send", None),
        };
        let options = if post.options.is_empty() {
            String::new()
        } else {
            format!(" ({})", post.options.describe())
        };
        ctx.note(&format!(
            "dry run: {what} to `{}`{options}{}",
            account.name,
            url.as_ref().map(|u| format!(": {u}")).unwrap_or_default()
        ));
        plan.push(json!({"account": account.name, "action": what, "url": url}));
    }
    if ctx.global.json {
        print_json(
            &json!({"verdict": Verdict::Allow, "posts": evaluations, "sent": [], "dry_run": plan}),
        )?;
    }
    Ok(Code::Ok)
}

/// What is about to be sent, exactly, on stderr before the question.
fn show(post: &Post, accounts: &[&Account]) {
    let mut err = anstream::stderr().lock();
    let _ = writeln!(err, "--- text ({} bytes)", post.text.len());
    let _ = writeln!(err, "{}", post.text);
    let _ = writeln!(err, "---");
    for m in &post.media {
        let _ = writeln!(
            err,
            "media: {} ({} bytes){}",
            m.written,
            m.bytes,
            m.alt
                .as_ref()
                .map(|a| format!(", alt: {a}"))
                .unwrap_or_default()
        );
    }
    if !post.options.is_empty() {
        let _ = writeln!(err, "sent with: {}", post.options.describe());
    }
    for a in accounts {
        let _ = writeln!(err, "to: `{}` ({} at {})", a.name, a.platform, a.server);
    }
}

/// `--language`, `--visibility` and `--reply-to`: they apply to inline text and override a
/// post file's keys.
fn apply_flags(post: &mut Post, args: &PostArgs) -> Result<(), Error> {
    if let Some(text) = &args.language {
        let tag = post::language_tag(text).map_err(|why| {
            Error::usage(format!("invalid value for `--language`: {why}"))
                .with_hint(post::LANGUAGE_HINT)
        })?;
        post.options.language = Some(tag);
    }
    if let Some(v) = args.visibility {
        post.options.visibility = Some(v);
    }
    if let Some(target) = &args.reply_to {
        if target.trim().is_empty() {
            return Err(Error::usage("`--reply-to` is empty")
                .with_hint("give the id or the address of the post this one answers"));
        }
        post.options.reply_to = Some(target.trim().to_owned());
    }
    Ok(())
}

/// The post's attachments as they will be uploaded; a file changed since it was judged is an error.
fn read_media(post: &Post) -> Result<Vec<Media>, Error> {
    post.media
        .iter()
        .map(|m| {
            let bytes = std::fs::read(&m.path).map_err(|e| {
                Error::other(format!(
                    "cannot read `{}`: {}",
                    m.path.display(),
                    io_reason(&e)
                ))
            })?;
            if hex(&Sha256::digest(&bytes)) != m.sha256 {
                return Err(Error::other(format!(
                    "`{}` changed while gate was reading it",
                    m.path.display()
                ))
                .with_hint("run `gate post` again; nothing was sent"));
            }
            let name = m
                .path
                .file_name()
                .map_or_else(|| m.written.clone(), |n| n.to_string_lossy().into_owned());
            Ok(Media {
                mime: mime(&name).to_owned(),
                name,
                bytes,
                alt: m.alt.clone(),
            })
        })
        .collect()
}

fn mime(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        _ => "application/octet-stream",
    }
}

fn report_verdict(
    ctx: &Ctx,
    post: &Post,
    evaluations: &[Evaluation],
    verdict: Verdict,
) -> Result<(), Error> {
    if ctx.global.json {
        print_json(&json!({"verdict": verdict, "posts": evaluations, "sent": []}))?;
    } else {
        let mut err = anstream::stderr().lock();
        for e in evaluations {
            let _ = write!(
                err,
                "{}",
                crate::output::evaluation(&post.text, e, ctx.verbosity())
            );
        }
        let _ = writeln!(err, "not sent: the post is `{}`", verdict.name());
    }
    Ok(())
}

/// An error's text without colour, for JSON and the journal.
fn plain(e: &Error) -> String {
    match e {
        Error::Usage { message, .. }
        | Error::Other { message, .. }
        | Error::Credentials { message, .. }
        | Error::Network { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// `90s`, `30m`, `2h`, `1d` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, Error> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if scale > 0 => Ok(Duration::from_secs(n.saturating_mul(scale))),
        _ => Err(
            Error::usage(format!("invalid value `{text}` for `--max-wait`"))
                .with_hint("write a number with `s`, `m`, `h` or `d`, e.g. `30m`"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        for bad in ["", "m", "5x", "-1s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(mime("a.PNG"), "image/png");
        assert_eq!(mime("a.jpeg"), "image/jpeg");
        assert_eq!(mime("noext"), "application/octet-stream");
    }
}
