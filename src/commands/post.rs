//! `gate post`: judge a post with the real clock, confirm, then send it to each account
//! exactly once, journaling before and after every send.
//!
//! The walk per account, under the delivery's cross-process lock: read the journal (already
//! sent: print its URL, send nothing) → a `pending` row from an attempt that died or ended
//! unknown: `find` it before sending again → commit `pending` with the delivery's key →
//! publish → commit `sent` with the network's id and URL → print the URL.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::audit::{self, Event};
use crate::cli::PostArgs;
use crate::commands::Ctx;
use crate::core::evaluate::{Context, Engine, Evaluation, Severity, Verdict, overall};
use crate::core::policy::{Account, Platform as Network, hex};
use crate::core::post::{self, Origin, Post};
use crate::env::Env;
use crate::error::{Code, Error, io_reason};
use crate::output::Verbosity;
use crate::platforms::{self, Lookup, Media, Outgoing, Progress, Published, SendError};
use crate::store::{Access, Claim, State, Store};

mod due;

/// How long a process waits for another that is sending the same delivery.
const LOCK_WAIT: Duration = Duration::from_secs(300);
/// How many times one run sends a delivery whose earlier try was not found, or was rate limited.
const SEND_TRIES: u32 = 3;
/// The longest `Retry-After` gate sleeps through by itself.
const RATE_WAIT: Duration = Duration::from_secs(60);
const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(12 * 3600);

pub fn run(ctx: &Ctx, args: &PostArgs) -> Result<Code, Error> {
    if !args.due.is_empty() {
        return due::run(ctx, args);
    }
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
    // Most runs send: the HTTP client is built meanwhile, beside the store's opening.
    let client = crate::http::Prepared::start();
    // The state store, opened once for the whole command.
    let store = ctx.store(Some(&policy), Access::Write)?;
    let store: &dyn Store = store.as_ref();
    let mut post = match (&args.text, &args.file) {
        (Some(text), _) if text == "-" => Post::inline(Origin::Stdin, crate::inputs::read_stdin()?),
        (Some(text), _) => Post::inline(Origin::Argument, text.clone()),
        (None, Some(path)) => crate::inputs::load_post(path, &policy)
            .map_err(|diagnostics| Error::Input { diagnostics })?,
        (None, None) => unreachable!("checked above"),
    };
    apply_flags(&mut post, args)?;
    let inline = crate::commands::inline_accounts(&policy, &args.account)?;
    let accounts = crate::core::post::targets(&policy, &post, &inline);
    if accounts.is_empty() {
        return Err(Error::usage("no account to send to").with_hint(format!(
            "name one with `--account NAME`; the policy defines {}",
            crate::core::policy::account_list(&policy.accounts)
        )));
    }
    // A visibility Bluesky or X cannot honour, a reply to several accounts, a reply target
    // the network cannot take: refused before anything is judged or sent.
    if let Some(m) = post::misfits(&post.options, &accounts).into_iter().next() {
        return Err(Error::usage(m.message).with_hint(m.hint));
    }
    if let Some(language) = &post.options.language {
        for a in accounts.iter().filter(|a| a.platform == Network::X) {
            ctx.print.note(&format!(
                "note: X posts carry no language; `{}` gets the post without `{language}` (X detects it)",
                a.name
            ));
        }
    }

    // Judge with the real clock; with `--wait`, sleep through a hold and judge again.
    let engine = Engine::new(&policy);
    let started = Instant::now();
    let (evaluations, context) = loop {
        let now = Utc::now();
        let context = context_at(store, &policy, now)?;
        let evaluations = engine.evaluate(&post, &accounts, &context);
        if args.wait && overall(&evaluations) == Verdict::Hold {
            let until = evaluations
                .iter()
                .flat_map(|e| &e.findings)
                .filter_map(|f| f.until)
                .max();
            // Never sleep past the post's `not_after`: it could not go out then anyway.
            if let (Some(until), Some(end)) = (until, post.window.not_after_utc())
                && until >= end
            {
                ctx.print.note_with_hint(
                    &format!(
                        "not waiting: the post is held until {}, but its window closes at `not_after` {}",
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        crate::core::window::instant(end)
                    ),
                    "nothing was sent; to send it later, move `not_after` (reviewers sign it again)",
                );
                break (evaluations, context);
            }
            if let Some(until) = until
                && let Ok(pause) = (until - now).to_std()
                && started.elapsed() + pause <= max_wait
            {
                ctx.print.note(&format!(
                    "held until {}; waiting ({} s)",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    pause.as_secs()
                ));
                std::thread::sleep(pause + Duration::from_millis(500));
                continue;
            }
            let max = args.max_wait.as_deref().unwrap_or("12h");
            match until {
                Some(until) => ctx.print.note_with_hint(
                    &format!(
                        "not waiting: the post is held until {}, later than `--max-wait {max}` allows",
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    "give a longer `--max-wait`, or send it then",
                ),
                None => ctx.print.note("not waiting: the hold names no time it ends"),
            }
        }
        break (evaluations, context);
    };
    let sender = Sender {
        ctx,
        policy: &policy,
        engine: &engine,
        store,
        client: &client,
        yes: args.yes,
        dry_run: args.dry_run,
        force_resend: args.force_resend,
        each: true,
    };
    match sender.walk(&post, &accounts, evaluations, context)? {
        Walked::Refused {
            evaluations,
            verdict,
        } => {
            report_verdict(ctx, &post, &evaluations, verdict)?;
            Ok(Code::from(verdict))
        }
        Walked::NotConfirmed => {
            ctx.print.note("not sent");
            Ok(Code::Failure)
        }
        Walked::DryRun { evaluations, plan } => {
            if ctx.global.json {
                ctx.print.json(
                    &json!({"verdict": Verdict::Allow, "posts": evaluations, "sent": [], "dry_run": plan}),
                )?;
            }
            Ok(Code::Ok)
        }
        Walked::Delivered {
            evaluations,
            sent,
            failed,
        } => {
            let verdict = overall(&evaluations);
            if ctx.global.json {
                let sent: Vec<serde_json::Value> = sent.iter().map(SentTo::json).collect();
                let mut doc = json!({"verdict": verdict, "posts": evaluations, "sent": sent});
                if !failed.is_empty() {
                    doc["failed"] = failed
                        .iter()
                        .map(|(account, item, stop)| {
                            let mut entry = json!({"account": account, "code": stop.code().as_u8(), "message": stop.message(), "maybe_sent": stop.maybe_sent()});
                            if let Some(item) = item {
                                entry["item"] = (*item).into();
                            }
                            entry
                        })
                        .collect();
                }
                ctx.print.json(&doc)?;
            }
            Ok(first_code(failed.iter().map(|(_, _, stop)| stop.code())))
        }
    }
}

/// SPEC §2 and §7: the policy's verdicts first (3, 7, 4, 6, 5), then credentials, the network,
/// anything else; `Ok` when none failed.
fn first_code(codes: impl IntoIterator<Item = Code>) -> Code {
    let codes: Vec<Code> = codes.into_iter().collect();
    let order = [
        Code::Policy,
        Code::Frozen,
        Code::Deny,
        Code::Review,
        Code::Hold,
        Code::Credentials,
        Code::Network,
        Code::Failure,
        Code::Usage,
    ];
    order
        .into_iter()
        .find(|c| codes.contains(c))
        .unwrap_or(Code::Ok)
}

/// What the post is judged with at `now`: the store's freeze and, when the policy has rate
/// limits, its ledger of the hour.
fn context_at(
    store: &dyn Store,
    policy: &crate::core::policy::Policy,
    now: chrono::DateTime<Utc>,
) -> Result<Context, Error> {
    Ok(Context {
        now,
        local_freeze: store.freeze()?,
        sends: if policy.limits.is_empty() {
            crate::core::limits::Sends::default()
        } else {
            store.ledger(now)?
        },
        instances: BTreeMap::new(),
    })
}

/// What every post of one command is walked with: `gate post` walks one, `gate post --due`
/// each due file of its folders, through the same steps.
struct Sender<'a> {
    ctx: &'a Ctx,
    policy: &'a crate::core::policy::Policy,
    engine: &'a Engine<'a>,
    store: &'a dyn Store,
    client: &'a crate::http::Prepared,
    yes: bool,
    dry_run: bool,
    force_resend: bool,
    /// `gate post` reports each delivery as it ends; `--due` reports one line per file and
    /// account once the file is done.
    each: bool,
}

