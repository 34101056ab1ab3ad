//! Judging one post for one account: policy + post + context → verdict and findings.
//! No I/O and no clock: the caller passes `now`, the local freeze state and the journal's
//! recent sends (for rate limits).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use sha2::Digest as _;

use crate::core::hours::Cover;
use crate::core::length;
use crate::core::links::{Judgement, LinkRules, Shorteners};
use crate::core::policy::{Account, Platform, Policy};
use crate::core::post::{Item, Post};
use crate::core::reviewers::{self, Rejection};
use crate::core::terms::{self, Matcher};
pub use crate::core::verdict::{Severity, Verdict};

/// The rule a finding comes from (SPEC §5 pins these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    BannedTerm,
    Length,
    Link,
    Media,
    Reviewers,
    QuietHours,
    Blackout,
    RateLimit,
    Freeze,
    /// Before the post's `not_before` (SPEC §7): `hold` until then.
    NotBefore,
    /// At or after the post's `not_after`: `deny`, for good (the post went stale).
    NotAfter,
}

/// Why one approval did not count, as reported beside a `reviewers` finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedApproval {
    pub index: usize,
    pub reviewer: String,
    pub reason: String,
}

/// One thing the policy has to say about a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// The thread item a content finding is about (0 for the first); absent for a plain post
    /// and for the rules that judge a thread as one post (SPEC §5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<String>,
    /// The link's host, for `link` findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<usize>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt"
    )]
    pub until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reviewers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedApproval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub message: String,
}

impl Finding {
    fn new(rule: Rule, severity: Severity, message: String) -> Finding {
        Finding {
            rule,
            severity,
            item: None,
            term: None,
            domain: None,
            start: None,
            end: None,
            until: None,
            required: None,
            valid: None,
            reviewers: Vec::new(),
            rejected: Vec::new(),
            length: None,
            limit: None,
            reason: None,
            message,
        }
    }
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        None => s.serialize_none(),
    }
}

/// The verdict for one post on one account.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub source: String,
    pub account: Option<String>,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// `language`, `visibility`, `reply_to` when the post sets them (not judged: shown).
    pub options: crate::core::post::Options,
    /// A thread's items, each with its own length against this account's limit (empty for a
    /// plain post, and without an account).
    pub items: Vec<ItemLength>,
}

/// One thread item's length on one account's network, as `gate check` and `gate approve` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemLength {
    pub item: usize,
    pub length: usize,
    pub limit: usize,
    /// `characters`, `graphemes` or `weighted characters`.
    pub unit: &'static str,
    pub media: usize,
}

impl Serialize for Evaluation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        EvaluationView {
            source: &self.source,
            account: self.account.as_deref(),
            verdict: self.verdict,
            findings: &self.findings,
            options: &self.options,
            items: &self.items,
        }
        .serialize(s)
    }
}

/// An evaluation as it is written in JSON, borrowed: [`Evaluation`] serialises through it,
/// and `gate check --jsonl` writes a [`Judged`] through it without copying anything.
#[derive(Serialize)]
pub struct EvaluationView<'a> {
    pub source: &'a str,
    pub account: Option<&'a str>,
    pub verdict: Verdict,
    pub findings: &'a [Finding],
    #[serde(flatten)]
    pub options: &'a crate::core::post::Options,
    #[serde(skip_serializing_if = "<[ItemLength]>::is_empty")]
    pub items: &'a [ItemLength],
}

/// One account's verdict and findings, before the post's source and the account's name are
/// copied into an [`Evaluation`]: what [`Engine::judge`] produces, without allocating when
/// there is nothing to report.
#[derive(Debug, Clone)]
pub struct Judged<'a> {
    pub account: Option<&'a Account>,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// A thread's items with their lengths on the account's network (empty otherwise).
    pub items: Vec<ItemLength>,
}

impl<'a> Judged<'a> {
    pub fn into_evaluation(self, post: &Post) -> Evaluation {
        Evaluation {
            source: post.origin.to_string(),
            account: self.account.map(|a| a.name.clone()),
            verdict: self.verdict,
            findings: self.findings,
            options: post.options.clone(),
            items: self.items,
        }
    }

    /// The JSON form of this verdict for `post`, whose source is written `source`.
    pub fn view<'v>(&'v self, source: &'v str, post: &'v Post) -> EvaluationView<'v> {
        EvaluationView {
            source,
            account: self.account.map(|a| a.name.as_str()),
            verdict: self.verdict,
            findings: &self.findings,
            options: &post.options,
            items: &self.items,
        }
    }
}

