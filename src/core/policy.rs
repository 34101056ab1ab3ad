//! The team's policy file: its model, where it is found, and its validation, which reports
//! every problem with its position in one run.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use crate::core::diagnostic::{Diagnostic, Source};
use crate::core::hours::{self, Blackout, Schedule, Side, Window};
use crate::core::links::{DomainPattern, LinkRules, Shorteners};
use crate::core::spanned::{At, Reader, list};
use crate::core::verdict::Verdict;
use crate::core::{reviewers, terms};

// The keys each table of the policy takes: the reader denies every other, and `gate schema
// policy` describes exactly these.
pub const TOP_KEYS: &[&str] = &[
    "version",
    "timezone",
    "accounts",
    "banned_terms",
    "reviewers",
    "quiet_hours",
    "blackouts",
    "freeze",
    "links",
    "media",
    "limits",
    "state",
    "schedule",
    "tests",
];
pub const ACCOUNT_KEYS: &[&str] = &[
    "platform",
    "server",
    "handle",
    "reviewers_required",
    "max_chars",
    "max_posts_per_hour",
    "banned_terms",
    "oauth",
];
pub const OAUTH_KEYS: &[&str] = &[
    "client_id",
    "redirect_port",
    "scopes",
    "authorize_url",
    "token_url",
    "revoke_url",
    "client_metadata_url",
];
pub const TERM_KEYS: &[&str] = &["deny", "warn", "allow", "regex"];
pub const REVIEWER_KEYS: &[&str] = &["required", "keys"];
pub const WINDOW_KEYS: &[&str] = &["days", "from", "to", "reason", "timezone"];
pub const BLACKOUT_KEYS: &[&str] = &["from", "to", "reason"];
pub const FREEZE_KEYS: &[&str] = &["reason", "since"];
pub const LINK_KEYS: &[&str] = &["allow", "deny", "shorteners"];
pub const MEDIA_RULE_KEYS: &[&str] = &["require_alt_text"];
pub const LIMIT_KEYS: &[&str] = &["max_posts_per_hour"];
pub const STATE_KEYS: &[&str] = &["url"];
pub const SCHEDULE_KEYS: &[&str] = &["require_not_after"];
pub const TEST_KEYS: &[&str] = &["name", "text", "account", "now", "expect"];

/// The networks gate can post to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Mastodon,
    Bluesky,
    X,
}

impl Platform {
    pub const NAMES: &'static [&'static str] = &["mastodon", "bluesky", "x"];

    pub fn name(self) -> &'static str {
        match self {
            Platform::Mastodon => "mastodon",
            Platform::Bluesky => "bluesky",
            Platform::X => "x",
        }
    }

    /// The server used when the policy names none.
    pub fn default_server(self) -> Option<&'static str> {
        match self {
            Platform::Mastodon => None,
            Platform::Bluesky => Some("https://bsky.social"),
            Platform::X => Some("https://api.x.com"),
        }
    }
}