/// How the walk of one post ended.
enum Walked {
    /// Not `allow` when judged before anything was sent: refused (and audited).
    Refused {
        evaluations: Vec<Evaluation>,
        verdict: Verdict,
    },
    /// The question on the terminal was answered no.
    NotConfirmed,
    /// `--dry-run`: what each account would get.
    DryRun {
        evaluations: Vec<Evaluation>,
        plan: Vec<serde_json::Value>,
    },
    /// Each account tried: those sent (now or earlier) and those stopped.
    Delivered {
        evaluations: Vec<Evaluation>,
        sent: Vec<SentTo>,
        /// The account, the thread item that stopped (`None` for a plain post), why.
        failed: Vec<(String, Option<usize>, Stop)>,
    },
}

/// One account the post (of a thread: one item) is out on.
struct SentTo {
    account: String,
    /// The thread item (`None` for a plain post).
    item: Option<usize>,
    published: Published,
    /// Sent by an earlier run (or found on the network): this run sent nothing.
    earlier: bool,
}

impl SentTo {
    fn json(&self) -> serde_json::Value {
        let mut entry = json!({"account": self.account, "id": self.published.id, "url": self.published.url, "earlier": self.earlier});
        if let Some(item) = self.item {
            entry["item"] = item.into();
        }
        entry
    }
}

