//! `gate check`: judge posts against the policy. Never touches the network or the keychain.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{BufRead, Write as _};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::cli::{CheckArgs, Format};
use crate::commands::{Ctx, parse_now};
use crate::core::diagnostic::{Diagnostic, Level};
use crate::core::evaluate::{Context, Engine, Evaluation, Judged, Verdict, overall};
use crate::core::policy::{Account, Policy, Written, parse_datetime};
use crate::core::post::{Origin, Post};
use crate::error::{Code, Error, io_reason};
use crate::output::{self, Verbosity};
use crate::store::{Access, Store};

/// The store's rate ledger of the hour before `now` (read-only), when the policy has rate
/// limits.
fn recent_sends(
    store: &dyn Store,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<crate::core::limits::Sends, Error> {
    if policy.limits.is_empty() {
        return Ok(crate::core::limits::Sends::default());
    }
    store.ledger(now)
}

pub fn run(ctx: &Ctx, args: &CheckArgs) -> Result<Code, Error> {
    let now = match &args.now {
        Some(text) => parse_now(text)?,
        None => Utc::now(),
    };
    if args.text.is_none() && args.file.is_empty() && args.jsonl.is_none() {
        return Err(Error::usage("nothing to check").with_hint(
            "give the text, `-` to read it from stdin, `--file PATH...` or `--jsonl FILE`",
        ));
    }
    // clap's `requires` gives way to `conflicts_with`, so `-j 2 TEXT` would pass unnoticed.
    if args.jobs.is_some() && args.jsonl.is_none() {
        return Err(Error::usage(
            "`--jobs` applies to a `--jsonl` calendar; text and post files are judged on one thread",
        ));
    }
    if !args.account.is_empty() && !args.file.is_empty() {
        return Err(Error::usage(
            "`--account` applies to inline text; post files name their own accounts",
        ));
    }
    // `--file` takes every value after it, so `--file posts "some text"` makes the text a
    // path: say so rather than report a post file that cannot be read.
    if let Some(stray) = args.file.iter().skip(1).find(|p| !p.exists()) {
        return Err(Error::usage(format!(
            "`{}` after `--file` is neither a file nor a folder",
            stray.display()
        ))
        .with_hint(
            "`--file` reads every value after it as a path; check inline text on its own: `gate check \"TEXT\"`",
        ));
    }
    let policy = ctx.load_policy(None)?;
    let accounts = crate::commands::inline_accounts(&policy, &args.account)?;
    // Read-only: `gate check` never creates or migrates the store.
    let store = ctx.store(Some(&policy), Access::Read)?;
    let store: &dyn Store = store.as_ref();
    let context = Context {
        now,
        local_freeze: store.freeze()?,
        sends: recent_sends(store, &policy, now)?,
        instances: std::collections::BTreeMap::new(),
    };
    let engine = Engine::new(&policy);
    let format = if ctx.global.json {
        Format::Json
    } else {
        args.format
    };

    if let Some(path) = &args.jsonl {
        let jobs = args.jobs.map(std::num::NonZeroUsize::get);
        return check_jsonl(ctx, store, format, &engine, path, &accounts, &context, jobs);
    }

    let mut posts = Vec::new();
    let mut diagnostics = Vec::new();
    // Post files that could not be read or parsed: never `allow` (SPEC §5).
    let mut invalid: Vec<String> = Vec::new();
    if let Some(text) = &args.text {
        posts.push(if text == "-" {
            Post::inline(Origin::Stdin, crate::inputs::read_stdin()?)
        } else {
            Post::inline(Origin::Argument, text.clone())
        });
    }
    for path in &args.file {
        let files = if path.is_dir() {
            let files = crate::inputs::find_post_files(path).map_err(|e| {
                Error::other(format!("cannot read the folder `{}`: {e}", path.display()))
            })?;
            if files.is_empty() {
                ctx.print.note(&format!(
                    "note: no `*.post.toml` files under `{}`",
                    path.display()
                ));
            }
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            match crate::inputs::load_post(&file, &policy) {
                Ok(p) => posts.push(p),
                Err(d) => {
                    if d.iter().any(Diagnostic::is_error) {
                        invalid.push(file.display().to_string());
                    }
                    diagnostics.extend(d);
                }
            }
        }
    }

    let mut evaluations: Vec<(usize, Evaluation)> = Vec::new();
    for (i, p) in posts.iter().enumerate() {
        let targets = crate::core::post::targets(&policy, p, &accounts);
        for e in engine.evaluate(p, &targets, &context) {
            evaluations.push((i, e));
        }
    }
    let verdict = overall(evaluations.iter().map(|(_, e)| e));
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();

    if format == Format::Github || format == Format::Markdown {
        ci_report(
            ctx,
            format,
            &policy,
            &posts,
            &evaluations,
            &diagnostics,
            &invalid,
        )?;
    } else if format == Format::Json {
        let mut entries: Vec<serde_json::Value> = evaluations
            .iter()
            .map(|(_, e)| serde_json::to_value(e).expect("evaluations serialise"))
            .collect();
        for file in &invalid {
            let errors: Vec<serde_json::Value> = diagnostics
                .iter()
                .filter(|d| d.is_error() && &d.file == file)
                .map(crate::core::diagnostic::Diagnostic::json)
                .collect();
            entries.push(serde_json::json!({"source": file, "verdict": "invalid", "findings": [], "errors": errors}));
        }
        let mut doc = serde_json::json!({
            "verdict": if invalid.is_empty() { serde_json::to_value(verdict).expect("a verdict serialises") } else { "invalid".into() },
            "posts": entries,
        });
        if !diagnostics.is_empty() {
            doc["errors"] = diagnostics
                .iter()
                .map(crate::core::diagnostic::Diagnostic::json)
                .collect();
        }
        ctx.print.json(&doc)?;
        if errors > 0 {
            ctx.print.error(&Error::Input { diagnostics });
        }
    } else {
        let mut out = String::new();
        for (i, e) in &evaluations {
            out.push_str(&output::evaluation(&posts[*i], e, ctx.verbosity()));
        }
        if evaluations.len() > 1 || errors > 0 {
            // Files that could not be read count once each, however many errors they hold.
            out.push_str(&output::summary(
                evaluations.iter().map(|(_, e)| e.verdict),
                invalid.len(),
            ));
            out.push('\n');
        }
        ctx.print.out(out)?;
        if !diagnostics.is_empty() {
            ctx.print.error(&Error::Input { diagnostics });
        }
    }
    Ok(if errors > 0 {
        Code::Usage
    } else {
        Code::from(verdict)
    })
}

/// `--format github` and `--format markdown` for posts given inline or as files.
fn ci_report(
    ctx: &Ctx,
    format: Format,
    policy: &Policy,
    posts: &[Post],
    evaluations: &[(usize, Evaluation)],
    diagnostics: &[Diagnostic],
    invalid: &[String],
) -> Result<(), Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let of = |i: usize| -> Vec<&Evaluation> {
        evaluations
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, e)| e)
            .collect()
    };
    if format == Format::Github {
        for (i, post) in posts.iter().enumerate() {
            let _ = write!(out, "{}", output::github(policy, post, &of(i)));
        }
        for d in diagnostics {
            let _ = write!(out, "{}", output::github_diagnostic(d));
        }
        return ctx.print.out(out);
    }
    let _ = write!(out, "{}", output::MARKDOWN_HEAD);
    for (i, post) in posts.iter().enumerate() {
        let _ = write!(out, "{}", output::markdown_rows(policy, post, &of(i)));
    }
    for file in invalid {
        let mine: Vec<&Diagnostic> = diagnostics
            .iter()
            .filter(|d| d.is_error() && &d.file == file)
            .collect();
        let _ = write!(out, "{}", output::markdown_invalid(file, &mine));
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let _ = writeln!(
        out,
        "\n{}",
        output::summary(evaluations.iter().map(|(_, e)| e.verdict), errors)
    );
    ctx.print.out(out)?;
    if !diagnostics.is_empty() {
        ctx.print.error(&Error::Input {
            diagnostics: diagnostics.to_vec(),
        });
    }
    Ok(())
}