impl FromStr for Platform {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "mastodon" => Ok(Platform::Mastodon),
            "bluesky" => Ok(Platform::Bluesky),
            "x" => Ok(Platform::X),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four banned-term lists, as written (normalisation happens in `terms`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermLists {
    pub deny: Vec<String>,
    pub warn: Vec<String>,
    pub allow: Vec<String>,
    pub regex: Vec<String>,
}

impl TermLists {
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty()
            && self.warn.is_empty()
            && self.allow.is_empty()
            && self.regex.is_empty()
    }

    /// These lists followed by `more`'s, for an account's additions to the global lists.
    pub fn extended(&self, more: &TermLists) -> TermLists {
        let join = |a: &[String], b: &[String]| a.iter().chain(b).cloned().collect();
        TermLists {
            deny: join(&self.deny, &more.deny),
            warn: join(&self.warn, &more.warn),
            allow: join(&self.allow, &more.allow),
            regex: join(&self.regex, &more.regex),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub platform: Platform,
    pub server: String,
    /// Bluesky: the handle (or DID, or email) to sign in with an app password.
    pub handle: Option<String>,
    pub reviewers_required: Option<u32>,
    pub max_chars: Option<u32>,
    pub banned_terms: TermLists,
    /// `[accounts.NAME.oauth]`: sign-in settings; every field falls back to the platform's.
    pub oauth: OAuthSettings,
}

/// `[accounts.NAME.oauth]`, as written; `crate::platforms::oauth2` fills in the platform defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthSettings {
    /// X: the team's app (Mastodon registers its own app per instance).
    pub client_id: Option<String>,
    /// The loopback port of the redirect (X matches redirects exactly).
    pub redirect_port: Option<u16>,
    pub scopes: Option<Vec<String>>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    /// Bluesky (atproto OAuth): the team's client metadata document, which is its client id
    /// (default: atproto's loopback development client).
    pub client_metadata_url: Option<String>,
}

/// A `[[tests]]` case, run by `gate policy test`.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: Option<String>,
    pub text: String,
    pub account: Option<String>,
    pub now: Option<DateTime<Utc>>,
    pub expect: Verdict,
    /// 1-based line of the `[[tests]]` entry, for reports.
    pub line: usize,
}

/// The `[freeze]` table: a freeze everyone who syncs the policy obeys.
#[derive(Debug, Clone)]
pub struct Freeze {
    pub reason: String,
    pub since: Option<DateTime<Utc>>,
}

/// A validated policy: every value here has already been checked.
#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, so the audit trail can say which policy judged a post.
    pub sha256: String,
    pub timezone: Option<Tz>,
    pub accounts: BTreeMap<String, Account>,
    pub banned_terms: TermLists,
    pub reviewers_required: u32,
    pub reviewer_keys: Vec<(String, ssh_key::PublicKey)>,
    pub schedule: Schedule,
    pub freeze: Option<Freeze>,
    pub links: LinkRules,
    /// `[media] require_alt_text`: every image needs a description for people who cannot see it.
    pub require_alt_text: bool,
    /// `[limits]` and each account's `max_posts_per_hour`.
    pub limits: Limits,
    /// `[state] url`: the team's state store (SPEC §6), never with a password.
    pub state_url: Option<String>,
    /// `[schedule] require_not_after`: a post file without `not_after` is invalid (SPEC §7).
    pub require_not_after: bool,
    pub tests: Vec<TestCase>,
}

/// How many posts may go out in an hour: all accounts together, and per account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `[limits] max_posts_per_hour`.
    pub per_hour: Option<u32>,
    /// `[accounts.NAME] max_posts_per_hour`, by account name.
    pub per_account_hour: BTreeMap<String, u32>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.per_hour.is_none() && self.per_account_hour.is_empty()
    }
}

impl Policy {
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// How many distinct reviewers a post to these accounts needs: the strictest account wins.
    pub fn required_reviewers(&self, accounts: &[&Account]) -> u32 {
        accounts
            .iter()
            .map(|a| a.reviewers_required.unwrap_or(self.reviewers_required))
            .max()
            .unwrap_or(self.reviewers_required)
    }
}

/// Where the policy came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    Search,
    Config,
}

/// Validates policy text; `source.name` is used in diagnostics.
pub fn parse(source: &Source) -> (Option<Policy>, Vec<Diagnostic>) {
    let mut reader = Reader::new(source);
    let Some(root) = reader.parse() else {
        return (None, reader.diagnostics);
    };
    let policy = read_policy(&mut reader, root.get_ref());
    let ok = !reader.has_errors();
    let mut diagnostics = reader.diagnostics;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    (policy.filter(|_| ok), diagnostics)
}

fn read_policy(r: &mut Reader<'_>, root: &DeTable<'_>) -> Option<Policy> {
    r.check_keys(root, TOP_KEYS, "the policy");

    match r.integer(root, "version") {
        Some(At { value: 1, .. }) => {}
        Some(At { value, span }) => {
            r.error(span, format!("unsupported policy version {value}"))
                .hint = Some("this gate understands `version = 1`".into());
        }
        None if Reader::get(root, "version").is_none() => {
            r.error(0..0, "the policy has no `version`").hint =
                Some("add `version = 1` at the top".into());
        }
        None => {}
    }

    let timezone = r.string(root, "timezone").and_then(|at| zone(r, &at));

    let banned_terms = match r.table(root, "banned_terms") {
        Some((t, _)) => read_terms(r, t, "`[banned_terms]`"),
        None => TermLists::default(),
    };

    let (reviewers_required, required_span, reviewer_keys) = read_reviewers(r, root);

    let accounts = read_accounts(r, root, reviewer_keys.len());
    if let (Some(span), true) = (
        &required_span,
        reviewers_required as usize > reviewer_keys.len(),
    ) {
        r.error(
            span.clone(),
            format!(
                "{reviewers_required} {} required but only {} listed in `[reviewers.keys]`",
                if reviewers_required == 1 {
                    "reviewer"
                } else {
                    "reviewers"
                },
                reviewer_keys.len()
            ),
        )
        .hint = Some("no post could ever be approved: list more keys or lower `required`".into());
    }

    let windows = read_windows(r, root, timezone);
    let blackouts = read_blackouts(r, root, timezone);
    let schedule = Schedule { windows, blackouts };
    let freeze = read_freeze(r, root, timezone);
    let links = read_links(r, root);
    let require_alt_text = match r.table(root, "media") {
        Some((t, _)) => {
            r.check_keys(t, MEDIA_RULE_KEYS, "`[media]`");
            r.boolean(t, "require_alt_text").is_some_and(|a| a.value)
        }
        None => false,
    };
    let limits = read_limits(r, root);
    let state_url = read_state(r, root);
    let require_not_after = match r.table(root, "schedule") {
        Some((t, _)) => {
            r.check_keys(t, SCHEDULE_KEYS, "`[schedule]`");
            r.boolean(t, "require_not_after").is_some_and(|a| a.value)
        }
        None => false,
    };
    let tests = read_tests(r, root, &accounts);

    let sha256 = hex(&Sha256::digest(r.source.text.as_bytes()));
    Some(Policy {
        path: PathBuf::from(&r.source.name),
        sha256,
        timezone,
        accounts,
        banned_terms,
        reviewers_required,
        reviewer_keys,
        schedule,
        freeze,
        links,
        require_alt_text,
        limits,
        state_url,
        require_not_after,
        tests,
    })
}