/// A freeze in force in the state folder (`gate freeze`), passed in by the shell.
#[derive(Debug, Clone)]
pub struct LocalFreeze {
    pub reason: String,
    pub since: Option<DateTime<Utc>>,
    pub by: Option<String>,
}

/// What the world looks like when the post is judged.
#[derive(Debug, Clone)]
pub struct Context {
    pub now: DateTime<Utc>,
    pub local_freeze: Option<LocalFreeze>,
    /// The state store's rate ledger of the hour (`Store::ledger`: sent, retracted, pending and
    /// unknown deliveries); empty without a store.
    pub sends: crate::core::limits::Sends,
    /// What Mastodon accounts' instances said about length, by account name (`gate post`
    /// asks them before sending; `gate check` never does, so it is empty there).
    pub instances: BTreeMap<String, length::Instance>,
}

/// The policy, with its term automata compiled lazily: once for the global lists and once for
/// each account that adds terms of its own.
pub struct Engine<'p> {
    policy: &'p Policy,
    global: OnceLock<Matcher>,
    per_account: BTreeMap<&'p str, OnceLock<Matcher>>,
}

impl<'p> Engine<'p> {
    pub fn new(policy: &'p Policy) -> Engine<'p> {
        let per_account = policy
            .accounts
            .iter()
            .filter(|(_, a)| !a.banned_terms.is_empty())
            .map(|(name, _)| (name.as_str(), OnceLock::new()))
            .collect();
        Engine {
            policy,
            global: OnceLock::new(),
            per_account,
        }
    }

    pub fn policy(&self) -> &'p Policy {
        self.policy
    }

    fn matcher(&self, account: Option<&Account>) -> &Matcher {
        let build = |lists: &crate::core::policy::TermLists| {
            // Validation already compiled every regex, so this cannot fail.
            Matcher::new(&lists.deny, &lists.warn, &lists.allow, &lists.regex)
                .unwrap_or_else(|(i, e)| panic!("regex {i} passed validation but failed: {e}"))
        };
        if let Some(account) = account
            && let Some(cell) = self.per_account.get(account.name.as_str())
        {
            return cell
                .get_or_init(|| build(&self.policy.banned_terms.extended(&account.banned_terms)));
        }
        self.global.get_or_init(|| build(&self.policy.banned_terms))
    }

    /// Judges `post` for each account it targets (or once without an account when it names
    /// none and the policy has no single account to assume).
    pub fn evaluate(&self, post: &Post, accounts: &[&Account], ctx: &Context) -> Vec<Evaluation> {
        let mut judged = Vec::new();
        self.judge(post, accounts, ctx, &mut judged);
        judged
            .into_iter()
            .map(|j| j.into_evaluation(post))
            .collect()
    }

    /// [`Engine::evaluate`] into `out` (cleared first), without the source and account names:
    /// a post with nothing to report allocates nothing here.
    pub fn judge<'a>(
        &self,
        post: &Post,
        accounts: &[&'a Account],
        ctx: &Context,
        out: &mut Vec<Judged<'a>>,
    ) {
        out.clear();
        let content = self.content_findings(post, None);
        let mut shared = self.shared_findings(post, accounts, ctx);
        let sends = self.counted_sends(post, accounts, ctx);
        shared.extend(self.global_limit(&sends, ctx.now));
        if accounts.is_empty() {
            let mut findings = content;
            findings.extend(
                shared
                    .iter()
                    .filter_map(|f| settle(f, self.policy.reviewers_required)),
            );
            out.push(finish(None, findings, Vec::new()));
            return;
        }
        out.extend(accounts.iter().map(|&account| {
            let mut findings = if self.per_account.contains_key(account.name.as_str()) {
                self.content_findings(post, Some(account))
            } else {
                content.clone()
            };
            findings.extend(account_findings(
                post,
                account,
                ctx.instances.get(&account.name),
            ));
            findings.extend(self.account_limit(account, &sends, ctx.now));
            let required = account
                .reviewers_required
                .unwrap_or(self.policy.reviewers_required);
            findings.extend(shared.iter().filter_map(|f| settle(f, required)));
            let items = if post.thread {
                item_lengths(post, account, ctx.instances.get(&account.name))
            } else {
                Vec::new()
            };
            finish(Some(account), findings, items)
        }));
    }