/// One line of a `--jsonl` calendar, borrowed from the line where no escape forces a copy.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default, borrow)]
    account: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    at: Option<Cow<'a, str>>,
}

/// How many lines a thread of `check --jsonl` takes at a time: enough that handing a batch
/// over costs nothing beside judging it, few enough that results start at once.
const BATCH: usize = 256;

/// What every line of a calendar is judged with, shared by the threads of `check_jsonl`.
struct Calendar<'a, 'p> {
    format: Format,
    verbosity: Verbosity,
    engine: &'a Engine<'p>,
    policy: &'p Policy,
    path: &'a Path,
    display: String,
    default_accounts: &'a [&'p Account],
    context: &'a Context,
    /// `{"source":"PATH:` and the `account` of a line with nothing to report (`write_quiet`).
    quiet_head: Vec<u8>,
    quiet_account: Option<Vec<u8>>,
}

/// The results of consecutive lines, in their order: what goes to stdout (through the
/// printer for `human`), the Markdown table's rows, the bad lines' diagnostics and the
/// verdict of each judged line.
#[derive(Default)]
struct Results {
    out: Vec<u8>,
    table: String,
    bad: Vec<Diagnostic>,
    verdicts: Vec<Verdict>,
}

/// What a thread made of one batch of lines: runs of judged lines with, in their places, the
/// lines only the thread holding the state store may judge (`Step::Defer`); then the error
/// that ended the reading, if one did.
#[derive(Default)]
struct Batch {
    parts: Vec<Part>,
    error: Option<Error>,
}