impl Sender<'_> {
    /// The walk of one judged post: refused unless `allow`; unattended without `--yes`
    /// refused before the keychain or the network; the Mastodon instances' limits; the
    /// question; then each account's delivery (the claim judges it again at that moment).
    fn walk(
        &self,
        post: &Post,
        accounts: &[&Account],
        evaluations: Vec<Evaluation>,
        mut context: Context,
    ) -> Result<Walked, Error> {
        let (ctx, store, policy) = (self.ctx, self.store, self.policy);
        let mut verdict = overall(&evaluations);
        let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
        let digest = hex(&Sha256::digest(post.digest_message(&names).as_bytes()));
        let refuse = |evaluations: Vec<Evaluation>, verdict: Verdict| -> Result<Walked, Error> {
            for e in &evaluations {
                store.record(&audit::for_post(Event::Refused, policy, post, &digest, e))?;
            }
            Ok(Walked::Refused {
                evaluations,
                verdict,
            })
        };
        if verdict != Verdict::Allow {
            return refuse(evaluations, verdict);
        }

        // Unattended without `--yes`: refuse before the keychain or the network is touched.
        if !self.yes && !self.dry_run && !ctx.env.stdin_is_terminal {
            return Err(Error::usage(
                "refusing to send without confirmation: stdin is not a terminal",
            )
            .with_hint(
                "pass `--yes` to send from a script; `--dry-run` shows what would be sent",
            ));
        }

        // Mastodon instances say how long a status may be: asked (without a token) for each
        // delivery that may still need the network, then the post is judged again with it. This
        // comes before the question, the journal and any upload.
        let last_item = u32::try_from(post.items.len() - 1).unwrap_or(u32::MAX);
        context.instances =
            instance_limits(ctx, store, accounts, (&digest, last_item), self.client)?;
        let evaluations = if context.instances.is_empty() {
            evaluations
        } else {
            let again = self.engine.evaluate(post, accounts, &context);
            verdict = overall(&again);
            if verdict != Verdict::Allow {
                return refuse(again, verdict);
            }
            again
        };
        if !self.yes && !self.dry_run {
            show(ctx, post, accounts, &evaluations);
            let confirmed = crate::commands::confirm(format!(
                "Send this {} to {}?",
                if post.thread { "thread" } else { "post" },
                crate::core::spanned::list(&names.iter().map(String::as_str).collect::<Vec<_>>())
            ))?;
            if !confirmed {
                return Ok(Walked::NotConfirmed);
            }
        }

        if self.dry_run {
            let plan = dry_run(ctx, store, post, accounts, &digest, &evaluations, self.each)?;
            return Ok(Walked::DryRun { evaluations, plan });
        }

        let show_progress = self.each
            && ctx.env.stderr_is_terminal
            && !ctx.global.json
            && ctx.verbosity() != Verbosity::Quiet;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let moment = Moment {
            ctx,
            policy,
            engine: self.engine,
            post,
            accounts: &names,
            instances: &context.instances,
        };
        let mut evaluations = evaluations;
        let mut sent = Vec::new();
        let mut failed: Vec<(String, Option<usize>, Stop)> = Vec::new();
        let media: Vec<Vec<Media>> = post.items.iter().map(read_media).collect();
        for account in accounts {
            let progress = Progress::new(show_progress, &account.name);
            let reply_to = match &post.options.reply_to {
                Some(written) => Some(
                    crate::core::target::reply_target(account, written).map_err(|why| {
                        Error::usage(why).with_hint(crate::core::target::hint(account.platform))
                    })?,
                ),
                None => None,
            };
            // A thread goes out item by item, each one delivery (SPEC §8): item k > 0 answers
            // the id the journal recorded for item k - 1, and the first item that does not go
            // out stops the account's thread there; the next run resumes from it.
            let mut parent: Option<String> = None;
            for (index, item) in post.items.iter().enumerate() {
                let outgoing = Outgoing {
                    text: &item.text,
                    media: &media[index],
                    reply_to: if index == 0 {
                        reply_to.as_deref()
                    } else {
                        parent.as_deref()
                    },
                    language: post.options.language.as_deref(),
                    visibility: post.options.visibility,
                    key: "",
                    progress: &progress,
                };
                let delivery = Delivery {
                    ctx,
                    store,
                    client: self.client,
                    account,
                    item: u32::try_from(index).unwrap_or(u32::MAX),
                    digest: &digest,
                    moment: &moment,
                    evaluations: &evaluations,
                    force_resend: self.force_resend,
                };
                let which = if post.thread {
                    format!(" (thread item {index})")
                } else {
                    String::new()
                };
                match delivery.run(&outgoing) {
                    Ok((published, earlier)) => {
                        if self.each && !ctx.global.json {
                            let how = if earlier { "already sent" } else { "sent" };
                            ctx.print.note(&format!(
                                "{how} to `{}`{which}: {}",
                                account.name, published.url
                            ));
                            // Sent: a reader gone away must not stop the thread's next item.
                            let _ = ctx.print.line(&published.url);
                        }
                        parent = Some(published.id.clone());
                        sent.push(SentTo {
                            account: account.name.clone(),
                            item: post.thread.then_some(index),
                            published,
                            earlier,
                        });
                    }
                    Err(stop) => {
                        if let Stop::Refused { evaluation, .. } = &stop
                            && let Some(e) = evaluations
                                .iter_mut()
                                .find(|e| e.account.as_deref() == Some(account.name.as_str()))
                        {
                            *e = (**evaluation).clone();
                        }
                        if self.each {
                            stop.print(ctx, post, &account.name);
                            if post.thread && index + 1 < post.items.len() {
                                ctx.print.note(&format!(
                                    "the thread to `{}` stopped at item {index}: items {index} to {} were not sent by this run; run the same `gate post` again to resume from item {index}",
                                    account.name,
                                    post.items.len() - 1
                                ));
                            }
                        }
                        failed.push((account.name.clone(), post.thread.then_some(index), stop));
                        break;
                    }
                }
            }
        }
        Ok(Walked::Delivered {
            evaluations,
            sent,
            failed,
        })
    }
}