    /// Terms, links and alt text, judged for each item (a thread's findings name their item).
    fn content_findings(&self, post: &Post, account: Option<&Account>) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (index, item) in post.items.iter().enumerate() {
            let at = post.thread.then_some(index);
            findings.extend(
                self.item_content_findings(item, account)
                    .into_iter()
                    .map(|f| Finding { item: at, ..f }),
            );
        }
        findings
    }

    fn item_content_findings(&self, post: &Item, account: Option<&Account>) -> Vec<Finding> {
        let mut findings = self.term_findings(post, account);
        findings.extend(link_findings(&self.policy.links, &post.text));
        if self.policy.require_alt_text {
            for m in post
                .media
                .iter()
                .filter(|m| m.alt.as_deref().is_none_or(|a| a.trim().is_empty()))
            {
                findings.push(Finding::new(
                    Rule::Media,
                    Severity::Deny,
                    format!(
                        "`{}` has no alt text; the policy requires a description of every image",
                        m.written
                    ),
                ));
            }
        }
        findings
    }

    fn term_findings(&self, post: &Item, account: Option<&Account>) -> Vec<Finding> {
        let matcher = self.matcher(account);
        matcher
            .find(&post.text)
            .into_iter()
            .map(|hit| {
                let severity = match hit.level {
                    terms::Level::Deny => Severity::Deny,
                    terms::Level::Warn => Severity::Warn,
                };
                let what = if hit.regex {
                    "matches the banned pattern"
                } else {
                    "is a banned term"
                };
                let found = &post.text[hit.start..hit.end];
                let message = if hit.regex {
                    format!("{found:?} {what} `{}`", hit.term)
                } else if severity == Severity::Warn {
                    format!("{found:?} matches the warned term `{}`", hit.term)
                } else {
                    format!("{found:?} matches the banned term `{}`", hit.term)
                };
                let mut f = Finding::new(Rule::BannedTerm, severity, message);
                f.term = Some(hit.term);
                f.start = Some(hit.start);
                f.end = Some(hit.end);
                f
            })
            .collect()
    }

    /// The sends that count against this post: every recent one but its own deliveries (a
    /// post already sent is not held by itself; `gate post` then just prints its URL).
    fn counted_sends<'c>(
        &self,
        post: &Post,
        accounts: &[&Account],
        ctx: &'c Context,
    ) -> Vec<&'c crate::core::limits::Send> {
        if ctx.sends.0.is_empty() || self.policy.limits.is_empty() {
            return Vec::new();
        }
        let names: Vec<String> = accounts.iter().map(|a| a.name.clone()).collect();
        let digest = crate::core::policy::hex(&sha2::Sha256::digest(
            post.digest_message(&names).as_bytes(),
        ));
        ctx.sends.0.iter().filter(|s| s.digest != digest).collect()
    }

    /// `[limits] max_posts_per_hour`: every account's sends together.
    fn global_limit(
        &self,
        sends: &[&crate::core::limits::Send],
        now: DateTime<Utc>,
    ) -> Option<Finding> {
        let limit = self.policy.limits.per_hour?;
        let held = crate::core::limits::held(limit, sends.iter().map(|s| s.at), now)?;
        Some(rate_finding(
            format!(
                "{} sent in the last hour, the policy's limit (`[limits] max_posts_per_hour = {limit}`)",
                posts(held.count)
            ),
            limit,
            held,
        ))
    }

    /// `[accounts.NAME] max_posts_per_hour`: this account's sends.
    fn account_limit(
        &self,
        account: &Account,
        sends: &[&crate::core::limits::Send],
        now: DateTime<Utc>,
    ) -> Option<Finding> {
        let limit = *self.policy.limits.per_account_hour.get(&account.name)?;
        let mine = sends
            .iter()
            .filter(|s| s.account == account.name)
            .map(|s| s.at);
        let held = crate::core::limits::held(limit, mine, now)?;
        Some(rate_finding(
            format!(
                "{} sent to `{}` in the last hour, its limit (`max_posts_per_hour = {limit}`)",
                posts(held.count),
                account.name
            ),
            limit,
            held,
        ))
    }

    /// Findings that do not depend on the account: freeze, schedule, reviewers.
    fn shared_findings(&self, post: &Post, accounts: &[&Account], ctx: &Context) -> Vec<Finding> {
        let mut findings = Vec::new();
        if let Some(freeze) = &self.policy.freeze {
            let mut f = Finding::new(
                Rule::Freeze,
                Severity::Frozen,
                format!("posting is frozen by the policy: {}", freeze.reason),
            );
            f.reason = Some(freeze.reason.clone());
            findings.push(f);
        }
        if let Some(freeze) = &ctx.local_freeze {
            let mut f = Finding::new(
                Rule::Freeze,
                Severity::Frozen,
                format!(
                    "posting is frozen by `gate freeze` in this state folder: {}",
                    freeze.reason
                ),
            );
            f.reason = Some(freeze.reason.clone());
            findings.push(f);
        }

        findings.extend(window_finding(post, ctx.now));

        let schedule = &self.policy.schedule;
        let covers = schedule.covering(ctx.now);
        if !covers.is_empty() {
            let until = schedule.until(ctx.now);
            let until_text = match until {
                Some(t) => format!("until {}", t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                None => "with no end in sight".to_owned(),
            };
            for cover in covers {
                let (rule, reason, label) = match cover {
                    Cover::Quiet { index, .. } => (
                        Rule::QuietHours,
                        self.policy.schedule.windows[index].reason.clone(),
                        "quiet hours",
                    ),
                    Cover::Blackout { index, .. } => (
                        Rule::Blackout,
                        self.policy.schedule.blackouts[index].reason.clone(),
                        "blackout",
                    ),
                };
                let message = match &reason {
                    Some(r) => format!("{label} ({r}): held {until_text}"),
                    None => format!("{label}: held {until_text}"),
                };
                let mut f = Finding::new(rule, Severity::Hold, message);
                f.until = until;
                f.reason = reason;
                findings.push(f);
            }
        }

        let required = self.policy.required_reviewers(accounts);
        if required > 0 || !post.approvals.is_empty() {
            let names: Vec<String> = if post.accounts.is_empty() {
                accounts.iter().map(|a| a.name.clone()).collect()
            } else {
                post.accounts.clone()
            };
            let message = post.digest_message(&names);
            let outcome = reviewers::verify_approvals(
                &self.policy.reviewer_keys,
                post.author.as_deref(),
                message.as_bytes(),
                &post.approvals,
            );
            let valid = u32::try_from(outcome.valid.len()).unwrap_or(u32::MAX);
            let rejected: Vec<RejectedApproval> = outcome
                .rejected
                .iter()
                .map(|(index, reviewer, why)| RejectedApproval {
                    index: *index,
                    reviewer: reviewer.clone(),
                    reason: rejection_text(why),
                })
                .collect();
            let mut f = Finding::new(
                Rule::Reviewers,
                Severity::Review,
                reviewers_message(required, valid),
            );
            f.required = Some(required);
            f.valid = Some(valid);
            f.reviewers = outcome.valid;
            f.rejected = rejected;
            findings.push(f);
        }
        findings
    }
}