enum Part {
    Judged(Results),
    /// A line left to the main thread: its number and its bytes.
    Deferred(usize, Vec<u8>),
}

enum Step {
    Done,
    /// The line has its own `at` and the policy has rate limits: its ledger is in the state
    /// store, which only the main thread holds.
    Defer,
}

/// A thread's buffers, kept from line to line: one post whose text buffers keep their
/// capacity, the verdicts of its accounts, and `source` (`PATH:` then the line's number).
struct Scratch<'p> {
    post: Post,
    judged: Vec<Judged<'p>>,
    source: String,
    prefix: usize,
}

impl Scratch<'_> {
    fn new(cal: &Calendar<'_, '_>) -> Self {
        let source = format!("{}:", cal.display);
        Scratch {
            post: Post::inline(Origin::Line(cal.path.to_path_buf(), 0), String::new()),
            judged: Vec::new(),
            prefix: source.len(),
            source,
        }
    }
}

/// The calendar being read, shared by the threads: each takes the next `BATCH` lines under
/// its lock, with the index of that batch (results are written in that order). Every batch
/// but the last holds `BATCH` lines, so a batch's index follows from its first line.
struct Input<R> {
    reader: R,
    /// The number of the next line.
    line: usize,
    done: bool,
}

/// Lines of one batch, read into one buffer: each line's range and, for a line longer than
/// the cap, the cap (the range then holds its start only).
#[derive(Default)]
struct Lines {
    data: Vec<u8>,
    lines: Vec<(std::ops::Range<usize>, Option<u64>)>,
}

impl<R: BufRead> Input<R> {
    /// The next batch into `lines`: its index and the number of its first line, and the
    /// error that stopped the reading after the lines read. `None` at the end.
    fn next(
        &mut self,
        raw: &mut Vec<u8>,
        lines: &mut Lines,
    ) -> Option<(usize, usize, Option<std::io::Error>)> {
        if self.done {
            return None;
        }
        lines.data.clear();
        lines.lines.clear();
        let mut error = None;
        while lines.lines.len() < BATCH {
            match next_line(&mut self.reader, raw, crate::files::POST_CAP) {
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Ok(Some(read)) => {
                    let at = lines.data.len();
                    lines.data.extend_from_slice(raw);
                    lines.lines.push((at..lines.data.len(), read.err()));
                }
                Err(e) => {
                    self.done = true;
                    error = Some(e);
                    break;
                }
            }
        }
        if lines.lines.is_empty() && error.is_none() {
            return None;
        }
        let first = self.line;
        self.line += lines.lines.len();
        Some(((first - 1) / BATCH, first, error))
    }
}