/// `[state] url`: a `postgres://` (or `postgresql://`) URL naming the team's store. A password
/// in it is refused: it would be in every clone of the policy (SPEC §6).
fn read_state(r: &mut Reader<'_>, root: &DeTable<'_>) -> Option<String> {
    let (t, _) = r.table(root, "state")?;
    r.check_keys(t, STATE_KEYS, "`[state]`");
    let at = r.string(t, "url")?;
    let text = at.value.trim();
    let Ok(url) = url::Url::parse(text) else {
        r.error(at.span, format!("`{text}` is not a URL")).hint =
            Some("write `postgres://USER@HOST:5432/DATABASE`".into());
        return None;
    };
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        r.error(
            at.span,
            format!(
                "a state store URL must start with `postgres://`, not `{}://`",
                url.scheme()
            ),
        )
        .hint = Some("write `postgres://USER@HOST:5432/DATABASE`".into());
        return None;
    }
    if url.password().is_some() {
        r.error(at.span, "the `[state] url` holds a password").hint = Some(
            "remove it from the policy; store it in the OS keychain (`gate state password`) or give the whole URL in `GATE_STATE_URL`"
                .into(),
        );
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        r.error(at.span, "the `[state] url` names no host").hint =
            Some("write `postgres://USER@HOST:5432/DATABASE`".into());
        return None;
    }
    Some(text.to_owned())
}

/// `[limits] max_posts_per_hour` and every `[accounts.NAME] max_posts_per_hour` (the
/// accounts' other keys are read by `read_accounts`).
fn read_limits(r: &mut Reader<'_>, root: &DeTable<'_>) -> Limits {
    let mut limits = Limits::default();
    if let Some((t, _)) = r.table(root, "limits") {
        r.check_keys(t, LIMIT_KEYS, "`[limits]`");
        limits.per_hour = per_hour(r, t);
    }
    if let Some((_, accounts)) = Reader::get(root, "accounts")
        && let DeValue::Table(accounts) = accounts.get_ref()
    {
        for (name, value) in accounts {
            if let DeValue::Table(t) = value.get_ref()
                && let Some(n) = per_hour(r, t)
            {
                limits
                    .per_account_hour
                    .insert(name.get_ref().to_string(), n);
            }
        }
    }
    limits
}

fn per_hour(r: &mut Reader<'_>, t: &DeTable<'_>) -> Option<u32> {
    let at = r.integer(t, "max_posts_per_hour")?;
    match u32::try_from(at.value) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            r.error(
                at.span,
                "`max_posts_per_hour` must be a whole number from 1 up",
            )
            .hint = Some("to stop every post, use `gate freeze` or `[freeze]`".into());
            None
        }
    }
}

fn zone(r: &mut Reader<'_>, at: &At<String>) -> Option<Tz> {
    match at.value.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let hint = match crate::core::diagnostic::did_you_mean(
                &at.value,
                chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()),
            ) {
                Some(close) => format!("did you mean `{close}`?"),
                None => "use an IANA zone name such as `Europe/London` or `UTC`".into(),
            };
            r.error(at.span.clone(), format!("unknown time zone `{}`", at.value))
                .hint = Some(hint);
            None
        }
    }
}