/// The post's own window (SPEC §7): before `not_before` it is held until then (exit 5, and
/// `--wait` may sleep until it opens); at or after `not_after` it is denied (exit 4): no wait
/// and no retry can send it any more, only an edit (which needs new approvals).
fn window_finding(post: &Post, now: DateTime<Utc>) -> Option<Finding> {
    use crate::core::window::{Position, instant};
    match post.window.position(now) {
        Position::Open => None,
        Position::NotYet(start) => {
            let mut f = Finding::new(
                Rule::NotBefore,
                Severity::Hold,
                format!(
                    "not yet: the post's window opens at `not_before` {}",
                    instant(start)
                ),
            );
            f.until = Some(start);
            Some(f)
        }
        Position::Expired(end) => Some(Finding::new(
            Rule::NotAfter,
            Severity::Deny,
            format!(
                "expired: the post's window closed at `not_after` {}; it is never sent",
                instant(end)
            ),
        )),
    }
}

fn posts(n: usize) -> String {
    format!("{n} post{}", if n == 1 { "" } else { "s" })
}

fn rate_finding(what: String, limit: u32, held: crate::core::limits::Held) -> Finding {
    let until = held.until.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut f = Finding::new(
        Rule::RateLimit,
        Severity::Hold,
        format!("rate limit: {what}: held until {until}"),
    );
    f.until = Some(held.until);
    f.limit = Some(limit as usize);
    f
}

/// Fits the shared `reviewers` finding to one account's requirement: it blocks only while
/// too few approvals are valid, and otherwise remains as a warning if some did not count.
fn settle(finding: &Finding, required: u32) -> Option<Finding> {
    if finding.rule != Rule::Reviewers {
        return Some(finding.clone());
    }
    let valid = finding.valid.unwrap_or(0);
    let mut f = finding.clone();
    f.required = Some(required);
    if valid >= required {
        if f.rejected.is_empty() {
            return None;
        }
        f.severity = Severity::Warn;
        let n = f.rejected.len();
        f.message = format!(
            "{n} approval{} did not count",
            if n == 1 { "" } else { "s" }
        );
    } else {
        f.message = reviewers_message(required, valid);
    }
    Some(f)
}

