//! A post: its text, target accounts, media and approvals, from a post file, an argument,
//! stdin or a JSON Lines calendar.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::core::diagnostic::{Diagnostic, Source};
use crate::core::policy::{Account, Platform, Policy, hex, unknown_account};
use crate::core::reviewers::{Approval, MediaDigest, digest_message, thread_message};
use crate::core::spanned::{At, Reader};

// The keys of a post file and of its `[[media]]` and `[[approvals]]` entries: the reader denies
// every other, and `gate schema post` describes exactly these.
pub const POST_KEYS: &[&str] = &[
    "account",
    "accounts",
    "author",
    "text",
    "media",
    "approvals",
    "language",
    "visibility",
    "reply_to",
    "thread",
    "not_before",
    "not_after",
];
/// The keys of one `[[thread]]` item.
pub const THREAD_KEYS: &[&str] = &["text", "media"];
/// The most items a thread may have: X's composer stops at 25, and a longer chain is a blog
/// post. Fewer is fine; more is an error where the 26th item is written.
pub const MAX_THREAD_ITEMS: usize = 25;
pub const MEDIA_KEYS: &[&str] = &["path", "alt"];
pub const APPROVAL_KEYS: &[&str] = &["reviewer", "signature"];

/// Where a post came from, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Argument,
    Stdin,
    /// A line of a JSON Lines file (1-based).
    Line(PathBuf, usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Argument => f.write_str("<argument>"),
            Origin::Stdin => f.write_str("<stdin>"),
            Origin::Line(p, n) => write!(f, "{}:{n}", p.display()),
        }
    }
}

/// An attached image or video, hashed when the post is read.
#[derive(Debug, Clone)]
pub struct Media {
    /// As written in the post file.
    pub written: String,
    pub path: PathBuf,
    pub alt: Option<String>,
    pub sha256: String,
    pub bytes: u64,
    /// The file's bytes, read once when the post was read: what was hashed is what is sent.
    pub data: std::sync::Arc<[u8]>,
}

/// What one network post carries: a plain post's text and media, or one `[[thread]]` item's.
#[derive(Debug, Clone)]
pub struct Item {
    /// What is judged and sent: a post file's or stdin's text without its one final newline
    /// (a TOML multi-line string ends with one).
    pub text: String,
    /// The text exactly as the post file holds it, final newline included: what reviewers
    /// sign (SPEC §4), so approvals made before gate stripped that newline stay valid.
    pub written: String,
    pub media: Vec<Media>,
    /// Where each byte of `text` was written in the post file (`None` for inline text).
    pub text_at: Option<crate::core::textmap::TextMap>,
}

#[derive(Debug, Clone)]
pub struct Post {
    pub origin: Origin,
    /// Accounts named by the post itself; empty for inline text.
    pub accounts: Vec<String>,
    pub author: Option<String>,
    /// What is sent, in order: one item for a plain post, every `[[thread]]` item for a
    /// thread (item k > 0 answers item k - 1). Never empty.
    pub items: Vec<Item>,
    /// Whether the items come from `[[thread]]` (a one-item thread included): a thread has
    /// its own digest message and its findings name their item.
    pub thread: bool,
    pub approvals: Vec<Approval>,
    /// How the post is sent, not what it says: none of these is in the digest (SPEC §4).
    pub options: Options,
    /// `not_before` / `not_after` (SPEC §7): signed, and judged at every send.
    pub window: crate::core::window::Window,
}

/// `language`, `visibility` and `reply_to`: from the post file, or `gate post`'s flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Options {
    /// A BCP 47 tag in its usual case (`en`, `en-GB`, `pt-BR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// As written: a post's id or address on the one account's network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

impl Options {
    pub fn is_empty(&self) -> bool {
        *self == Options::default()
    }

    /// `language pt-BR, visibility unlisted, in reply to 123`, for people.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.language {
            parts.push(format!("language {l}"));
        }
        if let Some(v) = self.visibility {
            parts.push(format!("visibility {v}"));
        }
        if let Some(r) = &self.reply_to {
            parts.push(format!("in reply to {r}"));
        }
        parts.join(", ")
    }
}

