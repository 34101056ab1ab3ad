//! `gate schema policy|post`: JSON Schema (draft 2020-12) documents of the two files people
//! write, for editors (taplo, Even Better TOML) and CI.
//!
//! Every object's properties are the key table its reader checks (`policy::TOP_KEYS`,
//! `post::POST_KEYS`, …), so a key the reader takes cannot be missing from the schema, and a key
//! the schema describes cannot be one the reader denies. Each key's type, description and form
//! are here; a key added to a reader without them stops `gate schema` (and its tests) at once.

use serde_json::{Map, Value, json};

use crate::cli::SchemaKind;
use crate::commands::Ctx;
use crate::core::policy::{
    ACCOUNT_KEYS, BLACKOUT_KEYS, FREEZE_KEYS, LIMIT_KEYS, LINK_KEYS, MEDIA_RULE_KEYS, OAUTH_KEYS,
    Platform, REVIEWER_KEYS, SCHEDULE_KEYS, STATE_KEYS, TERM_KEYS, TEST_KEYS, TOP_KEYS,
    WINDOW_KEYS,
};
use crate::core::post::{
    APPROVAL_KEYS, MAX_THREAD_ITEMS, MEDIA_KEYS, POST_KEYS, THREAD_KEYS, Visibility,
};
use crate::error::{Code, Error};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";
pub const POLICY_ID: &str = "urn:gate:schema:policy:1";
pub const POST_ID: &str = "urn:gate:schema:post:1";