/// How a delivery ended without a post this run can show.
enum Stop {
    /// Judged again at the moment of sending and refused (a freeze, a new banned term, a
    /// closed window, a reached limit): nothing was sent by this run.
    Refused {
        evaluation: Box<Evaluation>,
        /// An earlier try of this delivery may have gone out all the same.
        maybe_sent: bool,
    },
    /// It could not be sent, or its outcome is unknown (`maybe_sent`).
    Failed { error: Error, maybe_sent: bool },
}

impl Stop {
    fn code(&self) -> Code {
        match self {
            Stop::Refused { evaluation, .. } => Code::from(evaluation.verdict),
            Stop::Failed { error, .. } => error.code(),
        }
    }

    /// A delivery that failed; when an earlier attempt may have gone out, the error's hint
    /// never says that nothing was sent.
    fn failed(error: Error, maybe_sent: bool) -> Stop {
        let error = if maybe_sent {
            error.earlier_may_be_out()
        } else {
            error
        };
        Stop::Failed { error, maybe_sent }
    }

    fn maybe_sent(&self) -> bool {
        match self {
            Stop::Refused { maybe_sent, .. } | Stop::Failed { maybe_sent, .. } => *maybe_sent,
        }
    }

    fn message(&self) -> String {
        match self {
            Stop::Refused { evaluation, .. } => format!(
                "the post became `{}` at the moment of sending: {}",
                evaluation.verdict.name(),
                evaluation
                    .findings
                    .iter()
                    .filter(|f| f.severity.verdict() == evaluation.verdict)
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Stop::Failed { error, .. } => error.message(),
        }
    }

    fn print(&self, ctx: &Ctx, post: &Post, account: &str) {
        match self {
            Stop::Refused {
                evaluation,
                maybe_sent,
            } => {
                if ctx.global.json {
                    return;
                }
                let mut err = crate::output::evaluation(post, evaluation, ctx.verbosity());
                let what = if *maybe_sent {
                    "not sent by this run (an earlier attempt may have gone out)"
                } else {
                    "not sent"
                };
                let _ = writeln!(
                    err,
                    "{what} to `{account}`: the post became `{}` at the moment of sending",
                    evaluation.verdict.name()
                );
                ctx.print.say(err);
            }
            Stop::Failed { error, .. } => ctx.print.error(error),
        }
    }
}

/// What the post is judged with at the moment of sending: the policy as loaded, and what is
/// needed to judge it again.
struct Moment<'a> {
    ctx: &'a Ctx,
    policy: &'a crate::core::policy::Policy,
    engine: &'a Engine<'a>,
    post: &'a Post,
    /// Every account the post goes to (the digest covers them all).
    accounts: &'a [&'a str],
    instances: &'a BTreeMap<String, crate::core::length::Instance>,
}

impl Moment<'_> {
    /// Judges the post for `account` as things are now: the freeze read again, the policy file
    /// read again (and used when it changed), the clock of this moment and `sends`, the ledger
    /// the claim counted. `Ok(None)`: it may go; `Ok(Some(evaluation))`: it may not.
    fn judge(
        &self,
        account: &str,
        freeze: Option<crate::core::evaluate::LocalFreeze>,
        sends: crate::core::limits::Sends,
    ) -> Result<Option<Evaluation>, Error> {
        let changed = self.policy_now()?;
        let (engine, owned);
        let engine: &Engine<'_> = match &changed {
            Some(policy) => {
                owned = Engine::new(policy);
                engine = &owned;
                engine
            }
            None => {
                engine = self.engine;
                engine
            }
        };
        let policy = engine.policy();
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for name in self.accounts {
            accounts.push(policy.account(name).ok_or_else(|| {
                Error::other(format!(
                    "the policy changed while gate waited: `{name}` is no longer one of its accounts"
                ))
                .with_hint("nothing was sent to it; run `gate post` again against the new policy")
            })?);
        }
        let context = Context {
            now: Utc::now(),
            local_freeze: freeze,
            sends,
            instances: self.instances.clone(),
        };
        let evaluation = engine
            .evaluate(self.post, &accounts, &context)
            .into_iter()
            .find(|e| e.account.as_deref() == Some(account))
            .ok_or_else(|| Error::other(format!("`{account}` was not judged")))?;
        Ok((evaluation.verdict != Verdict::Allow).then_some(evaluation))
    }

    /// The policy file as it is now, when it differs from the one loaded; an error (exit 3)
    /// when it can no longer be read or is invalid.
    fn policy_now(&self) -> Result<Option<crate::core::policy::Policy>, Error> {
        let bytes = std::fs::read(&self.policy.path).map_err(|e| {
            Error::other(format!(
                "cannot read the policy `{}` again before sending: {}",
                self.policy.path.display(),
                io_reason(&e)
            ))
            .with_hint("nothing was sent; put the policy back and run `gate post` again")
        })?;
        if hex(&Sha256::digest(&bytes)) == self.policy.sha256 {
            return Ok(None);
        }
        let (policy, diagnostics) = crate::inputs::load_policy(&self.policy.path);
        match policy {
            Some(policy) => {
                self.ctx.print.note(&format!(
                    "the policy `{}` changed while gate waited; judging the post again with it",
                    self.policy.path.display()
                ));
                Ok(Some(policy))
            }
            None => Err(Error::Policy { diagnostics }),
        }
    }
}