/// Who may see a Mastodon status. Bluesky and X have only `public`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Public,
    Unlisted,
    Private,
    Direct,
}

impl Visibility {
    pub const NAMES: &'static [&'static str] = &["public", "unlisted", "private", "direct"];

    pub fn name(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }

    pub fn parse(text: &str) -> Option<Visibility> {
        match text {
            "public" => Some(Visibility::Public),
            "unlisted" => Some(Visibility::Unlisted),
            "private" => Some(Visibility::Private),
            "direct" => Some(Visibility::Direct),
            _ => None,
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The hint for a bad language tag, in the post file and for `--language`.
pub const LANGUAGE_HINT: &str = "write a BCP 47 language tag: a 2- or 3-letter language, then subtags joined with `-`, e.g. `en`, `en-GB`, `pt-BR`";

/// A BCP 47 language tag in its conventional case (`EN-gb` → `en-GB`), or why it is not one.
/// Checked: a 2–3 letter language, then subtags of 1–8 letters or digits joined by `-`; a
/// script subtag (4 letters) is title-cased, a region (2 letters) upper-cased.
pub fn language_tag(text: &str) -> Result<String, String> {
    if text.contains('_') {
        return Err(format!(
            "`{text}` is not a language tag: subtags are joined with `-`, not `_`"
        ));
    }
    let mut out = Vec::new();
    for (i, sub) in text.split('-').enumerate() {
        let ok = if i == 0 {
            (2..=3).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphabetic())
        } else {
            (1..=8).contains(&sub.len()) && sub.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        if !ok {
            return Err(format!("`{text}` is not a language tag"));
        }
        out.push(if i == 0 {
            sub.to_ascii_lowercase()
        } else if sub.len() == 2 && sub.bytes().all(|b| b.is_ascii_alphabetic()) {
            sub.to_ascii_uppercase()
        } else if sub.len() == 4 && sub.bytes().all(|b| b.is_ascii_alphabetic()) {
            let lower = sub.to_ascii_lowercase();
            lower[..1].to_ascii_uppercase() + &lower[1..]
        } else {
            sub.to_ascii_lowercase()
        });
    }
    Ok(out.join("-"))
}

/// Which option a problem is about, so the post file can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKey {
    Visibility,
    ReplyTo,
}

/// An option that does not fit the accounts the post goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    pub key: OptionKey,
    pub message: String,
    pub hint: String,
}

/// What the options cannot do for these accounts: a visibility other than `public` outside
/// Mastodon, a reply to more than one account, a reply target the network cannot take.
/// Without accounts (text judged against global rules only) nothing is said.
pub fn misfits(options: &Options, accounts: &[&Account]) -> Vec<Misfit> {
    let mut out = Vec::new();
    if let Some(v) = options.visibility
        && v != Visibility::Public
    {
        for a in accounts.iter().filter(|a| a.platform != Platform::Mastodon) {
            out.push(Misfit {
                key: OptionKey::Visibility,
                message: format!(
                    "visibility `{v}` is for Mastodon only; `{}` is {} {} account, which has no such thing",
                    a.name,
                    if a.platform == Platform::X { "an" } else { "a" },
                    network_name(a.platform)
                ),
                hint: format!(
                    "{} posts are public: remove the visibility, or post to Mastodon accounts only",
                    network_name(a.platform)
                ),
            });
        }
    }
    if let Some(target) = &options.reply_to {
        if accounts.len() > 1 {
            out.push(Misfit {
                key: OptionKey::ReplyTo,
                message: format!(
                    "a reply goes to one account; this post goes to {}",
                    crate::core::spanned::list(
                        &accounts.iter().map(|a| a.name.as_str()).collect::<Vec<_>>()
                    )
                ),
                hint: "a post's id belongs to one network: write one reply per account".into(),
            });
        } else if let [account] = accounts
            && let Err(why) = crate::core::target::reply_target(account, target)
        {
            out.push(Misfit {
                key: OptionKey::ReplyTo,
                message: why,
                hint: crate::core::target::hint(account.platform).to_owned(),
            });
        }
    }
    out
}