/// The day names `[[quiet_hours]] days` takes (in any case).
pub const WEEKDAYS: &[&str] = &[
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
/// The verdicts a `[[tests]]` case may expect.
pub const VERDICTS: &[&str] = &["allow", "deny", "hold", "review", "frozen"];
/// The values of `[links] shorteners`.
pub const SHORTENERS: &[&str] = &["deny", "warn", "allow"];

/// An account's name, as `[accounts.NAME]` and post files write it.
const ACCOUNT_NAME: &str = "^[A-Za-z0-9_-]+$";
/// A base or endpoint URL as the policy reader checks it: `https://HOST[/PATH]`, or `http://`
/// for a loopback test server; no spaces, query or fragment.
const URL: &str = r"^(https://[^/\s?#]+|http://(localhost|127\.0\.0\.1)(:[^/\s?#]*)?|http://\[[^/\s?#]*)(/[^\s?#]*)?$";
/// One word: not empty, no spaces.
const WORD: &str = r"^\S+$";
/// Something besides spaces.
const NOT_BLANK: &str = r"\S";
/// `HH:MM`, 24-hour.
const HHMM: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
/// A date, a date-time without an offset (local time), or one with an offset or `Z`; a TOML
/// date-time is checked as its text.
const DATETIME: &str = r"^\s*[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\.[0-9]+)?)?\s*([Zz]|[+-][0-9]{2}:[0-9]{2})?)?\s*$";
/// A date-time with an offset or `Z`: an instant.
const INSTANT: &str = r"^\s*[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[Tt ][0-9]{1,2}:[0-9]{1,2}(:[0-9]{1,2}(\.[0-9]+)?)?\s*([Zz]|[+-][0-9]{2}:[0-9]{2})\s*$";
/// An OpenSSH ed25519 public key line.
const SSH_ED25519: &str = r"^\s*ssh-ed25519\s+[A-Za-z0-9+/]+=*(\s.*)?$";
/// A domain (`example.com`) or its subdomains (`*.example.com`): labels joined by dots.
const DOMAIN: &str = r"^\s*(\*\.)?([^\s.*/:?#@]+\.)+[^\s.*/:?#@]+\s*$";
/// A BCP 47 language tag: a 2- or 3-letter language, then subtags joined with `-`.
const LANGUAGE: &str = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$";

pub fn run(ctx: &Ctx, kind: SchemaKind) -> Result<Code, Error> {
    let document = match kind {
        SchemaKind::Policy => policy(),
        SchemaKind::Post => post(),
    };
    ctx.print.line(render(&document))?;
    Ok(Code::Ok)
}

/// The document as committed under `schema/`: pretty-printed, keys sorted.
pub fn render(document: &Value) -> String {
    serde_json::to_string_pretty(&sorted(document.clone())).expect("a JSON value always prints")
}

/// Rebuilds every object with its keys inserted in sorted order, so the output is the same
/// whether or not `serde_json` keeps insertion order.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// A closed object: `keys` (a reader's key table) described by `field`, every other key denied.
fn object(
    context: &str,
    description: &str,
    keys: &[&str],
    field: impl Fn(&str) -> Option<Value>,
) -> Map<String, Value> {
    let mut properties = Map::new();
    for key in keys {
        let schema = field(key).unwrap_or_else(|| {
            panic!("`{key}` in {context} is read but has no schema: describe it in src/commands/schema.rs")
        });
        properties.insert((*key).to_owned(), schema);
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("description".into(), json!(description));
    out.insert("properties".into(), Value::Object(properties));
    out.insert("additionalProperties".into(), json!(false));
    out
}

fn with(mut map: Map<String, Value>, key: &str, value: Value) -> Map<String, Value> {
    map.insert(key.to_owned(), value);
    map
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn pattern(description: &str, pattern: &str) -> Value {
    json!({ "type": "string", "description": description, "pattern": pattern })
}

fn one_of(description: &str, names: &[&str]) -> Value {
    json!({ "type": "string", "description": description, "enum": names })
}

fn strings(description: &str, item: Value) -> Value {
    json!({ "type": "array", "description": description, "items": item })
}

fn integer(description: &str, minimum: u64, maximum: u64) -> Value {
    json!({ "type": "integer", "description": description, "minimum": minimum, "maximum": maximum })
}

/// A key holding an IANA zone name: one of the zones gate knows, listed once under `$defs`.
fn timezone(description: &str) -> Value {
    json!({ "$ref": "#/$defs/timezone", "description": description })
}

fn timezones() -> Value {
    let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    one_of(
        "An IANA time zone name, e.g. `Europe/London` or `UTC`.",
        &names,
    )
}

fn url(description: &str) -> Value {
    pattern(description, URL)
}

/// The JSON Schema of the policy file.
pub fn policy() -> Value {
    let root = object(
        "the policy",
        "A gate policy: the team's accounts and the rules every post to them must pass. Unknown keys are errors.",
        TOP_KEYS,
        |key| {
            Some(match key {
                "version" => json!({
                    "type": "integer",
                    "description": "The policy format's version; required, and 1 is the only one there is.",
                    "const": 1,
                }),
                "timezone" => timezone(
                    "IANA time zone of quiet hours and of blackouts written without an offset, e.g. `Europe/London`; required as soon as either is used.",
                ),
                "accounts" => json!({
                    "type": "object",
                    "description": "The accounts posts may go to, by name (`[accounts.NAME]`). A post file names one or several of them.",
                    "propertyNames": { "pattern": ACCOUNT_NAME },
                    "additionalProperties": Value::Object(account()),
                }),
                "banned_terms" => Value::Object(terms(
                    "`[banned_terms]`",
                    "Banned terms for every account: whole words and phrases, matched case-insensitively after normalising both sides (NFKC, case folding, diacritics, look-alike letters, spaced-out letters).",
                )),
                "reviewers" => Value::Object(reviewers()),
                "quiet_hours" => json!({
                    "type": "array",
                    "description": "Quiet hours (`[[quiet_hours]]`): windows [from, to) in local time; a post inside one is held (exit 5).",
                    "items": Value::Object(window()),
                }),
                "blackouts" => json!({
                    "type": "array",
                    "description": "Blackouts (`[[blackouts]]`): fixed periods with no posting at all; a post inside one is held (exit 5).",
                    "items": Value::Object(blackout()),
                }),
                "freeze" => Value::Object(with(
                    object(
                        "`[freeze]`",
                        "A crisis freeze for everyone who syncs this file: while the table is there, every `gate post` stops (exit 7).",
                        FREEZE_KEYS,
                        |key| {
                            Some(match key {
                                "reason" => pattern(
                                    "Why posting is frozen, shown to everyone who tries; required.",
                                    NOT_BLANK,
                                ),
                                "since" => pattern(
                                    "When the freeze began: a date-time with an offset, or local time in `timezone`.",
                                    DATETIME,
                                ),
                                _ => return None,
                            })
                        },
                    ),
                    "required",
                    json!(["reason"]),
                )),
                "links" => Value::Object(object(
                    "`[links]`",
                    "Where posts may point. Links are `http(s)://...` and `www....`; a bare `bit.ly/x` counts when a rule names its domain.",
                    LINK_KEYS,
                    |key| {
                        Some(match key {
                            "allow" => strings(
                                "When set, every link must be on one of these domains: `example.com` is it and its subdomains, `*.example.com` its subdomains only.",
                                pattern("A domain, or `*.` and a domain.", DOMAIN),
                            ),
                            "deny" => strings(
                                "Links to these domains deny the post: `example.com` is it and its subdomains, `*.example.com` its subdomains only.",
                                pattern("A domain, or `*.` and a domain.", DOMAIN),
                            ),
                            "shorteners" => one_of(
                                "Links through known URL shorteners (bit.ly, t.co, ...): `deny`, `warn` (the default) or `allow`.",
                                SHORTENERS,
                            ),
                            _ => return None,
                        })
                    },
                )),
                "media" => Value::Object(object(
                    "`[media]`",
                    "Rules for attached media.",
                    MEDIA_RULE_KEYS,
                    |key| {
                        Some(match key {
                            "require_alt_text" => json!({
                                "type": "boolean",
                                "description": "Every attached image needs alt text (default false).",
                            }),
                            _ => return None,
                        })
                    },
                )),
                "limits" => Value::Object(object(
                    "`[limits]`",
                    "Rate limits, counted from the state store's ledger of what `gate post` sent (or is sending) in the last hour; reaching one holds the next post (exit 5).",
                    LIMIT_KEYS,
                    |key| {
                        Some(match key {
                            "max_posts_per_hour" => integer(
                                "At most this many posts to all accounts together in any hour (1 or more).",
                                1,
                                u32::MAX.into(),
                            ),
                            _ => return None,
                        })
                    },
                )),
                "state" => Value::Object(object(
                    "`[state]`",
                    "The team's state store (deliveries, freeze, rate ledger, audit trail) instead of this machine's SQLite file; `$GATE_STATE_URL` overrides it.",
                    STATE_KEYS,
                    |key| {
                        Some(match key {
                            "url" => pattern(
                                "A PostgreSQL URL without a password, e.g. `postgres://gate@db.example.com:5432/gate?sslmode=verify-full`; the password comes from the OS keychain or `$GATE_STATE_URL`.",
                                "^postgres(ql)?://[^:@/]*@?[^@]*$",
                            ),
                            _ => return None,
                        })
                    },
                )),
                "schedule" => Value::Object(object(
                    "`[schedule]`",
                    "Rules for scheduled post files (`not_before`, `not_after`).",
                    SCHEDULE_KEYS,
                    |key| {
                        Some(match key {
                            "require_not_after" => json!({
                                "type": "boolean",
                                "description": "Every post file needs `not_after`, so no post can go out stale (default false).",
                            }),
                            _ => return None,
                        })
                    },
                )),
                "tests" => json!({
                    "type": "array",
                    "description": "Example cases run by `gate policy test` (`[[tests]]`): each text is judged and must get the expected verdict.",
                    "items": Value::Object(test_case()),
                }),
                _ => return None,
            })
        },
    );
    let mut root = with(root, "required", json!(["version"]));
    root.insert("$schema".into(), json!(DRAFT));
    root.insert("$id".into(), json!(POLICY_ID));
    root.insert("$defs".into(), json!({ "timezone": timezones() }));
    root.insert("title".into(), json!("gate policy"));
    Value::Object(root)
}

fn account() -> Map<String, Value> {
    let account = object(
        "`[accounts.NAME]`",
        "An account posts may go to: its network, server and own rules.",
        ACCOUNT_KEYS,
        |key| {
            Some(match key {
                "platform" => one_of(
                    "The account's network: `mastodon`, `bluesky` or `x`; required.",
                    Platform::NAMES,
                ),
                "server" => url(
                    "The server's base URL: the instance for Mastodon (required there); Bluesky defaults to https://bsky.social, X to https://api.x.com.",
                ),
                "handle" => string(
                    "Bluesky only: the handle `gate auth login --app-password` signs in as, e.g. `brand.bsky.social`.",
                ),
                "reviewers_required" => integer(
                    "Distinct valid approvals a post to this account needs; overrides `[reviewers] required`. At most the number of keys in `[reviewers.keys]`.",
                    0,
                    u32::MAX.into(),
                ),
                "max_chars" => integer(
                    "The longest post this account takes, in the network's own count (Mastodon: the instance's limit, default 500).",
                    1,
                    u32::MAX.into(),
                ),
                "max_posts_per_hour" => integer(
                    "At most this many posts to this account in any hour (1 or more).",
                    1,
                    u32::MAX.into(),
                ),
                "banned_terms" => Value::Object(terms(
                    "`[accounts.NAME.banned_terms]`",
                    "Banned terms for this account only; they add to the global `[banned_terms]` lists.",
                )),
                "oauth" => Value::Object(oauth()),
                _ => return None,
            })
        },
    );
    let account = with(account, "required", json!(["platform"]));
    let when = |platform: &str, then: Value| {
        json!({
            "if": { "properties": { "platform": { "const": platform } }, "required": ["platform"] },
            "then": then,
        })
    };
    // What the reader refuses for one network and takes for another.
    with(
        account,
        "allOf",
        json!([
            when(
                "mastodon",
                json!({
                    "required": ["server"],
                    "properties": {
                        "handle": false,
                        "oauth": { "properties": { "client_id": false, "client_metadata_url": false } },
                    },
                })
            ),
            when(
                "x",
                json!({
                    "properties": {
                        "handle": false,
                        "oauth": { "properties": { "client_metadata_url": false } },
                    },
                })
            ),
            when(
                "bluesky",
                json!({
                    "properties": {
                        "oauth": { "properties": {
                            "client_id": false,
                            "authorize_url": false,
                            "token_url": false,
                            "revoke_url": false,
                        } },
                    },
                })
            ),
        ]),
    )
}

fn oauth() -> Map<String, Value> {
    object(
        "`[accounts.NAME.oauth]`",
        "Sign-in settings for `gate auth login`; every key optional. The client secret is never written here: `--client-secret -` keeps it in the OS keychain.",
        OAUTH_KEYS,
        |key| {
            Some(match key {
                "client_id" => pattern(
                    "X: the team app's client id (public), required to sign in. Not used for Mastodon (gate registers its own app) or Bluesky.",
                    WORD,
                ),
                "redirect_port" => integer(
                    "The redirect goes to http://127.0.0.1:PORT/callback. X: default 8765 (register exactly this URL for the app); Mastodon: any free port.",
                    1,
                    u16::MAX.into(),
                ),
                "scopes" => json!({
                    "type": "array",
                    "description": "The scopes asked for; defaults to the platform's (X: tweet.read tweet.write users.read offline.access media.write; Mastodon: read:accounts write:statuses write:media).",
                    "minItems": 1,
                    "items": pattern("One scope: a word without spaces.", WORD),
                }),
                "authorize_url" => url(
                    "The authorization endpoint. Defaults: X https://x.com/i/oauth2/authorize, Mastodon SERVER/oauth/authorize. Not for Bluesky.",
                ),
                "token_url" => url(
                    "The token endpoint. Defaults: X https://api.x.com/2/oauth2/token, Mastodon SERVER/oauth/token. Not for Bluesky.",
                ),
                "revoke_url" => url(
                    "The revocation endpoint. Defaults: X https://api.x.com/2/oauth2/revoke, Mastodon SERVER/oauth/revoke. Not for Bluesky.",
                ),
                "client_metadata_url" => url(
                    "Bluesky only: the address of the team's atproto OAuth client metadata document; without it gate signs in as its loopback client.",
                ),
                _ => return None,
            })
        },
    )
}

fn terms(context: &str, description: &str) -> Map<String, Value> {
    object(context, description, TERM_KEYS, |key| {
        Some(match key {
            "deny" => strings(
                "Terms that deny the post (exit 4).",
                string("A word or phrase."),
            ),
            "warn" => strings(
                "Terms that are reported but do not block the post.",
                string("A word or phrase."),
            ),
            "allow" => strings(
                "Phrases inside which nothing is flagged, e.g. `kill switch`.",
                string("A word or phrase."),
            ),
            "regex" => strings(
                "Deny-level patterns in Rust `regex` syntax, matched on the normalised (lower-case) text.",
                string("A regular expression."),
            ),
            _ => return None,
        })
    })
}

fn reviewers() -> Map<String, Value> {
    object(
        "`[reviewers]`",
        "Reviewers: approvals are SSH signatures (namespace `gate-post`) over `gate digest --file POST`, appended with `gate approve`.",
        REVIEWER_KEYS,
        |key| {
            Some(match key {
                "required" => integer(
                    "Distinct valid approvals a post needs (default 0); at most the number of keys.",
                    0,
                    u32::MAX.into(),
                ),
                "keys" => json!({
                    "type": "object",
                    "description": "Each reviewer's name and OpenSSH ed25519 public key (the line from `~/.ssh/id_ed25519.pub`); no two reviewers share a key.",
                    "additionalProperties": pattern(
                        "An OpenSSH ed25519 public key line: `ssh-ed25519 AAAA... comment`.",
                        SSH_ED25519,
                    ),
                }),
                _ => return None,
            })
        },
    )
}

fn window() -> Map<String, Value> {
    let case_insensitive: Vec<String> = WEEKDAYS
        .iter()
        .map(|d| {
            d.chars()
                .map(|c| format!("[{}{}]", c, c.to_ascii_uppercase()))
                .collect()
        })
        .collect();
    let day = json!({
        "description": "A day: `mon` ... `sun` or `monday` ... `sunday`, in any case.",
        "anyOf": [
            { "type": "string", "enum": WEEKDAYS },
            { "type": "string", "pattern": format!("^({})$", case_insensitive.join("|")) },
        ],
    });
    let window = object(
        "`[[quiet_hours]]`",
        "A quiet-hours window: from `from` to `to` on the given days, in local time.",
        WINDOW_KEYS,
        |key| {
            Some(match key {
                "days" => strings(
                    "The days a window starts on (default: every day).",
                    day.clone(),
                ),
                "from" => pattern(
                    "When the window starts: 24-hour `HH:MM`. Omit both `from` and `to` for all day.",
                    HHMM,
                ),
                "to" => pattern(
                    "When the window ends: 24-hour `HH:MM`; at or before `from`, it runs past midnight.",
                    HHMM,
                ),
                "reason" => string("Shown in the finding, e.g. `Evenings`."),
                "timezone" => {
                    timezone("This window's own IANA time zone (default: the policy's `timezone`).")
                }
                _ => return None,
            })
        },
    );
    with(
        window,
        "dependentRequired",
        json!({ "from": ["to"], "to": ["from"] }),
    )
}

fn blackout() -> Map<String, Value> {
    let blackout = object(
        "`[[blackouts]]`",
        "A blackout: no posting from `from` until `to`.",
        BLACKOUT_KEYS,
        |key| {
            Some(match key {
                "from" => pattern(
                    "When it starts: local time in `timezone` (`2026-12-24T00:00`, or a date) or with an offset (`2026-12-24T00:00:00Z`); required.",
                    DATETIME,
                ),
                "to" => pattern(
                    "When it ends, after `from`: local time in `timezone` or with an offset; required.",
                    DATETIME,
                ),
                "reason" => string("Shown in the finding, e.g. `Holidays`."),
                _ => return None,
            })
        },
    );
    with(blackout, "required", json!(["from", "to"]))
}

fn test_case() -> Map<String, Value> {
    let case = object(
        "`[[tests]]`",
        "A test case: a text, judged without approvals, and the verdict it must get.",
        TEST_KEYS,
        |key| {
            Some(match key {
                "name" => string("A label shown when the case fails."),
                "text" => string("The post's text; required."),
                "account" => pattern(
                    "Whose rules apply: an account defined under `[accounts]` (default: the global rules only).",
                    ACCOUNT_NAME,
                ),
                "now" => pattern(
                    "Judge as of this instant: RFC 3339 with an offset, e.g. `2026-11-23T10:00:00Z`.",
                    INSTANT,
                ),
                "expect" => one_of(
                    "The verdict the text must get: `allow`, `deny`, `hold`, `review` or `frozen`; required.",
                    VERDICTS,
                ),
                _ => return None,
            })
        },
    );
    with(case, "required", json!(["text", "expect"]))
}

/// `[[media]]` (of a post, or of a thread item).
fn media_schema(what: &str, description: &str) -> Value {
    json!({
        "type": "array",
        "description": description,
        "items": Value::Object(with(
            object(what, "An attached file.", MEDIA_KEYS, |key| {
                Some(match key {
                    "path" => string(
                        "The file, relative to the post file's folder and inside it; required.",
                    ),
                    "alt" => string("The alt text: what the image shows, for people who cannot see it."),
                    _ => return None,
                })
            }),
            "required",
            json!(["path"]),
        )),
    })
}

/// The JSON Schema of a post file (`*.post.toml`).
pub fn post() -> Value {
    let root = object(
        "a post file",
        "A gate post file: one post's text (or a thread's items), the accounts it goes to, its media and its reviewers' approvals. Unknown keys are errors.",
        POST_KEYS,
        |key| {
            Some(match key {
                "account" => pattern(
                    "The one account the post goes to, as named in the policy's `[accounts]`. Write either `account` or `accounts`.",
                    ACCOUNT_NAME,
                ),
                "accounts" => json!({
                    "type": "array",
                    "description": "The accounts the post goes to, as named in the policy's `[accounts]`. Write either `account` or `accounts`.",
                    "minItems": 1,
                    "items": pattern("An account's name.", ACCOUNT_NAME),
                }),
                "author" => string("Who wrote the post, for the audit trail."),
                "text" => pattern(
                    "The post's text, as it goes out; required (unless the post is a `[[thread]]`) and not blank. Reviewers sign it.",
                    NOT_BLANK,
                ),
                "media" => media_schema(
                    "`[[media]]`",
                    "Attached images or videos (`[[media]]`), in order. Reviewers sign their bytes and alt text. A thread's media go in its items (`[[thread.media]]`).",
                ),
                "thread" => json!({
                    "type": "array",
                    "description": format!("A thread (`[[thread]]`), instead of `text` and `[[media]]`: its items in order, each sent as a reply to the one before. Reviewers sign every item. At most {MAX_THREAD_ITEMS} items."),
                    "minItems": 1,
                    "maxItems": MAX_THREAD_ITEMS,
                    "items": Value::Object(with(
                        object("a `[[thread]]` item", "One post of the thread.", THREAD_KEYS, |key| {
                            Some(match key {
                                "text" => pattern(
                                    "The item's text, as it goes out; required and not blank. Reviewers sign it.",
                                    NOT_BLANK,
                                ),
                                "media" => media_schema(
                                    "`[[thread.media]]`",
                                    "The item's attached images or videos (`[[thread.media]]`), in order. Reviewers sign their bytes and alt text.",
                                ),
                                _ => return None,
                            })
                        }),
                        "required",
                        json!(["text"]),
                    )),
                }),
                "approvals" => json!({
                    "type": "array",
                    "description": "Reviewers' signatures (`[[approvals]]`), appended by `gate approve`.",
                    "items": Value::Object(with(
                        object("`[[approvals]]`", "One reviewer's approval.", APPROVAL_KEYS, |key| {
                            Some(match key {
                                "reviewer" => string(
                                    "The reviewer's name, as listed in the policy's `[reviewers.keys]`; required.",
                                ),
                                "signature" => string(
                                    "The SSH signature (`-----BEGIN SSH SIGNATURE-----` ...) over `gate digest --file` of this post; required.",
                                ),
                                _ => return None,
                            })
                        }),
                        "required",
                        json!(["reviewer", "signature"]),
                    )),
                }),
                "language" => pattern(
                    "The post's language, a BCP 47 tag such as `en`, `en-GB`, `pt-BR` (X takes none). Not signed.",
                    LANGUAGE,
                ),
                "visibility" => one_of(
                    "Who may see it on Mastodon (default `public`); Bluesky and X take only `public`. Not signed.",
                    Visibility::NAMES,
                ),
                "reply_to" => pattern(
                    "The post this one answers: its id or address on the one account's network. Not signed.",
                    NOT_BLANK,
                ),
                "not_before" => pattern(
                    "Never sent before this instant: a TOML offset date-time, e.g. `2026-12-01T09:00:00+01:00`. Reviewers sign it.",
                    INSTANT,
                ),
                "not_after" => pattern(
                    "Never sent at or after this instant (a stale post expires): a TOML offset date-time later than `not_before`. Reviewers sign it.",
                    INSTANT,
                ),
                _ => return None,
            })
        },
    );
    let mut root = root;
    // Either `account` or `accounts`; either `text` (with `[[media]]`) or `[[thread]]`.
    root.insert(
        "allOf".into(),
        json!([
            { "oneOf": [{ "required": ["account"] }, { "required": ["accounts"] }] },
            { "oneOf": [
                { "required": ["text"] },
                { "required": ["thread"], "not": { "anyOf": [{ "required": ["text"] }, { "required": ["media"] }] } }
            ] }
        ]),
    );
    root.insert("$schema".into(), json!(DRAFT));
    root.insert("$id".into(), json!(POST_ID));
    root.insert("title".into(), json!("gate post file"));
    Value::Object(root)
}