fn read_terms(r: &mut Reader<'_>, table: &DeTable<'_>, context: &str) -> TermLists {
    r.check_keys(table, TERM_KEYS, context);
    let mut lists = TermLists::default();
    let mut count = 0usize;
    for (key, out) in [
        ("deny", &mut lists.deny),
        ("warn", &mut lists.warn),
        ("allow", &mut lists.allow),
    ] {
        for term in r.strings(table, key).unwrap_or_default() {
            count += 1;
            if count == terms::MAX_TERMS + 1 {
                r.error(
                    term.span.clone(),
                    format!(
                        "{context} has more than {} terms (the limit on deny, warn and allow together)",
                        terms::MAX_TERMS
                    ),
                )
                .hint = Some("keep the list to the words that matter, or split it between accounts".into());
            }
            if term.value.len() > terms::MAX_TERM_BYTES {
                r.error(
                    term.span,
                    format!(
                        "the {key} term is {} bytes long, over the limit of {} bytes a term",
                        term.value.len(),
                        terms::MAX_TERM_BYTES
                    ),
                )
                .hint = Some("a banned term is a word or a short phrase: shorten it".into());
                continue;
            }
            if count > terms::MAX_TERMS {
                continue;
            }
            if terms::normalize_term(&term.value).is_empty() {
                r.warning(
                    term.span,
                    format!(
                        "the {key} term {:?} has no letters or digits and never matches",
                        term.value
                    ),
                );
            } else {
                out.push(term.value);
            }
        }
    }
    for pattern in r.strings(table, "regex").unwrap_or_default() {
        match terms::compile_regex(&pattern.value) {
            Ok(_) => lists.regex.push(pattern.value),
            Err(e) => {
                let detail = regex_error(&e);
                r.error(pattern.span, format!("invalid regex: {detail}"))
                    .hint = Some(
                    "patterns use Rust `regex` syntax and match the normalised (lower-case) text"
                        .into(),
                );
            }
        }
    }
    lists
}

fn regex_error(e: &regex::Error) -> String {
    // The regex crate's message spans several lines with its own caret; keep its last line.
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .trim_start_matches("error: ")
        .to_owned()
}

fn read_reviewers(
    r: &mut Reader<'_>,
    root: &DeTable<'_>,
) -> (u32, Option<Range<usize>>, Vec<(String, ssh_key::PublicKey)>) {
    let Some((table, _)) = r.table(root, "reviewers") else {
        return (0, None, Vec::new());
    };
    r.check_keys(table, REVIEWER_KEYS, "`[reviewers]`");
    let required = r.count(table, "required");
    let mut keys = Vec::new();
    if let Some((key_table, _)) = r.table(table, "keys") {
        for (name, value) in key_table {
            let name = name.get_ref().to_string();
            let DeValue::String(line) = value.get_ref() else {
                r.error(
                    value.span(),
                    format!(
                        "the key of reviewer `{name}` must be a string, found {}",
                        crate::core::spanned::type_name(value.get_ref())
                    ),
                );
                continue;
            };
            match reviewers::parse_public_key(line) {
                Ok(key) => {
                    if let Some((other, _)) =
                        keys.iter().find(|(_, k): &&(String, ssh_key::PublicKey)| {
                            k.key_data() == key.key_data()
                        })
                    {
                        r.error(
                            value.span(),
                            format!("reviewers `{other}` and `{name}` have the same key"),
                        )
                        .hint = Some(
                            "each reviewer needs a key of their own, or one person counts twice"
                                .into(),
                        );
                    } else {
                        keys.push((name, key));
                    }
                }
                Err(e) => {
                    r.error(
                        value.span(),
                        format!(
                            "the key of reviewer `{name}` is not an OpenSSH ed25519 public key: {e}"
                        ),
                    )
                    .hint = Some(
                        "paste the line from `~/.ssh/id_ed25519.pub` (`ssh-ed25519 AAAA... name`)"
                            .into(),
                    );
                }
            }
        }
    }
    match required {
        Some(at) => (at.value, Some(at.span), keys),
        None => (0, None, keys),
    }
}