/// One delivery of the post to one account, and what it needs.
struct Delivery<'a> {
    ctx: &'a Ctx,
    store: &'a dyn Store,
    client: &'a crate::http::Prepared,
    account: &'a Account,
    /// The thread item (0 for a plain post).
    item: u32,
    digest: &'a str,
    moment: &'a Moment<'a>,
    /// The judgement shown to the user, for the audit entry of a post that goes out.
    evaluations: &'a [Evaluation],
    force_resend: bool,
}

impl Delivery<'_> {
    /// Sends the delivery at most once; returns the post and whether an earlier run made it.
    /// Under the delivery's lock: the journal first (already sent: done), then a lookup for
    /// any earlier try that did not end `sent`, then, before each try, the claim that judges
    /// the post again at that moment.
    fn run(&self, message: &Outgoing<'_>) -> Result<(Published, bool), Stop> {
        let name = self.account.name.as_str();
        let failed = Stop::failed;
        let lock = self
            .store
            .lock_delivery(self.digest, name, self.item, LOCK_WAIT)
            .map_err(|e| failed(e, false))?;
        self.fault_point("locked");
        let row = self
            .store
            .get(self.digest, name, self.item)
            .map_err(|e| failed(e, false))?;
        if let Some(row) = &row {
            match row.state {
                State::Sent => {
                    let published = Published {
                        id: row.remote_id.clone().unwrap_or_default(),
                        url: row.url.clone().unwrap_or_default(),
                    };
                    return Ok((published, true));
                }
                State::Retracted => {
                    return Err(failed(
                        Error::other(format!(
                            "this post to `{name}` was retracted with `gate retract`; gate sends a post once"
                        ))
                        .with_hint("to post it again, change its text; nothing was sent"),
                        false,
                    ));
                }
                _ => {}
            }
        }
        // An earlier try that may have gone out: a crashed process (`pending`) or an unknown
        // outcome. A `failed` row was refused every time.
        let mut maybe_sent = row
            .as_ref()
            .is_some_and(|r| matches!(r.state, State::Pending | State::Unknown));
        // The keychain is read only for a delivery that may need the network.
        self.ctx
            .print
            .verbose(&format!("looking up `{name}`'s credential in the keychain"));
        let credential = crate::platforms::credential_for(&self.ctx.env, self.account)
            .map_err(|e| failed(e, maybe_sent))?;
        let client = self
            .client
            .get()
            .map_err(|e| failed(e, maybe_sent))?
            .clone();
        let platform = platforms::connect(self.account, credential, client)
            .map_err(|e| failed(e, maybe_sent))?;
        let key = match &row {
            Some(row) => row.key.clone(),
            // Item 0 keeps a plain post's name, so its key is what it always was.
            None if self.item == 0 => platform.new_key(&format!("{}/{name}", self.digest)),
            None => platform.new_key(&format!("{}/{name}/{}", self.digest, self.item)),
        };
        let outgoing = Outgoing {
            key: &key,
            ..*message
        };
        let claimed = row.as_ref().map_or_else(Utc::now, |r| r.created_at);

        if let Some(row) = &row {
            // Every try that did not end `sent` is looked for before anything is sent again.
            if maybe_sent {
                self.ctx.print.note(&format!(
                    "an earlier attempt to send to `{name}` did not finish; checking whether it went out"
                ));
            }
            self.ctx.print.verbose(&format!(
                "looking on {} for an earlier attempt to `{name}` (journal state {:?})",
                self.account.server, row.state
            ));
            match platform.find(&outgoing, claimed) {
                Ok(Lookup::Found(published)) => {
                    self.confirmed(&published).map_err(|e| failed(e, true))?;
                    return Ok((published, true));
                }
                Ok(Lookup::Absent) => {}
                // A delivery refused every time cannot be out there.
                Ok(Lookup::Undetermined { .. }) if row.state == State::Failed => {}
                Ok(Lookup::Undetermined { reason }) => {
                    if !self.force_resend {
                        return Err(failed(undetermined(self.account, &reason), true));
                    }
                    self.ctx.print.note(&format!(
                        "`{name}`: {reason}; sending anyway (`--force-resend`)"
                    ));
                }
                Err(e) => {
                    return Err(failed(
                        send_error(self.account, e, true, maybe_sent),
                        maybe_sent,
                    ));
                }
            }
        }

        let mut tries = 0;
        loop {
            tries += 1;
            self.claim(&key)
                .map_err(|stop| stop.with_maybe_sent(maybe_sent))?;
            self.ctx.print.verbose(&format!(
                "claimed the delivery to `{name}` in the journal (digest {}, try {tries})",
                &self.digest[..16.min(self.digest.len())]
            ));
            self.fault_point("after-journal");
            // A team store's lock goes with its connection: without it, another machine may
            // be resolving this delivery, so nothing is sent (the row stays `pending`).
            lock.still_held().map_err(|e| failed(e, maybe_sent))?;
            self.ctx.print.verbose(&format!(
                "sending to `{name}`: {} at {}",
                self.account.platform, self.account.server
            ));
            let outcome = platform.publish(&outgoing);
            let outcome = match outcome {
                Ok(published) => Ok(published),
                Err(SendError::Unknown { message }) => {
                    maybe_sent = true;
                    self.mark(State::Unknown, &message);
                    match platform.find(&outgoing, claimed) {
                        Ok(Lookup::Found(published)) => Ok(published),
                        // Not there: send again, with the same key.
                        Ok(Lookup::Absent) if tries < SEND_TRIES => {
                            crate::pause::sleep(Duration::from_millis(500) * tries);
                            continue;
                        }
                        Ok(Lookup::Undetermined { reason }) if !self.force_resend => {
                            return Err(failed(undetermined(self.account, &reason), true));
                        }
                        Ok(Lookup::Undetermined { .. }) if tries < SEND_TRIES => {
                            crate::pause::sleep(Duration::from_millis(500) * tries);
                            continue;
                        }
                        Ok(_) => Err(SendError::Unknown { message }),
                        Err(e) => return Err(self.lookup_failed(e)),
                    }
                }
                // A post with these very words is there: ours if it was made since the claim.
                // Never sent again: the network would refuse the copy every time.
                Err(SendError::Duplicate { message }) => {
                    match platform.find(&outgoing, claimed) {
                        Ok(Lookup::Found(published)) => Ok(published),
                        // Older than this delivery, and no try of it may be out: not ours.
                        Ok(Lookup::Absent) if !maybe_sent => {
                            let e = Error::network(format!("`{name}`: {message}")).with_hint(
                                "the account already has an older post with these very words, and the network refuses a copy; to post it, change its text; nothing was sent",
                            );
                            self.mark(State::Failed, &e.message());
                            return Err(failed(e, false));
                        }
                        Ok(Lookup::Undetermined { reason }) if !self.force_resend => {
                            return Err(failed(undetermined(self.account, &reason), true));
                        }
                        Ok(_) => Err(SendError::Unknown { message }),
                        Err(e) => return Err(self.lookup_failed(e)),
                    }
                }
                Err(SendError::RateLimited {
                    retry_after: Some(pause),
                    ..
                }) if tries < SEND_TRIES && pause <= RATE_WAIT => {
                    self.ctx.print.note(&format!(
                        "`{name}` is rate limited; retrying in {} s",
                        pause.as_secs().max(1)
                    ));
                    crate::pause::sleep(pause);
                    continue;
                }
                Err(e) => Err(e),
            };
            return match outcome {
                Ok(published) => {
                    self.fault_point("after-publish");
                    self.confirmed(&published).map_err(|e| failed(e, true))?;
                    self.fault_point("after-sent");
                    Ok((published, false))
                }
                Err(e) => {
                    let unknown = matches!(e, SendError::Unknown { .. });
                    maybe_sent |= unknown;
                    let e = send_error(self.account, e, false, maybe_sent);
                    self.mark(
                        if maybe_sent {
                            State::Unknown
                        } else {
                            State::Failed
                        },
                        &e.message(),
                    );
                    Err(failed(e, maybe_sent))
                }
            };
        }
    }

    /// The claim before a try: under the journal's write lock, the post judged again at this
    /// moment (the freeze and the policy read again, the clock of now, the sends of the hour
    /// counted with `pending` ones), and the row marked `pending` only if it may go. A refusal
    /// is audited as such.
    fn claim(&self, key: &str) -> Result<(), Stop> {
        let name = self.account.name.as_str();
        let failed = |error: Error| Stop::Failed {
            error,
            maybe_sent: false,
        };
        let mut error = None;
        let claim = Claim {
            digest: self.digest,
            account: name,
            item: self.item,
            platform: self.account.platform.name(),
            key,
            now: Utc::now(),
        };
        let claimed = self
            .store
            .judged_claim(&claim, |ledger| {
                match self.moment.judge(name, ledger.freeze, ledger.sends) {
                    Ok(None) => Ok(()),
                    Ok(Some(evaluation)) => Err(Some(Box::new(evaluation))),
                    Err(e) => {
                        error = Some(e);
                        Err(None)
                    }
                }
            })
            .map_err(failed)?;
        match claimed {
            Ok(()) => Ok(()),
            Err(Some(evaluation)) => {
                let entry = audit::for_post(
                    Event::Refused,
                    self.moment.policy,
                    self.moment.post,
                    self.digest,
                    &evaluation,
                );
                self.store.append(&entry, Utc::now()).map_err(failed)?;
                Err(Stop::Refused {
                    evaluation,
                    maybe_sent: false,
                })
            }
            Err(None) => Err(failed(error.unwrap_or_else(|| {
                Error::other(format!("`{name}` could not be judged again before sending"))
            }))),
        }
    }

    /// Records a try that ended without a post (best effort: the error already says what happened).
    /// A lookup after a try that may have gone out could not be made: the delivery stays
    /// `unknown`, and the error says it may be out.
    fn lookup_failed(&self, e: SendError) -> Stop {
        let e = send_error(self.account, e, true, true);
        self.mark(State::Unknown, &e.message());
        Stop::failed(e, true)
    }

    fn mark(&self, state: State, message: &str) {
        let _ = self.store.mark(
            self.digest,
            &self.account.name,
            self.item,
            state,
            message,
            Utc::now(),
        );
    }

    /// [`fault_point`] at `point`, and for a thread's later items also at `point@ITEM`
    /// (`after-publish@2`: item 2 went out, not yet recorded), so a test can stop a thread
    /// part-way.
    fn fault_point(&self, point: &str) {
        if self.item == 0 {
            fault_point(&self.ctx.env, point);
        }
        fault_point(&self.ctx.env, &format!("{point}@{}", self.item));
    }

    /// Records a post that went out: `sent` and its audit entry, in one transaction. A failure
    /// here says loudly that the post did go out.
    fn confirmed(&self, published: &Published) -> Result<(), Error> {
        let name = self.account.name.as_str();
        let entry = audit::sent_entry(
            self.moment.policy,
            self.moment.post,
            self.digest,
            (name, self.item as usize),
            self.evaluations,
            &published.url,
        );
        self.store
            .mark_sent(
                self.digest,
                name,
                self.item,
                (&published.id, &published.url),
                &entry,
                Utc::now(),
            )
            .map_err(|e| {
                Error::other(format!(
                    "`{name}`: the post went out ({}) but {}",
                    published.url,
                    e.message()
                ))
                .with_hint("the next `gate post` of it finds it on the network and records it; it is never sent again")
            })
    }
}