fn link_findings(rules: &LinkRules, text: &str) -> Vec<Finding> {
    rules
        .judge(text)
        .into_iter()
        .map(|(link, judgement)| {
            let (severity, message) = match judgement {
                Judgement::Denied(rule) => (
                    Severity::Deny,
                    format!(
                        "links to `{}`, which the policy denies (`{rule}`)",
                        link.host
                    ),
                ),
                Judgement::NotAllowed => (
                    Severity::Deny,
                    format!(
                        "links to `{}`, which is not on the policy's allow list",
                        link.host
                    ),
                ),
                Judgement::Shortener(level) => (
                    if level == Shorteners::Deny {
                        Severity::Deny
                    } else {
                        Severity::Warn
                    },
                    format!(
                        "`{}` is a URL shortener: readers cannot see where it leads",
                        link.host
                    ),
                ),
            };
            let mut f = Finding::new(Rule::Link, severity, message);
            f.domain = Some(link.host);
            f.start = Some(link.span.start);
            f.end = Some(link.span.end);
            f
        })
        .collect()
}

fn rejection_text(why: &Rejection) -> String {
    why.to_string()
}

fn reviewers_message(required: u32, valid: u32) -> String {
    let noun = if required == 1 {
        "approval"
    } else {
        "approvals"
    };
    format!("needs {required} reviewer {noun}, has {valid} valid")
}

/// Rules that depend on the account's network, for each item: length and media limits.
fn account_findings(
    post: &Post,
    account: &Account,
    instance: Option<&length::Instance>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, item) in post.items.iter().enumerate() {
        let at = post.thread.then_some(index);
        findings.extend(
            item_account_findings(item, account, instance)
                .into_iter()
                .map(|f| Finding { item: at, ..f }),
        );
    }
    findings
}

/// How many units `text` counts on `account`'s network and the limit it is held to, with
/// whether the limit is the instance's: what `gate check` and `gate approve` show per item.
/// `instance` is what a Mastodon account's instance said; it stands in for the network's
/// default limit, and the stricter of it and the policy's `max_chars` wins.
pub fn measure(
    text: &str,
    account: &Account,
    instance: Option<&length::Instance>,
) -> (usize, usize, bool) {
    let policy_limit = account.max_chars.map(|n| n as usize);
    match instance {
        Some(i) if account.platform == Platform::Mastodon => {
            let count = length::mastodon_with(text, i.characters_reserved_per_url);
            let (limit, by_instance) = match policy_limit {
                Some(p) if p <= i.max_characters => (p, false),
                _ => (i.max_characters, true),
            };
            (count, limit, by_instance)
        }
        _ => {
            let limit = policy_limit.unwrap_or_else(|| length::default_limit(account.platform));
            (length::count(account.platform, text), limit, false)
        }
    }
}

fn item_account_findings(
    post: &Item,
    account: &Account,
    instance: Option<&length::Instance>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let policy_limit = account.max_chars.map(|n| n as usize);
    let over = match instance {
        Some(i) if account.platform == Platform::Mastodon => {
            let count = length::mastodon_with(&post.text, i.characters_reserved_per_url);
            let (limit, by_instance) = match policy_limit {
                Some(p) if p <= i.max_characters => (p, false),
                _ => (i.max_characters, true),
            };
            (count > limit).then_some((count, limit, by_instance))
        }
        _ => {
            let limit = policy_limit.unwrap_or_else(|| length::default_limit(account.platform));
            length::fits(account.platform, &post.text, limit)
                .err()
                .map(|count| (count, limit, false))
        }
    };
    if let Some((count, limit, by_instance)) = over {
        let unit = unit(account.platform);
        let whose = if by_instance {
            format!(
                "the instance's limit of {limit} (`max_characters` at {})",
                account.server
            )
        } else {
            format!("the limit of {limit}")
        };
        let mut f = Finding::new(
            Rule::Length,
            Severity::Deny,
            format!(
                "{count} {unit}, over {whose} for {} account `{}`",
                account.platform, account.name
            ),
        );
        f.length = Some(count);
        f.limit = Some(limit);
        findings.push(f);
    }
    if post.media.len() > 4 {
        findings.push(Finding::new(
            Rule::Media,
            Severity::Deny,
            format!(
                "{} media attached; {} takes at most 4",
                post.media.len(),
                account.platform
            ),
        ));
    }
    if account.platform == Platform::Bluesky {
        for m in post.media.iter().filter(|m| m.bytes > 1_000_000) {
            findings.push(Finding::new(
                Rule::Media,
                Severity::Deny,
                format!(
                    "`{}` is {} bytes; Bluesky takes images up to 1,000,000 bytes",
                    m.written, m.bytes
                ),
            ));
        }
    }
    findings
}