fn read_accounts(
    r: &mut Reader<'_>,
    root: &DeTable<'_>,
    key_count: usize,
) -> BTreeMap<String, Account> {
    let mut accounts = BTreeMap::new();
    let Some((table, _)) = r.table(root, "accounts") else {
        return accounts;
    };
    for (name_key, value) in table {
        let name = name_key.get_ref().to_string();
        let DeValue::Table(t) = value.get_ref() else {
            r.error(value.span(), format!("`accounts.{name}` must be a table"))
                .hint = Some(format!(
                "write `[accounts.{name}]` with `platform = \"...\"` under it"
            ));
            continue;
        };
        if !valid_account_name(&name) {
            r.error(name_key.span(), format!("invalid account name `{name}`"))
                .hint = Some("use letters, digits, `-` and `_`".into());
        }
        let context = format!("`[accounts.{name}]`");
        r.check_keys(t, ACCOUNT_KEYS, &context);
        let platform = match r.string(t, "platform") {
            Some(at) => match at.value.parse::<Platform>() {
                Ok(p) => Some(p),
                Err(()) => {
                    let hint = match crate::core::diagnostic::did_you_mean(
                        &at.value,
                        Platform::NAMES.iter().copied(),
                    ) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!("use one of {}", list(Platform::NAMES)),
                    };
                    r.error(at.span, format!("unknown platform `{}`", at.value))
                        .hint = Some(hint);
                    None
                }
            },
            None => {
                if Reader::get(t, "platform").is_none() && !Reader::misspelt(t, "platform") {
                    r.error(
                        name_key.span(),
                        format!("account `{name}` has no `platform`"),
                    )
                    .hint = Some(format!(
                        "add `platform = \"NAME\"`, one of {}",
                        list(Platform::NAMES)
                    ));
                }
                None
            }
        };
        let server = r.string(t, "server");
        if let Some(at) = &server
            && let Err(why) = check_url(&at.value)
        {
            r.error(
                at.span.clone(),
                format!("invalid `server` URL `{}`: {why}", at.value),
            )
            .hint = Some("write the base URL, e.g. `https://mastodon.social`".into());
        }
        let handle = r.string(t, "handle");
        if let Some(at) = &handle
            && platform.is_some_and(|p| p != Platform::Bluesky)
        {
            r.error(
                at.span.clone(),
                format!("`handle` is only for bluesky accounts; `{name}` is not one"),
            )
            .hint = Some("remove `handle`; other networks learn the account from the token".into());
        }
        let reviewers_required = r.count(t, "reviewers_required");
        if let Some(at) = &reviewers_required
            && at.value as usize > key_count
        {
            r.error(
                    at.span.clone(),
                    format!(
                        "account `{name}` requires {} reviewer{} but only {key_count} are listed in `[reviewers.keys]`",
                        at.value,
                        if at.value == 1 { "" } else { "s" }
                    ),
                )
                .hint = Some("no post could ever be approved: list more keys or lower `reviewers_required`".into());
        }
        let max_chars = r.count(t, "max_chars");
        if let Some(at) = &max_chars
            && at.value == 0
        {
            r.error(at.span.clone(), "`max_chars` must be at least 1");
        }
        let banned_terms = match r.table(t, "banned_terms") {
            Some((bt, _)) => read_terms(r, bt, &format!("`[accounts.{name}.banned_terms]`")),
            None => TermLists::default(),
        };
        let oauth = match r.table(t, "oauth") {
            Some((ot, _)) => read_oauth(r, ot, &name, platform),
            None => OAuthSettings::default(),
        };
        let Some(platform) = platform else { continue };
        let server = match (server, platform.default_server()) {
            (Some(at), _) => at.value.trim_end_matches('/').to_owned(),
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                r.error(
                    name_key.span(),
                    format!("mastodon account `{name}` has no `server`"),
                )
                .hint =
                    Some("add the instance, e.g. `server = \"https://mastodon.social\"`".into());
                continue;
            }
        };
        accounts.insert(
            name.clone(),
            Account {
                name,
                platform,
                server,
                handle: handle.map(|a| a.value),
                reviewers_required: reviewers_required.map(|a| a.value),
                max_chars: max_chars.map(|a| a.value),
                banned_terms,
                oauth,
            },
        );
    }
    accounts
}