/// How far ahead of the results written the threads may judge, in batches: what bounds the
/// memory when stdout is slow or one batch is (a line of 1 MiB).
struct Window {
    written: std::sync::Mutex<usize>,
    moved: std::sync::Condvar,
    stop: std::sync::atomic::AtomicBool,
}

/// Checks a JSON Lines calendar as a stream: one result per input line, in order. A bad line
/// is reported where it is and the rest are still checked. `jobs` threads (`--jobs`; by
/// default the CPUs, one per 64 KiB of a regular file at most) judge batches of lines side
/// by side; this thread writes their results in the order of the lines, and
/// judges itself the few lines that need the state store.
#[allow(clippy::too_many_arguments)]
fn check_jsonl(
    ctx: &Ctx,
    store: &dyn Store,
    format: Format,
    engine: &Engine<'_>,
    path: &Path,
    default_accounts: &[&Account],
    context: &Context,
    jobs: Option<usize>,
) -> Result<Code, Error> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::usage(format!(
            "cannot read `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    // By default every CPU gate may use, but no more threads than a regular file has 64 KiB
    // (a short calendar is judged at once on one); `--jobs` as given.
    let jobs = jobs.unwrap_or_else(|| {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let size = file
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map_or(u64::MAX, |m| m.len());
        cpus.min(usize::try_from(1 + size / (64 << 10)).unwrap_or(usize::MAX))
    });
    let display = path.display().to_string();
    let cal = Calendar {
        format,
        verbosity: ctx.verbosity(),
        engine,
        policy: engine.policy(),
        path,
        quiet_head: quiet_head(&format!("{display}:")),
        quiet_account: quiet_account(default_accounts),
        display,
        default_accounts,
        context,
    };
    let input = std::sync::Mutex::new(Input {
        reader: std::io::BufReader::with_capacity(1 << 16, file),
        line: 1,
        done: false,
    });
    let window = Window {
        written: std::sync::Mutex::new(0),
        moved: std::sync::Condvar::new(),
        stop: std::sync::atomic::AtomicBool::new(false),
    };
    let ahead = 4 * jobs;
    let mut out = ctx.print.lines();
    let mut all = Results::default();
    let written = std::thread::scope(|scope| {
        let (send, results) = std::sync::mpsc::channel::<(usize, Batch)>();
        for _ in 0..jobs {
            let send = send.clone();
            let (cal, input, window) = (&cal, &input, &window);
            scope.spawn(move || judge_batches(cal, input, window, ahead, &send));
        }
        drop(send);
        let written = write_batches(ctx, &cal, store, &results, &mut out, &mut all, &window);
        // Whatever happened, let every thread see it and end: set under the window's lock,
        // so a thread about to wait sees it or is woken.
        {
            let _written = window
                .written
                .lock()
                .expect("no thread panics holding the window");
            window
                .stop
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        window.moved.notify_all();
        drop(results);
        written
    });
    let flushed = out.flush().map_err(|e| Error::stdout(&e));
    written?;
    flushed?;
    let Results {
        table,
        bad,
        verdicts,
        ..
    } = all;
    let worst = verdicts.iter().copied().max().unwrap_or(Verdict::Allow);
    if format == Format::Markdown {
        let _ = write!(
            out,
            "{}{table}\n{}\n",
            output::MARKDOWN_HEAD,
            output::summary(verdicts.iter().copied(), bad.len())
        );
        out.flush().map_err(|e| Error::stdout(&e))?;
    }
    if format == Format::Human && ctx.verbosity() != Verbosity::Quiet {
        ctx.print.line(output::summary(verdicts, bad.len()))?;
    }
    if !bad.is_empty() {
        if format == Format::Github {
            return Ok(Code::Usage);
        }
        ctx.print.error(&Error::Input { diagnostics: bad });
        return Ok(Code::Usage);
    }
    Ok(Code::from(worst))
}

/// One thread of `check_jsonl`: takes batches of lines until there are none (or it is told
/// to stop), judges each and sends what it made of it with the batch's index.
fn judge_batches<R: BufRead>(
    cal: &Calendar<'_, '_>,
    input: &std::sync::Mutex<Input<R>>,
    window: &Window,
    ahead: usize,
    send: &std::sync::mpsc::Sender<(usize, Batch)>,
) {
    use std::sync::atomic::Ordering;
    let mut scratch = Scratch::new(cal);
    let mut raw = Vec::new();
    let mut lines = Lines::default();
    while !window.stop.load(Ordering::Relaxed) {
        let next = input
            .lock()
            .expect("no thread panics holding the input")
            .next(&mut raw, &mut lines);
        let Some((index, first, error)) = next else {
            return;
        };
        {
            let mut written = window
                .written
                .lock()
                .expect("no thread panics holding the window");
            while index >= *written + ahead && !window.stop.load(Ordering::Relaxed) {
                written = window
                    .moved
                    .wait(written)
                    .expect("no thread panics holding the window");
            }
        }
        if window.stop.load(Ordering::Relaxed) {
            return;
        }
        let mut batch = Batch::default();
        let mut results = Results::default();
        for (k, (range, cap)) in lines.lines.iter().enumerate() {
            let bytes = &lines.data[range.clone()];
            let number = first + k;
            match judge_line(cal, &mut scratch, &mut results, number, bytes, *cap, None) {
                Ok(Step::Done) => {}
                Ok(Step::Defer) => {
                    batch.parts.push(Part::Judged(std::mem::take(&mut results)));
                    batch.parts.push(Part::Deferred(number, bytes.to_vec()));
                }
                Err(e) => {
                    batch.error = Some(e);
                    break;
                }
            }
        }
        batch.parts.push(Part::Judged(results));
        if batch.error.is_none()
            && let Some(e) = error
        {
            batch.error = Some(Error::other(format!(
                "cannot read `{}`: {}",
                cal.display,
                io_reason(&e)
            )));
        }
        if send.send((index, batch)).is_err() {
            return;
        }
    }
}

/// The main thread of `check_jsonl`: writes the batches in the order of their lines as they
/// come, judging the deferred lines with the store, until every thread has ended or
/// something (stdout, the store, the reading) failed.
fn write_batches(
    ctx: &Ctx,
    cal: &Calendar<'_, '_>,
    store: &dyn Store,
    results: &std::sync::mpsc::Receiver<(usize, Batch)>,
    out: &mut impl std::io::Write,
    all: &mut Results,
    window: &Window,
) -> Result<(), Error> {
    let mut waiting = std::collections::BTreeMap::new();
    let mut next = 0;
    let mut scratch = Scratch::new(cal);
    for (index, batch) in results {
        waiting.insert(index, batch);
        while let Some(batch) = waiting.remove(&next) {
            for part in batch.parts {
                let results = match part {
                    Part::Judged(results) => results,
                    Part::Deferred(number, bytes) => {
                        let mut results = Results::default();
                        judge_line(
                            cal,
                            &mut scratch,
                            &mut results,
                            number,
                            &bytes,
                            None,
                            Some(store),
                        )?;
                        results
                    }
                };
                if cal.format == Format::Human {
                    if !results.out.is_empty() {
                        ctx.print.out(String::from_utf8_lossy(&results.out))?;
                    }
                } else {
                    out.write_all(&results.out).map_err(|e| Error::stdout(&e))?;
                }
                all.table.push_str(&results.table);
                all.bad.extend(results.bad);
                all.verdicts.extend(results.verdicts);
            }
            if let Some(e) = batch.error {
                return Err(e);
            }
            next += 1;
            *window
                .written
                .lock()
                .expect("no thread panics holding the window") = next;
            window.moved.notify_all();
        }
    }
    Ok(())
}

/// Judges one calendar line (`cap`: it was longer than that) into `r`. Without the store
/// (`None`: a thread other than the main one), a line that needs it is left (`Step::Defer`)
/// with nothing written.
fn judge_line<'p>(
    cal: &Calendar<'_, 'p>,
    s: &mut Scratch<'p>,
    r: &mut Results,
    number: usize,
    raw: &[u8],
    cap: Option<u64>,
    store: Option<&dyn Store>,
) -> Result<Step, Error> {
    let (format, path, policy) = (cal.format, cal.path, cal.policy);
    if let Some(cap) = cap {
        let mut d = Diagnostic::whole_file(
            Level::Error,
            &cal.display,
            format!(
                "this calendar line is longer than {}",
                crate::files::size(cap)
            ),
        )
        .with_hint("one line holds one post of at most 1 MiB");
        d.line = number;
        d.column = 1;
        d.snippet = Some((format!("{}…", String::from_utf8_lossy(raw)), 0, 1));
        bad_line(format, r, path, number, d)?;
        return Ok(Step::Done);
    }
    // Validated with SIMD; std's validator only to say where a bad line goes wrong.
    let line = match simdutf8::basic::from_utf8(raw).or_else(|_| std::str::from_utf8(raw)) {
        Ok(text) => text,
        Err(e) => {
            let mut d =
                crate::files::not_utf8(&cal.display, raw, e.valid_up_to(), "this calendar line");
            d.line = number;
            bad_line(format, r, path, number, d)?;
            return Ok(Step::Done);
        }
    };
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.trim().is_empty() {
        return Ok(Step::Done);
    }
    let (item, own_account, now) = match parse_line(line, number, path, policy) {
        Ok(x) => x,
        Err(d) => {
            bad_line(format, r, path, number, *d)?;
            return Ok(Step::Done);
        }
    };
    // A line with its own `at` is judged in its own context; the others share one (not
    // cloned per line).
    let own_context;
    let context = match now {
        Some(at) if at != cal.context.now => {
            let sends = match store {
                Some(store) => recent_sends(store, policy, at)?,
                None if policy.limits.is_empty() => crate::core::limits::Sends::default(),
                None => return Ok(Step::Defer),
            };
            own_context = Context {
                now: at,
                local_freeze: cal.context.local_freeze.clone(),
                sends,
                instances: std::collections::BTreeMap::new(),
            };
            &own_context
        }
        _ => cal.context,
    };
    let accounts = match &own_account {
        Some(a) => std::slice::from_ref(a),
        None => cal.default_accounts,
    };
    // One post, reused: its buffers keep their capacity from line to line.
    let post = &mut s.post;
    if let Origin::Line(_, n) = &mut post.origin {
        *n = number;
    }
    let only = &mut post.items[0];
    only.text.clear();
    only.text.push_str(&item.text);
    only.written.clear();
    only.written.push_str(&item.text);
    drop(item);
    let post = &s.post;
    let judged = &mut s.judged;
    cal.engine.judge(post, accounts, context, judged);
    let verdict = judged
        .iter()
        .map(|j| j.verdict)
        .max()
        .unwrap_or(Verdict::Allow);
    let out = &mut r.out;
    if let (Format::Json, [single], None, Some(account)) = (
        format,
        judged.as_slice(),
        own_account,
        cal.quiet_account.as_deref(),
    ) && single.findings.is_empty()
        && single.verdict == Verdict::Allow
        && post.options.is_empty()
    {
        // Nothing to report (most lines): written without serde, byte for byte what the
        // view below writes (`quiet_line_is_what_serde_writes` pins it).
        write_quiet(out, &cal.quiet_head, number, account).map_err(|e| Error::stdout(&e))?;
    } else if let (Format::Json, [single]) = (format, judged.as_slice()) {
        // The common case, without copying: the source is the path (formatted once) and
        // the line number.
        s.source.truncate(s.prefix);
        let _ = write!(s.source, "{number}");
        write_line(out, &single.view(&s.source, post))?;
    } else {
        let evaluations: Vec<Evaluation> = judged
            .drain(..)
            .map(|j: Judged<'_>| j.into_evaluation(post))
            .collect();
        if format == Format::Github {
            let evals: Vec<&Evaluation> = evaluations.iter().collect();
            out.extend_from_slice(output::github(policy, post, &evals).as_bytes());
        } else if format == Format::Markdown {
            let evals: Vec<&Evaluation> = evaluations.iter().collect();
            r.table
                .push_str(&output::markdown_rows(policy, post, &evals));
        } else if format == Format::Json {
            // One object per input line; a line judged for several accounts carries them
            // all.
            let record = serde_json::json!({"source": post.origin.to_string(), "verdict": verdict, "accounts": evaluations});
            write_line(out, &record)?;
        } else {
            for e in &evaluations {
                let _ = write!(out, "{}", output::evaluation(post, e, cal.verbosity));
            }
        }
    }
    r.verdicts.push(verdict);
    Ok(Step::Done)
}

/// Reads the next line (without its `\n`) into `raw`: `None` at the end, `Some(Err(cap))` for a
/// line longer than `cap` (the rest of it is skipped, never held in memory).
pub fn next_line(
    reader: &mut impl BufRead,
    raw: &mut Vec<u8>,
    cap: u64,
) -> std::io::Result<Option<Result<(), u64>>> {
    raw.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(if any {
                Some(if too_long { Err(cap) } else { Ok(()) })
            } else {
                None
            });
        }
        any = true;
        let (part, done, ended) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if !too_long {
            if (raw.len() + part.len()) as u64 > cap {
                too_long = true;
                // Keep only the start, to show where the line is.
                raw.extend_from_slice(&part[..part.len().min(60)]);
                raw.truncate(60);
            } else {
                raw.extend_from_slice(part);
            }
        }
        reader.consume(done);
        if ended {
            return Ok(Some(if too_long { Err(cap) } else { Ok(()) }));
        }
    }
}