/// Each item's length against `account`'s limit.
pub fn item_lengths(
    post: &Post,
    account: &Account,
    instance: Option<&length::Instance>,
) -> Vec<ItemLength> {
    post.items
        .iter()
        .enumerate()
        .map(|(item, i)| {
            let (length, limit, _) = measure(&i.text, account, instance);
            ItemLength {
                item,
                length,
                limit,
                unit: unit(account.platform),
                media: i.media.len(),
            }
        })
        .collect()
}

/// What `platform` counts a post's length in.
pub fn unit(platform: Platform) -> &'static str {
    match platform {
        Platform::X => "weighted characters",
        Platform::Bluesky => "graphemes",
        Platform::Mastodon => "characters",
    }
}

fn finish(
    account: Option<&Account>,
    mut findings: Vec<Finding>,
    items: Vec<ItemLength>,
) -> Judged<'_> {
    findings.sort_by_key(|f| {
        (
            std::cmp::Reverse(f.severity),
            f.item.unwrap_or(0),
            f.start.unwrap_or(0),
        )
    });
    let verdict = findings
        .iter()
        .map(|f| f.severity.verdict())
        .max()
        .unwrap_or(Verdict::Allow);
    Judged {
        account,
        verdict,
        findings,
        items,
    }
}

/// The verdict of several evaluations together: the strongest one.
pub fn overall<'a>(evaluations: impl IntoIterator<Item = &'a Evaluation>) -> Verdict {
    evaluations
        .into_iter()
        .map(|e| e.verdict)
        .max()
        .unwrap_or(Verdict::Allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_chars: Option<u32>) -> Policy {
        let extra = max_chars
            .map(|n| format!("max_chars = {n}\n"))
            .unwrap_or_default();
        let text = format!(
            "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n{extra}"
        );
        let (policy, diagnostics) =
            crate::core::policy::parse(&crate::core::diagnostic::Source::new("gate.toml", text));
        policy.unwrap_or_else(|| panic!("{diagnostics:?}"))
    }

    fn length_finding(
        policy: &Policy,
        text: &str,
        instance: Option<length::Instance>,
    ) -> Option<Finding> {
        let account = policy.account("brand").unwrap();
        let post = Post::inline(crate::core::post::Origin::Argument, text.to_owned());
        account_findings(&post, account, instance.as_ref())
            .into_iter()
            .find(|f| f.rule == Rule::Length)
    }

    /// The instance's limit replaces the network's default; the stricter of it and the
    /// policy's `max_chars` wins; links count what the instance says.
    #[test]
    fn the_instance_limit_and_the_policy_limit_the_stricter_wins() {
        let instance = |max, per_url| length::Instance {
            max_characters: max,
            characters_reserved_per_url: per_url,
        };
        let sixty = "a".repeat(60);
        let none = policy(None);
        assert_eq!(length_finding(&none, &sixty, None), None);
        let f = length_finding(&none, &sixty, Some(instance(50, 23))).unwrap();
        assert_eq!((f.length, f.limit), (Some(60), Some(50)));
        assert_eq!(
            f.message,
            "60 characters, over the instance's limit of 50 (`max_characters` at https://m.example) for mastodon account `brand`"
        );
        // A bigger instance lets a longer post through when the policy sets nothing.
        assert_eq!(
            length_finding(&none, &"a".repeat(600), Some(instance(1000, 23))),
            None
        );
        // The policy's own limit is stricter: it is the one named.
        let strict = policy(Some(40));
        let f = length_finding(&strict, &sixty, Some(instance(50, 23))).unwrap();
        assert_eq!(f.limit, Some(40));
        assert!(f.message.contains("over the limit of 40"), "{}", f.message);
        // A link counts the instance's reserve, not 23.
        let linked = format!("{} https://example.com/a/long/path", "a".repeat(40));
        assert_eq!(length_finding(&none, &linked, Some(instance(50, 5))), None);
        assert!(length_finding(&none, &linked, Some(instance(50, 23))).is_some());
    }
}