/// `[accounts.NAME.oauth]`: every key positioned; `client_id` only where the team brings its
/// own app (X), `client_metadata_url` only for Bluesky.
fn read_oauth(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    name: &str,
    platform: Option<Platform>,
) -> OAuthSettings {
    let context = format!("`[accounts.{name}.oauth]`");
    r.check_keys(t, OAUTH_KEYS, &context);
    let client_id = r.string(t, "client_id");
    if let Some(at) = &client_id {
        if at.value.trim().is_empty() || at.value.contains(char::is_whitespace) {
            r.error(at.span.clone(), "`client_id` must be one word, not empty");
        } else if platform == Some(Platform::Mastodon) {
            r.error(
                at.span.clone(),
                "`client_id` is not used for mastodon accounts",
            )
            .hint =
                Some("gate registers its own app on each Mastodon instance: remove the key".into());
        }
    }
    let redirect_port = r
        .count(t, "redirect_port")
        .and_then(|at| match u16::try_from(at.value) {
            Ok(port) if port > 0 => Some(port),
            _ => {
                r.error(at.span, "`redirect_port` must be a port from 1 to 65535");
                None
            }
        });
    let scopes = r.strings(t, "scopes").map(|items| {
        if items.is_empty()
            && let Some((_, value)) = Reader::get(t, "scopes")
        {
            r.error(value.span(), "`scopes` is empty").hint =
                Some("remove the key to use the platform's scopes".into());
        }
        for at in &items {
            if at.value.is_empty() || at.value.contains(char::is_whitespace) {
                r.error(
                    at.span.clone(),
                    format!("invalid scope `{}`: a scope is one word", at.value),
                );
            }
        }
        items.into_iter().map(|at| at.value).collect()
    });
    let mut url = |key: &str| {
        let at = r.string(t, key)?;
        if let Err(why) = check_url(&at.value) {
            r.error(
                at.span.clone(),
                format!("invalid `{key}` URL `{}`: {why}", at.value),
            )
            .hint =
                Some("write the full endpoint URL, e.g. `https://x.com/i/oauth2/authorize`".into());
            return None;
        }
        Some(at)
    };
    let authorize_url = url("authorize_url");
    let token_url = url("token_url");
    let revoke_url = url("revoke_url");
    let metadata = url("client_metadata_url");
    if platform == Some(Platform::Bluesky) {
        // atproto OAuth finds the endpoints from the PDS; the client is its metadata URL.
        let unused = [
            (
                "authorize_url",
                authorize_url.as_ref().map(|a| a.span.clone()),
            ),
            ("token_url", token_url.as_ref().map(|a| a.span.clone())),
            ("revoke_url", revoke_url.as_ref().map(|a| a.span.clone())),
            ("client_id", client_id.as_ref().map(|a| a.span.clone())),
        ];
        for (key, span) in unused {
            if let Some(span) = span {
                r.error(span, format!("`{key}` is not used for bluesky accounts"))
                    .hint = Some(if key == "client_id" {
                    "a Bluesky client is named by its metadata document: set `client_metadata_url`, or remove the key to use gate's loopback client".into()
                } else {
                    "gate finds the OAuth endpoints from the PDS (`server`): remove the key".into()
                });
            }
        }
    }
    if let Some(at) = &metadata
        && platform.is_some_and(|p| p != Platform::Bluesky)
    {
        r.error(
            at.span.clone(),
            "`client_metadata_url` is only for bluesky accounts",
        );
    }
    OAuthSettings {
        client_id: client_id.map(|a| a.value).filter(|v| !v.trim().is_empty()),
        redirect_port,
        scopes,
        authorize_url: authorize_url.map(|a| a.value),
        token_url: token_url.map(|a| a.value),
        revoke_url: revoke_url.map(|a| a.value),
        client_metadata_url: metadata.map(|a| a.value),
    }
}

fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A minimal check of a base URL: `https://host[:port][/path]`, or `http://` for loopback only.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        if !matches!(host, "localhost" | "127.0.0.1" | "[") && !rest.starts_with("[::1]") {
            return Err("plain `http://` is only allowed for loopback test servers");
        }
        rest
    } else {
        return Err("it must start with `https://`");
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err("it has no host");
    }
    if url.contains(char::is_whitespace) || url.contains(['?', '#']) {
        return Err("a base URL has no spaces, query or fragment");
    }
    Ok(())
}

fn read_windows(r: &mut Reader<'_>, root: &DeTable<'_>, timezone: Option<Tz>) -> Vec<Window> {
    let mut windows = Vec::new();
    for (t, span) in r.tables(root, "quiet_hours") {
        r.check_keys(t, WINDOW_KEYS, "`[[quiet_hours]]`");
        let mut days = Vec::new();
        for day in r.strings(t, "days").unwrap_or_default() {
            match hours::parse_weekday(&day.value) {
                Some(d) => days.push(d),
                None => {
                    r.error(day.span, format!("unknown day `{}`", day.value))
                        .hint =
                        Some("use `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`".into());
                }
            }
        }
        let mut time = |key: &str| {
            let at = r.string(t, key)?;
            let parsed = hours::parse_hhmm(&at.value);
            if parsed.is_none() {
                r.error(at.span, format!("invalid time `{}` for `{key}`", at.value))
                    .hint = Some("write 24-hour `HH:MM`, e.g. `20:00`".into());
            }
            parsed
        };
        let from = time("from");
        let to = time("to");
        if Reader::get(t, "from").is_some() != Reader::get(t, "to").is_some() {
            r.error(
                span.clone(),
                "a quiet-hours window needs both `from` and `to`, or neither",
            )
            .hint = Some("omit both for a window that lasts all day".into());
        }
        let tz = match r.string(t, "timezone") {
            Some(at) => zone(r, &at),
            None if timezone.is_none() && Reader::get(root, "timezone").is_none() => {
                r.error(span.clone(), "quiet hours need a time zone").hint =
                    Some("add `timezone = \"Europe/London\"` at the top of the policy, or to this window".into());
                None
            }
            None => timezone,
        };
        let reason = r.string(t, "reason").map(|a| a.value);
        if let Some(tz) = tz {
            windows.push(Window {
                days,
                from,
                to,
                tz,
                reason,
            });
        }
    }
    windows
}