/// A calendar line that cannot be judged: its error in its place (`--json`: an `invalid`
/// entry), kept for the summary and exit 2; the other lines are still judged.
fn bad_line(
    format: Format,
    r: &mut Results,
    path: &Path,
    number: usize,
    d: Diagnostic,
) -> Result<(), Error> {
    if format == Format::Github {
        r.out
            .extend_from_slice(output::github_diagnostic(&d).to_string().as_bytes());
    } else if format == Format::Markdown {
        let origin = Origin::Line(path.to_path_buf(), number);
        r.table
            .push_str(&output::markdown_invalid(&origin.to_string(), &[&d]));
    } else if format == Format::Json {
        let origin = Origin::Line(path.to_path_buf(), number);
        let record = serde_json::json!({"source": origin.to_string(), "verdict": "invalid", "findings": [], "error": d.message});
        write_line(&mut r.out, &record)?;
    }
    r.bad.push(d);
    Ok(())
}

/// A calendar line: its fields, the account it names (`None`: the default ones) and its `at`.
pub type Parsed<'a, 'p> = (Line<'a>, Option<&'p Account>, Option<DateTime<Utc>>);

// A bad line is rare and reported once; boxing its diagnostic would buy nothing.
pub fn parse_line<'a, 'p>(
    line: &'a str,
    number: usize,
    path: &Path,
    policy: &'p Policy,
) -> Result<Parsed<'a, 'p>, Box<Diagnostic>> {
    let at = |column: usize, width: usize, message: String| {
        let mut d = Diagnostic::whole_file(Level::Error, path.display().to_string(), message);
        d.line = number;
        d.column = column.max(1);
        let located = crate::core::diagnostic::locate(
            line,
            line.char_indices()
                .nth(column.saturating_sub(1))
                .map_or(line.len(), |(i, _)| i)..line.len(),
        );
        d.snippet = Some((located.text, located.pad, width.max(1)));
        d
    };
    let item: Line = serde_json::from_str(line).map_err(|e| {
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        Box::new(at(
            e.column(),
            1,
            format!("invalid calendar line: {message}"),
        ))
    })?;
    let account = match item.account.as_deref() {
        Some(name) => match policy.account(name) {
            Some(a) => Some(a),
            None => {
                let quoted = format!("\"{name}\"");
                let column = line
                    .find(&quoted)
                    .map_or(1, |i| line[..i].chars().count() + 1);
                let hint = crate::core::diagnostic::did_you_mean(
                    name,
                    policy.accounts.keys().map(String::as_str),
                )
                .map(|close| format!("did you mean `{close}`?"));
                let mut d = at(
                    column,
                    quoted.chars().count(),
                    format!("unknown account `{name}`"),
                );
                d.hint = hint;
                return Err(Box::new(d));
            }
        },
        None => None,
    };
    let now = match item.at.as_deref() {
        Some(text) => match parse_datetime(text) {
            Some(Written::Exact(t)) => Some(t),
            _ => {
                let column = line.find(text).map_or(1, |i| line[..i].chars().count() + 1);
                let mut d = at(
                    column,
                    text.chars().count(),
                    format!("invalid `at` `{text}`"),
                );
                d.hint = Some(
                    "write an RFC 3339 instant with an offset, e.g. `2026-11-23T10:00:00Z`".into(),
                );
                return Err(Box::new(d));
            }
        },
        None => None,
    };
    Ok((item, account, now))
}