fn network_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Mastodon => "Mastodon",
        Platform::Bluesky => "Bluesky",
        Platform::X => "X",
    }
}

impl Post {
    pub fn inline(origin: Origin, text: String) -> Post {
        Post {
            origin,
            accounts: Vec::new(),
            author: None,
            items: vec![Item {
                written: text.clone(),
                text,
                media: Vec::new(),
                text_at: None,
            }],
            thread: false,
            approvals: Vec::new(),
            options: Options::default(),
            window: crate::core::window::Window::default(),
        }
    }

    /// The first item: a plain post's whole content.
    pub fn first(&self) -> &Item {
        &self.items[0]
    }

    /// The item a finding names (`None`: the first, which is a plain post's only one).
    pub fn item(&self, index: Option<usize>) -> &Item {
        index
            .and_then(|i| self.items.get(i))
            .unwrap_or_else(|| self.first())
    }

    /// Every item's text, in order, a blank line between items: what the audit trail keeps
    /// of a judged post (a plain post's text exactly).
    pub fn all_text(&self) -> String {
        self.items
            .iter()
            .map(|i| i.text.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The exact message reviewers sign for this post (SPEC §4): a plain post's as it has
    /// always been, a thread's covering every item's text and media in order (§8).
    pub fn digest_message(&self, accounts: &[String]) -> String {
        let media = |item: &Item| -> Vec<MediaDigest> {
            item.media
                .iter()
                .map(|m| MediaDigest {
                    sha256_hex: m.sha256.clone(),
                    alt: m.alt.clone().unwrap_or_default(),
                })
                .collect()
        };
        let mut message = if self.thread {
            let items: Vec<(&str, Vec<MediaDigest>)> = self
                .items
                .iter()
                .map(|i| (i.written.as_str(), media(i)))
                .collect();
            thread_message(accounts, &items)
        } else {
            let first = self.first();
            digest_message(accounts, &first.written, &media(first))
        };
        // The window's block (SPEC §7), only when the post has one.
        self.window.push_digest(&mut message);
        message
    }
}

/// `text` without one final line ending (`\n` or `\r\n`): the newline that closes a TOML
/// multi-line string or a line piped on stdin is not part of the post.
pub fn without_final_newline(text: &str) -> &str {
    text.strip_suffix('\n')
        .map_or(text, |t| t.strip_suffix('\r').unwrap_or(t))
}

/// The largest media file any of `accounts`' networks takes (every network's when the post
/// names none): checked with `stat` before a byte is read.
fn media_cap(policy: &Policy, accounts: &[String]) -> u64 {
    use crate::core::policy::Platform;
    let cap = |p: Platform| match p {
        Platform::Bluesky => 1_000_000,
        // Mastodon's default limit for videos (images: 16 MB).
        Platform::Mastodon => 99 << 20,
        // X takes videos of up to 512 MB.
        Platform::X => 512 << 20,
    };
    let named: Vec<u64> = accounts
        .iter()
        .filter_map(|a| policy.account(a))
        .map(|a| cap(a.platform))
        .collect();
    named.into_iter().max().unwrap_or_else(|| {
        [Platform::Bluesky, Platform::Mastodon, Platform::X]
            .map(cap)
            .into_iter()
            .max()
            .unwrap_or(0)
    })
}

/// What the shell found at a `[[media]]` path, as the post wrote it.
pub struct MediaFile {
    /// The file, resolved (inside the post file's folder).
    pub path: PathBuf,
    pub data: Vec<u8>,
}

/// Why a `[[media]]` path could not be read: the message and what to do.
pub struct MediaProblem {
    pub message: String,
    pub hint: String,
}

/// Reads the media a post file names: the shell's, so the core reads no file itself.
pub trait MediaReader {
    /// The file `written` names, of at most `cap` bytes.
    fn read(&mut self, written: &str, cap: u64) -> Result<MediaFile, MediaProblem>;
}

/// Validates the text of the post file at `path`; `media_reader` reads the files its `[[media]]` entries name.
pub fn parse(
    source: &Source,
    path: &Path,
    policy: &Policy,
    media_reader: &mut dyn MediaReader,
) -> Result<Post, Vec<Diagnostic>> {
    let mut r = Reader::new(source);
    let Some(root) = r.parse() else {
        return Err(r.diagnostics);
    };
    let root = root.get_ref();
    r.check_keys(root, POST_KEYS, "a post file");

    let mut accounts: Vec<At<String>> = Vec::new();
    match (r.string(root, "account"), r.strings(root, "accounts")) {
        (Some(one), None) => accounts.push(one),
        (None, Some(many)) => {
            if many.is_empty()
                && let Some((_, v)) = Reader::get(root, "accounts")
            {
                r.error(v.span(), "`accounts` is empty").hint =
                    Some("name at least one account".into());
            }
            accounts = many;
        }
        (Some(one), Some(_)) => {
            r.error(
                one.span,
                "a post names either `account` or `accounts`, not both",
            );
        }
        (None, None) => {
            if Reader::get(root, "account").is_none() && Reader::get(root, "accounts").is_none() {
                r.error(0..0, "the post names no account").hint =
                    Some("add `account = \"NAME\"` or `accounts = [\"A\", \"B\"]`".into());
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for at in &accounts {
        if !policy.accounts.contains_key(&at.value) {
            unknown_account(&mut r, at, &policy.accounts);
        } else if names.contains(&at.value) {
            r.warning(
                at.span.clone(),
                format!("account `{}` is named twice", at.value),
            );
        } else {
            names.push(at.value.clone());
        }
    }

    let author = r.string(root, "author").map(|a| a.value);
    let media_cap = media_cap(policy, &names);
    let thread = Reader::get(root, "thread").is_some();
    let items = if thread {
        read_thread(&mut r, source, root, media_cap, media_reader)
    } else {
        let mut text_at = None;
        let text = match r.string(root, "text") {
            Some(at) => {
                text_at =
                    crate::core::textmap::TextMap::new(&source.text, at.span.clone(), &at.value);
                if at.value.trim().is_empty() {
                    r.error(at.span, "the post's `text` is empty");
                }
                at.value
            }
            None => {
                if Reader::get(root, "text").is_none() {
                    r.error(0..0, "the post has no `text`").hint = Some(
                        "add `text = \"\"\"...\"\"\"`, or `[[thread]]` items for a thread".into(),
                    );
                }
                String::new()
            }
        };
        let media = read_media(&mut r, root, "`[[media]]`", media_cap, media_reader);
        vec![Item {
            text: without_final_newline(&text).to_owned(),
            written: text,
            media,
            text_at,
        }]
    };

    let mut approvals = Vec::new();
    for (t, span) in r.tables(root, "approvals") {
        r.check_keys(t, APPROVAL_KEYS, "`[[approvals]]`");
        let reviewer = r.string(t, "reviewer");
        let signature = r.string(t, "signature");
        match (reviewer, signature) {
            (Some(reviewer), Some(signature)) => approvals.push(Approval {
                reviewer: reviewer.value,
                signature: signature.value,
            }),
            (reviewer, signature) => {
                if reviewer.is_none() && Reader::get(t, "reviewer").is_none() {
                    r.error(span.clone(), "an approval needs `reviewer`");
                }
                if signature.is_none() && Reader::get(t, "signature").is_none() {
                    r.error(span, "an approval needs `signature`");
                }
            }
        }
    }

    let options = read_options(&mut r, root, &names, policy);

    // `not_before` / `not_after` (SPEC §7), and the policy's `[schedule] require_not_after`.
    let window = crate::core::window::read(&mut r, root);
    if policy.require_not_after
        && window.not_after.is_none()
        && Reader::get(root, "not_after").is_none()
    {
        r.error(0..0, "the post has no `not_after`, and the policy requires one").hint = Some(
            "add `not_after = 2026-12-01T12:00:00+01:00` (the instant it goes stale), or drop `[schedule] require_not_after` from the policy".into(),
        );
    }

    if r.has_errors() {
        return Err(r.diagnostics);
    }
    Ok(Post {
        origin: Origin::File(path.to_path_buf()),
        accounts: names,
        author,
        items,
        thread,
        approvals,
        options,
        window,
    })
}

/// The `[[media]]` entries of `table` (a post file or one `[[thread]]` item), each file read
/// and hashed.
fn read_media(
    r: &mut Reader<'_>,
    table: &toml::de::DeTable<'_>,
    what: &str,
    cap: u64,
    media_reader: &mut dyn MediaReader,
) -> Vec<Media> {
    let mut media = Vec::new();
    for (t, span) in r.tables(table, "media") {
        r.check_keys(t, MEDIA_KEYS, what);
        let alt = r.string(t, "alt").map(|a| a.value);
        let Some(written) = r.string(t, "path") else {
            if Reader::get(t, "path").is_none() {
                r.error(span, format!("a {what} entry needs `path`"));
            }
            continue;
        };
        match media_reader.read(&written.value, cap) {
            Ok(file) => media.push(Media {
                written: written.value,
                path: file.path,
                alt,
                sha256: hex(&Sha256::digest(&file.data)),
                bytes: file.data.len() as u64,
                data: file.data.into(),
            }),
            Err(problem) => {
                r.error(written.span, problem.message).hint = Some(problem.hint);
            }
        }
    }
    media
}

/// The `[[thread]]` items (SPEC §8): each with its own `text` and `[[thread.media]]`; a post
/// file with a thread has no top-level `text` or `[[media]]`.
fn read_thread(
    r: &mut Reader<'_>,
    source: &Source,
    root: &toml::de::DeTable<'_>,
    cap: u64,
    media_reader: &mut dyn MediaReader,
) -> Vec<Item> {
    let thread_span = Reader::get(root, "thread").map_or(0..0, |(k, _)| k.span());
    if let Some((key, _)) = Reader::get(root, "text") {
        r.error(
            key.span(),
            "a post has either `text` or `[[thread]]` items, not both",
        )
        .hint = Some(
            "move the text into the first `[[thread]]` item, or remove the `[[thread]]` items"
                .into(),
        );
    }
    if let Some((key, _)) = Reader::get(root, "media") {
        r.error(
            key.span(),
            "a thread's media belong to its items: top-level `[[media]]` is for a post without `[[thread]]`",
        )
        .hint = Some("write `[[thread.media]]` under the `[[thread]]` item it goes with".into());
    }
    let tables = r.tables(root, "thread");
    if tables.is_empty() && !r.has_errors() {
        r.error(thread_span.clone(), "the thread has no items").hint =
            Some("write one `[[thread]]` table per post of the thread, each with `text`".into());
    }
    let mut items = Vec::new();
    for (n, (t, span)) in tables.into_iter().enumerate() {
        if n == MAX_THREAD_ITEMS {
            r.error(
                span.clone(),
                format!(
                    "a thread has at most {MAX_THREAD_ITEMS} items (0 to {}); this is item {n}",
                    MAX_THREAD_ITEMS - 1
                ),
            )
            .hint = Some("split it into two post files, the second replying to the first".into());
        }
        r.check_keys(t, THREAD_KEYS, "a `[[thread]]` item");
        let mut text_at = None;
        let text = match r.string(t, "text") {
            Some(at) => {
                text_at =
                    crate::core::textmap::TextMap::new(&source.text, at.span.clone(), &at.value);
                if at.value.trim().is_empty() {
                    r.error(at.span, format!("thread item {n} has an empty `text`"));
                }
                at.value
            }
            None => {
                if Reader::get(t, "text").is_none() {
                    r.error(span, format!("thread item {n} has no `text`")).hint =
                        Some("add `text = \"...\"` to the item".into());
                }
                String::new()
            }
        };
        let media = read_media(r, t, "`[[thread.media]]`", cap, media_reader);
        items.push(Item {
            text: without_final_newline(&text).to_owned(),
            written: text,
            media,
            text_at,
        });
    }
    items
}

/// `language`, `visibility` and `reply_to`, each checked where it is written.
fn read_options(
    r: &mut Reader<'_>,
    root: &toml::de::DeTable<'_>,
    names: &[String],
    policy: &Policy,
) -> Options {
    let mut options = Options::default();
    let mut spans = (0..0, 0..0);
    if let Some(at) = r.string(root, "language") {
        match language_tag(&at.value) {
            Ok(tag) => options.language = Some(tag),
            Err(why) => {
                r.error(at.span, format!("invalid `language`: {why}")).hint =
                    Some(LANGUAGE_HINT.into())
            }
        }
    }
    if let Some(at) = r.string(root, "visibility") {
        match Visibility::parse(&at.value) {
            Some(v) => {
                options.visibility = Some(v);
                spans.0 = at.span;
            }
            None => {
                let hint = match crate::core::diagnostic::did_you_mean(
                    &at.value,
                    Visibility::NAMES.iter().copied(),
                ) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!(
                        "`visibility` takes {} (Mastodon only)",
                        crate::core::spanned::list(Visibility::NAMES)
                    ),
                };
                r.error(at.span, format!("invalid `visibility` `{}`", at.value))
                    .hint = Some(hint);
            }
        }
    }
    if let Some(at) = r.string(root, "reply_to") {
        if at.value.trim().is_empty() {
            r.error(at.span, "`reply_to` is empty").hint =
                Some("give the id or the address of the post this one answers".into());
        } else {
            options.reply_to = Some(at.value.trim().to_owned());
            spans.1 = at.span;
        }
    }
    let accounts: Vec<&Account> = names.iter().filter_map(|n| policy.account(n)).collect();
    for m in misfits(&options, &accounts) {
        let span = match m.key {
            OptionKey::Visibility => spans.0.clone(),
            OptionKey::ReplyTo => spans.1.clone(),
        };
        r.error(span, m.message).hint = Some(m.hint);
    }
    options
}

/// The accounts a post is judged for and sent to: those its file names, else the inline
/// ones (`--account`, or the policy's only account).
pub fn targets<'p>(policy: &'p Policy, post: &Post, inline: &[&'p Account]) -> Vec<&'p Account> {
    if post.accounts.is_empty() {
        inline.to_vec()
    } else {
        post.accounts
            .iter()
            .filter_map(|a| policy.account(a))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Media files by name, for the reader.
    struct Files;

    impl MediaReader for Files {
        fn read(&mut self, written: &str, _cap: u64) -> Result<MediaFile, MediaProblem> {
            Ok(MediaFile {
                path: PathBuf::from(written),
                data: written.as_bytes().to_vec(),
            })
        }
    }

    fn read(text: &str) -> Result<Post, Vec<Diagnostic>> {
        let (policy, d) = crate::core::policy::parse(&Source::new(
            "gate.toml",
            "version = 1\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n",
        ));
        let policy = policy.unwrap_or_else(|| panic!("{d:?}"));
        parse(
            &Source::new("p.post.toml", text),
            Path::new("p.post.toml"),
            &policy,
            &mut Files,
        )
    }

    /// A post without `[[thread]]` signs exactly the message it always has: this one is what
    /// `gate digest` printed for the same file before threads existed (the media file holds
    /// the five bytes `a.png`).
    #[test]
    fn a_plain_post_keeps_its_old_digest_message_byte_for_byte() {
        let post = read(
            "account = \"brand\"\ntext = \"\"\"\nHello\r\nworld\n\"\"\"\n[[media]]\npath = \"a.png\"\nalt = \"A\"\n",
        )
        .unwrap();
        assert!(!post.thread);
        assert_eq!(
            post.digest_message(&post.accounts),
            "gate-post-v1\naccounts 1\naccount 5\nbrand\ntext 12\nHello\nworld\n\nmedia 1\nsha256 64\n\
             7f071235805fbf58a2524f77bff76e1391d0d1cfe2f4c190d73054495e05b460\nalt 1\nA\n"
        );
    }

    #[test]
    fn a_thread_signs_every_item_in_order() {
        let thread = |a: &str, b: &str| {
            read(&format!(
                "account = \"brand\"\n[[thread]]\ntext = \"{a}\"\n[[thread]]\ntext = \"{b}\"\n[[thread.media]]\npath = \"b.png\"\nalt = \"B\"\n"
            ))
            .unwrap()
        };
        let post = thread("one", "two");
        assert!(post.thread);
        assert_eq!(post.items.len(), 2);
        assert_eq!(post.items[1].media.len(), 1);
        let message = post.digest_message(&post.accounts);
        assert_eq!(
            message,
            format!(
                "gate-post-v1\naccounts 1\naccount 5\nbrand\nthread 2\ntext 3\none\nmedia 0\ntext 3\ntwo\nmedia 1\nsha256 64\n{}\nalt 1\nB\n",
                hex(&Sha256::digest(b"b.png"))
            )
        );
        // Any edit, and the order, change it; a one-item thread is not the plain post.
        assert_ne!(
            thread("one", "two!").digest_message(&post.accounts),
            message
        );
        assert_ne!(thread("two", "one").digest_message(&post.accounts), message);
        let single = read("account = \"brand\"\n[[thread]]\ntext = \"one\"\n").unwrap();
        let plain = read("account = \"brand\"\ntext = \"one\"\n").unwrap();
        assert_ne!(
            single.digest_message(&single.accounts),
            plain.digest_message(&plain.accounts)
        );
    }

    #[test]
    fn a_thread_is_refused_with_text_empty_or_an_item_without_text() {
        let errors = |text: &str| -> Vec<String> {
            read(text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"))
                .into_iter()
                .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
                .collect()
        };
        assert_eq!(
            errors("account = \"brand\"\ntext = \"x\"\n[[thread]]\ntext = \"a\"\n"),
            ["2:1 a post has either `text` or `[[thread]]` items, not both"]
        );
        assert_eq!(
            errors("account = \"brand\"\nthread = []\n"),
            ["2:1 the thread has no items"]
        );
        assert_eq!(
            errors("account = \"brand\"\n[[thread]]\ntext = \"a\"\n[[thread]]\n"),
            ["4:1 thread item 1 has no `text`"]
        );
        assert_eq!(
            errors("account = \"brand\"\n[[thread]]\ntext = \" \"\n"),
            ["3:8 thread item 0 has an empty `text`"]
        );
        assert_eq!(
            errors("account = \"brand\"\n[[media]]\npath = \"a.png\"\n[[thread]]\ntext = \"a\"\n"),
            [
                "2:3 a thread's media belong to its items: top-level `[[media]]` is for a post without `[[thread]]`"
            ]
        );
        let mut long = String::from("account = \"brand\"\n");
        for i in 0..=MAX_THREAD_ITEMS {
            long.push_str(&format!("[[thread]]\ntext = \"{i}\"\n"));
        }
        assert_eq!(
            errors(&long),
            [format!(
                "{}:1 a thread has at most 25 items (0 to 24); this is item 25",
                2 + 2 * MAX_THREAD_ITEMS
            )]
        );
        let mut most = String::from("account = \"brand\"\n");
        for i in 0..MAX_THREAD_ITEMS {
            most.push_str(&format!("[[thread]]\ntext = \"{i}\"\n"));
        }
        assert_eq!(read(&most).unwrap().items.len(), MAX_THREAD_ITEMS);
    }

    #[test]
    fn language_tags() {
        let good: &[(&str, &str)] = &[
            ("en", "en"),
            ("EN-gb", "en-GB"),
            ("pt-BR", "pt-BR"),
            ("zh-hant-tw", "zh-Hant-TW"),
            ("es-419", "es-419"),
            ("gsw", "gsw"),
        ];
        for (text, want) in good {
            assert_eq!(language_tag(text).as_deref(), Ok(*want), "{text}");
        }
        for bad in [
            "",
            "e",
            "english",
            "en-",
            "-en",
            "en--GB",
            "en GB",
            "é",
            "en-toolongsubtag",
            "1a",
        ] {
            assert_eq!(
                language_tag(bad),
                Err(format!("`{bad}` is not a language tag")),
                "{bad}"
            );
        }
        assert!(language_tag("en_GB").unwrap_err().contains("not `_`"));
    }

    #[test]
    fn visibility_names_round_trip() {
        for name in Visibility::NAMES {
            assert_eq!(Visibility::parse(name).map(Visibility::name), Some(*name));
        }
        assert_eq!(Visibility::parse("Public"), None);
        assert_eq!(Visibility::default(), Visibility::Public);
    }
}