fn read_blackouts(r: &mut Reader<'_>, root: &DeTable<'_>, timezone: Option<Tz>) -> Vec<Blackout> {
    let mut blackouts = Vec::new();
    let timezone = (timezone, Reader::get(root, "timezone").is_some());
    for (t, span) in r.tables(root, "blackouts") {
        r.check_keys(t, BLACKOUT_KEYS, "`[[blackouts]]`");
        let from = instant(r, t, "from", timezone, Side::Start);
        let to = instant(r, t, "to", timezone, Side::End);
        for key in ["from", "to"] {
            if Reader::get(t, key).is_none() {
                r.error(span.clone(), format!("a blackout needs `{key}`"));
            }
        }
        let reason = r.string(t, "reason").map(|a| a.value);
        if let (Some((from, _)), Some((to, to_span))) = (from, to) {
            if to <= from {
                r.error(to_span, "a blackout must end after it starts");
            } else {
                blackouts.push(Blackout { from, to, reason });
            }
        }
    }
    blackouts
}

/// A date-time written with an offset, or as local time in the policy's zone.
fn instant(
    r: &mut Reader<'_>,
    table: &DeTable<'_>,
    key: &str,
    (timezone, zone_written): (Option<Tz>, bool),
    side: Side,
) -> Option<(DateTime<Utc>, Range<usize>)> {
    let (_, value) = Reader::get(table, key)?;
    let text = match value.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        other => {
            let found = crate::core::spanned::type_name(other);
            r.error(
                value.span(),
                format!("`{key}` must be a date-time, found {found}"),
            );
            return None;
        }
    };
    match parse_datetime(&text) {
        Some(Written::Exact(t)) => Some((t, value.span())),
        Some(Written::Local(naive)) => match timezone {
            Some(tz) => Some((hours::resolve_local(naive, tz, side), value.span())),
            // The zone is there but invalid: that error is already reported.
            None if zone_written => None,
            None => {
                r.error(value.span(), format!("`{key}` has no offset and the policy has no `timezone`"))
                    .hint = Some("add `timezone = \"Europe/London\"` at the top, or write an offset such as `+01:00`".into());
                None
            }
        },
        None => {
            r.error(
                value.span(),
                format!("invalid date-time `{text}` for `{key}`"),
            )
            .hint = Some("write `2026-12-24T00:00` (local time) or `2026-12-24T00:00:00Z`".into());
            None
        }
    }
}

/// A date-time as a user wrote it: with an offset (an instant) or without (wall-clock time).
pub enum Written {
    Exact(DateTime<Utc>),
    Local(NaiveDateTime),
}