fn write_line<T: serde::Serialize>(out: &mut impl std::io::Write, value: &T) -> Result<(), Error> {
    serde_json::to_writer(&mut *out, value).map_err(Error::json)?;
    out.write_all(b"\n").map_err(|e| Error::stdout(&e))
}

/// `{"source":"PATH:` with PATH escaped as JSON (`source` is `PATH:`): the start of every
/// `--json` result line of a calendar.
fn quiet_head(source: &str) -> Vec<u8> {
    let mut head = b"{\"source\":".to_vec();
    serde_json::to_writer(&mut head, source).expect("a string serialises");
    head.pop(); // the closing quote: the line number follows
    head
}

/// The `account` value of a result for these default accounts, as JSON: `null` for none,
/// the name for one; `None` for several (such lines carry an `accounts` list instead).
fn quiet_account(accounts: &[&Account]) -> Option<Vec<u8>> {
    match accounts {
        [] => Some(b"null".to_vec()),
        [a] => Some(serde_json::to_vec(&a.name).expect("a string serialises")),
        _ => None,
    }
}

/// The result of a calendar line with nothing to report: `allow`, no findings, no options.
fn write_quiet(
    out: &mut impl std::io::Write,
    head: &[u8],
    number: usize,
    account: &[u8],
) -> std::io::Result<()> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = number;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.write_all(head)?;
    out.write_all(&digits[i..])?;
    out.write_all(b"\",\"account\":")?;
    out.write_all(account)?;
    out.write_all(b",\"verdict\":\"allow\",\"findings\":[]}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::evaluate::EvaluationView;
    use crate::core::post::Options;

    /// The hand-written result of a quiet line is exactly what serde writes for it, for
    /// paths and account names that need escaping and for every size of line number.
    #[test]
    fn quiet_line_is_what_serde_writes() {
        let options = Options::default();
        for path in [
            "posts.jsonl",
            "dir with \"quotes\"/and\\back\tslash/\u{1}ctl/caf\u{e9} \u{1F600}.jsonl",
        ] {
            let source = format!("{path}:");
            let head = quiet_head(&source);
            for account in [
                None,
                Some("brand"),
                Some("we\"ird\\ \u{7f}\u{2028} n\u{e4}me"),
            ] {
                let account_json = match account {
                    None => b"null".to_vec(),
                    Some(a) => serde_json::to_vec(a).unwrap(),
                };
                for number in [0usize, 1, 9, 10, 99, 100, 12_345, usize::MAX] {
                    let mut ours = Vec::new();
                    write_quiet(&mut ours, &head, number, &account_json).unwrap();
                    let line_source = format!("{source}{number}");
                    let view = EvaluationView {
                        source: &line_source,
                        account,
                        verdict: Verdict::Allow,
                        findings: &[],
                        options: &options,
                        items: &[],
                    };
                    let mut theirs = serde_json::to_vec(&view).unwrap();
                    theirs.push(b'\n');
                    assert_eq!(
                        String::from_utf8(ours).unwrap(),
                        String::from_utf8(theirs).unwrap()
                    );
                }
            }
        }
    }
}