impl Stop {
    fn with_maybe_sent(self, earlier: bool) -> Stop {
        match self {
            Stop::Refused {
                evaluation,
                maybe_sent,
            } => Stop::Refused {
                evaluation,
                maybe_sent: maybe_sent || earlier,
            },
            Stop::Failed { error, maybe_sent } => Stop::failed(error, maybe_sent || earlier),
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

/// A platform's failure as gate's error: 401 → exit 8, the rest exit 9. `maybe_sent`: an
/// earlier try of this delivery may have gone out, so the hint never says nothing was sent.
fn send_error(account: &Account, e: SendError, resolving: bool, maybe_sent: bool) -> Error {
    let name = &account.name;
    let sent = if maybe_sent {
        "an earlier try may have gone out, so run the same `gate post` again: it looks before it sends and never posts twice"
    } else {
        "nothing was sent"
    };
    match e {
        SendError::Credentials { message } => Error::credentials(format!("`{name}`: {message}"))
            .with_hint(format!(
                "the token was rejected; run `gate auth login {name}`; {sent}"
            )),
        SendError::Refused {
            status: crate::platforms::NOT_CONNECTED,
            message,
        } => Error::network(format!("`{name}`: {message}")).with_hint(format!(
            "the server did not answer; check the account's `server` in the policy and the network; {sent}"
        )),
        SendError::Refused { message, .. } => Error::network(format!("`{name}`: {message}"))
            .with_hint(format!("the network refused the post; {sent}")),
        SendError::RateLimited {
            retry_after,
            message,
        } => {
            let when = retry_after.map_or_else(
                || "later".to_owned(),
                |d| format!("in {} s", d.as_secs().max(1)),
            );
            let hint = if maybe_sent {
                format!("rate limited; {sent} ({when})")
            } else {
                format!("rate limited; nothing was sent; run the same `gate post` again {when}")
            };
            Error::network(format!("`{name}`: {message}")).with_hint(hint)
        }
        SendError::Unknown { message } | SendError::Duplicate { message } => {
            let what = if resolving {
                "could not check whether an earlier attempt went out"
            } else {
                "the outcome is unknown: the post may have been sent"
            };
            Error::network(format!("`{name}`: {message}")).with_hint(format!(
                "{what}; run the same `gate post` again: it checks before sending and never posts twice"
            ))
        }
    }
}

/// Test builds only: `GATE_TEST_FAULT=POINT` stops the process at that point (it announces
/// itself on stderr and waits to be killed, aborting after a minute), so tests can SIGKILL it
/// there; `GATE_TEST_PAUSE=POINT:MS` announces the point and pauses there that long, then goes
/// on, so tests can change the world while gate waits. The points: `locked` (the delivery lock
/// taken, nothing read yet), `after-journal` (claimed, not sent), `after-publish` (sent, not
/// recorded), `after-sent` (recorded). Release builds have no such hooks.
#[cfg(debug_assertions)]
fn fault_point(env: &Env, point: &str) {
    use std::io::Write as _;
    if env.var("GATE_TEST_FAULT") == Some(point) {
        let _ = writeln!(std::io::stderr(), "gate-test-fault: {point}");
        std::thread::sleep(Duration::from_secs(60));
        std::process::abort();
    }
    if let Some((at, ms)) = env.var("GATE_TEST_PAUSE").and_then(|v| v.split_once(':'))
        && at == point
        && let Ok(ms) = ms.parse::<u64>()
    {
        let _ = writeln!(std::io::stderr(), "gate-test-pause: {point}");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(not(debug_assertions))]
fn fault_point(_: &Env, _: &str) {}

/// The length limits of the Mastodon instances of `accounts` whose delivery of this post
/// is not journaled yet (a sent post needs no network). An instance that cannot be asked, or
/// answers something else, is left out: the policy's limits apply (said with `-v`).
fn instance_limits(
    ctx: &Ctx,
    store: &dyn Store,
    accounts: &[&Account],
    (digest, last_item): (&str, u32),
    client: &crate::http::Prepared,
) -> Result<BTreeMap<String, crate::core::length::Instance>, Error> {
    let mastodon: Vec<&&Account> = accounts
        .iter()
        .filter(|a| a.platform == Network::Mastodon)
        .collect();
    let mut limits = BTreeMap::new();
    if mastodon.is_empty() {
        return Ok(limits);
    }
    let mut asked: BTreeMap<&str, Option<crate::core::length::Instance>> = BTreeMap::new();
    for account in mastodon {
        if store
            .get(digest, &account.name, last_item)?
            .is_some_and(|row| matches!(row.state, State::Sent | State::Retracted))
        {
            continue;
        }
        let server = account.server.as_str();
        let found = match asked.get(server) {
            Some(found) => *found,
            None => {
                let found = match platforms::mastodon::instance(client.get()?, server) {
                    Ok(instance) => {
                        if ctx.verbosity() == Verbosity::Verbose {
                            ctx.print.note(&format!(
                                "{server}: statuses of up to {} characters, links count {}",
                                instance.max_characters, instance.characters_reserved_per_url
                            ));
                        }
                        Some(instance)
                    }
                    Err(why) => {
                        if ctx.verbosity() == Verbosity::Verbose {
                            ctx.print.note(&format!(
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

/// What `--dry-run` would do for each account (the credential read, the journal looked at),
/// said on stderr when `each`; the plan comes back for the JSON.
fn dry_run(
    ctx: &Ctx,
    store: &dyn Store,
    post: &Post,
    accounts: &[&Account],
    digest: &str,
    evaluations: &[Evaluation],
    each: bool,
) -> Result<Vec<serde_json::Value>, Error> {
    if each && !ctx.global.json && ctx.verbosity() != Verbosity::Quiet {
        show(ctx, post, accounts, evaluations);
    }
    let mut plan = Vec::new();
    for account in accounts {
        ctx.print.verbose(&format!(
            "looking up `{}`'s credential in the keychain",
            account.name
        ));
        crate::platforms::credential_for(&ctx.env, account)?;
        for index in 0..post.items.len() {
            let item = u32::try_from(index).unwrap_or(u32::MAX);
            let row = store.get(digest, &account.name, item)?;
            let (what, url) = match row {
                Some(r) if r.state == State::Sent => ("already sent", r.url),
                Some(r) if r.state == State::Retracted => {
                    ("retracted earlier; would refuse to send", r.url)
                }
                Some(r) if matches!(r.state, State::Pending | State::Unknown) => (
                    "an earlier attempt may have gone out; would look for it, then send only if it is not there",
                    None,
                ),
                Some(r) if r.state == State::Failed => (
                    "an earlier attempt was refused; would look for it, then send",
                    None,
                ),
                _ => ("would send", None),
            };
            let options = if post.options.is_empty() {
                String::new()
            } else {
                format!(" ({})", post.options.describe())
            };
            let which = if post.thread {
                format!(" (thread item {index})")
            } else {
                String::new()
            };
            if each {
                ctx.print.note(&format!(
                    "dry run: {what} to `{}`{which}{options}{}",
                    account.name,
                    url.as_ref().map(|u| format!(": {u}")).unwrap_or_default()
                ));
            }
            let mut step = json!({"account": account.name, "action": what, "url": url});
            if post.thread {
                step["item"] = index.into();
            }
            plan.push(step);
        }
    }
    Ok(plan)
}

/// What is about to be sent, exactly, on stderr before the question (and in `--dry-run`):
/// the text counted as each network counts it, the media, the accounts, and every `warn`
/// finding, which does not block but should be read.
fn show(ctx: &Ctx, post: &Post, accounts: &[&Account], evaluations: &[Evaluation]) {
    let mut err = String::new();
    for (index, item) in post.items.iter().enumerate() {
        let mut counts: Vec<String> = Vec::new();
        for platform in [Network::Mastodon, Network::Bluesky, Network::X] {
            if accounts.iter().any(|a| a.platform == platform) {
                let n = crate::core::length::count(platform, &item.text);
                counts.push(match platform {
                    Network::Bluesky => format!("{n} graphemes on Bluesky"),
                    Network::X => format!("{n} weighted characters on X"),
                    Network::Mastodon => format!("{n} characters on Mastodon"),
                });
            }
        }
        let which = if post.thread {
            format!("thread item {index} of items 0-{}: ", post.items.len() - 1)
        } else {
            String::new()
        };
        let _ = writeln!(err, "--- {which}text ({})", counts.join(", "));
        let _ = writeln!(err, "{}", item.text);
        let _ = writeln!(err, "---");
        for m in &item.media {
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
    }
    if !post.options.is_empty() {
        let _ = writeln!(err, "sent with: {}", post.options.describe());
    }
    for a in accounts {
        let _ = writeln!(err, "to: `{}` ({} at {})", a.name, a.platform, a.server);
    }
    let mut seen: Vec<&str> = Vec::new();
    for e in evaluations {
        for f in e.findings.iter().filter(|f| f.severity == Severity::Warn) {
            if !seen.contains(&f.message.as_str()) {
                seen.push(&f.message);
                let _ = writeln!(err, "warning: {}", f.message);
            }
        }
    }
    ctx.print.say(err);
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

/// An item's attachments as they will be uploaded: the bytes read (and hashed) when the post
/// was read, so what was judged and signed is what goes out.
fn read_media(item: &post::Item) -> Vec<Media> {
    item.media
        .iter()
        .map(|m| {
            let name = m
                .path
                .file_name()
                .map_or_else(|| m.written.clone(), |n| n.to_string_lossy().into_owned());
            Media {
                mime: mime(&name).to_owned(),
                name,
                bytes: m.data.to_vec(),
                alt: m.alt.clone(),
            }
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
        ctx.print
            .json(&json!({"verdict": verdict, "posts": evaluations, "sent": []}))?;
    } else {
        let mut err = String::new();
        for e in evaluations {
            err.push_str(&crate::output::evaluation(post, e, ctx.verbosity()));
        }
        let _ = writeln!(err, "not sent: the post is `{}`", verdict.name());
        ctx.print.say(err);
    }
    Ok(())
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