/// Accepts RFC 3339, `YYYY-MM-DDTHH:MM[:SS]` with or without an offset, and a bare date.
pub fn parse_datetime(text: &str) -> Option<Written> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(Written::Exact(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M%:z", "%Y-%m-%d %H:%M%:z", "%Y-%m-%dT%H:%MZ"] {
        let text = text.replace('z', "Z");
        let attempt = if format.ends_with('Z') {
            NaiveDateTime::parse_from_str(&text, format)
                .ok()
                .map(|n| n.and_utc())
        } else {
            DateTime::<FixedOffset>::parse_from_str(&text, format)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        if let Some(t) = attempt {
            return Some(Written::Exact(t));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Written::Local(n));
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(Written::Local)
}

fn read_freeze(r: &mut Reader<'_>, root: &DeTable<'_>, timezone: Option<Tz>) -> Option<Freeze> {
    let (t, span) = r.table(root, "freeze")?;
    r.check_keys(t, FREEZE_KEYS, "`[freeze]`");
    let reason = r.string(t, "reason");
    let since = match Reader::get(t, "since") {
        Some(_) => instant(
            r,
            t,
            "since",
            (timezone, Reader::get(root, "timezone").is_some()),
            Side::Start,
        )
        .map(|(t, _)| t),
        None => None,
    };
    match reason {
        Some(at) if !at.value.trim().is_empty() => Some(Freeze {
            reason: at.value,
            since,
        }),
        _ => {
            r.error(span, "`[freeze]` needs a `reason`").hint =
                Some("say why posting is frozen, e.g. `reason = \"account compromised\"`".into());
            None
        }
    }
}

fn read_links(r: &mut Reader<'_>, root: &DeTable<'_>) -> LinkRules {
    let mut rules = LinkRules::default();
    let Some((t, _)) = r.table(root, "links") else {
        return rules;
    };
    r.check_keys(t, LINK_KEYS, "`[links]`");
    for (key, out) in [("allow", &mut rules.allow), ("deny", &mut rules.deny)] {
        for at in r.strings(t, key).unwrap_or_default() {
            match DomainPattern::parse(&at.value) {
                Some(p) => out.push(p),
                None => {
                    r.error(at.span, format!("`{}` is not a domain name", at.value)).hint =
                        Some("write `example.com` (the domain and its subdomains) or `*.example.com` (subdomains only)".into());
                }
            }
        }
    }
    if let Some(at) = r.string(t, "shorteners") {
        rules.shorteners = match at.value.as_str() {
            "deny" => Shorteners::Deny,
            "warn" => Shorteners::Warn,
            "allow" => Shorteners::Allow,
            _ => {
                r.error(
                    at.span,
                    format!("unknown value `{}` for `shorteners`", at.value),
                )
                .hint = Some("use `deny`, `warn` (the default) or `allow`".into());
                Shorteners::Warn
            }
        };
    }
    rules
}

fn read_tests(
    r: &mut Reader<'_>,
    root: &DeTable<'_>,
    accounts: &BTreeMap<String, Account>,
) -> Vec<TestCase> {
    let mut tests = Vec::new();
    for (t, span) in r.tables(root, "tests") {
        r.check_keys(t, TEST_KEYS, "`[[tests]]`");
        let line = r.source.position(span.start).0;
        let name = r.string(t, "name").map(|a| a.value);
        let text = r.string(t, "text");
        if text.is_none() && Reader::get(t, "text").is_none() {
            r.error(span.clone(), "a test case needs `text`");
        }
        let account = r.string(t, "account");
        if let Some(at) = &account
            && !accounts.contains_key(&at.value)
        {
            unknown_account(r, at, accounts);
        }
        let now = match r.string(t, "now") {
            Some(at) => match parse_datetime(&at.value) {
                Some(Written::Exact(t)) => Some(t),
                _ => {
                    r.error(at.span, format!("invalid `now` `{}`", at.value))
                        .hint = Some(
                        "write an RFC 3339 instant with an offset, e.g. `2026-11-23T10:00:00Z`"
                            .into(),
                    );
                    None
                }
            },
            None => None,
        };
        let expect = match r.string(t, "expect") {
            Some(at) => match at.value.parse::<Verdict>() {
                Ok(v) => Some(v),
                Err(()) => {
                    r.error(at.span, format!("unknown verdict `{}`", at.value))
                        .hint =
                        Some("expect one of `allow`, `deny`, `hold`, `review`, `frozen`".into());
                    None
                }
            },
            None => {
                if Reader::get(t, "expect").is_none() {
                    r.error(span.clone(), "a test case needs `expect`");
                }
                None
            }
        };
        if let (Some(text), Some(expect)) = (text, expect) {
            tests.push(TestCase {
                name,
                text: text.value,
                account: account.map(|a| a.value),
                now,
                expect,
                line,
            });
        }
    }
    tests
}

/// Reports a reference to an account the policy does not define.
pub fn unknown_account(r: &mut Reader<'_>, at: &At<String>, accounts: &BTreeMap<String, Account>) {
    r.error(at.span.clone(), format!("unknown account `{}`", at.value))
        .hint = Some(account_hint(accounts, &at.value));
}

/// The hint for an unknown account name: the close one if there is one, else the accounts
/// the policy defines (or how to define one).
pub fn account_hint(accounts: &BTreeMap<String, Account>, name: &str) -> String {
    match crate::core::diagnostic::did_you_mean(name, accounts.keys().map(String::as_str)) {
        Some(close) => format!("did you mean `{close}`?"),
        None if accounts.is_empty() => {
            "the policy defines no accounts: add an `[accounts.NAME]` table".into()
        }
        None => format!("the policy defines {}", account_list(accounts)),
    }
}

/// The accounts' names as a readable list: `` `brand`, `brand-x` ``.
pub fn account_list(accounts: &BTreeMap<String, Account>) -> String {
    list(&accounts.keys().map(String::as_str).collect::<Vec<_>>())
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
