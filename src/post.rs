//! A post: its text, target accounts, media and approvals, from a post file, an argument,
//! stdin or a JSON Lines calendar.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, Level, Source};
use crate::policy::{Policy, hex, unknown_account};
use crate::reviewers::{Approval, MediaDigest, digest_message};
use crate::schema::{At, Reader};

const POST_KEYS: &[&str] = &[
    "account",
    "accounts",
    "author",
    "text",
    "media",
    "approvals",
];
const MEDIA_KEYS: &[&str] = &["path", "alt"];
const APPROVAL_KEYS: &[&str] = &["reviewer", "signature"];

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
}

#[derive(Debug, Clone)]
pub struct Post {
    pub origin: Origin,
    /// Accounts named by the post itself; empty for inline text.
    pub accounts: Vec<String>,
    pub author: Option<String>,
    pub text: String,
    pub media: Vec<Media>,
    pub approvals: Vec<Approval>,
}

impl Post {
    pub fn inline(origin: Origin, text: String) -> Post {
        Post {
            origin,
            accounts: Vec::new(),
            author: None,
            text,
            media: Vec::new(),
            approvals: Vec::new(),
        }
    }

    /// The exact message reviewers sign for this post (SPEC §4).
    pub fn digest_message(&self, accounts: &[String]) -> String {
        let media: Vec<MediaDigest> = self
            .media
            .iter()
            .map(|m| MediaDigest {
                sha256_hex: m.sha256.clone(),
                alt: m.alt.clone().unwrap_or_default(),
            })
            .collect();
        digest_message(accounts, &self.text, &media)
    }
}

/// Reads and validates a post file; accounts must exist in `policy`.
pub fn load(path: &Path, policy: &Policy) -> Result<Post, Vec<Diagnostic>> {
    let display = path.display().to_string();
    let text = std::fs::read(path)
        .map_err(|e| {
            vec![Diagnostic::whole_file(
                Level::Error,
                &display,
                format!("cannot read the post file: {}", crate::error::io_reason(&e)),
            )]
        })
        .and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| {
                vec![Diagnostic::whole_file(
                    Level::Error,
                    &display,
                    "the post file is not valid UTF-8",
                )]
            })
        })?;
    let source = Source::new(display, text);
    parse(&source, path, policy)
}

/// Validates post-file text; media paths resolve relative to `path`'s folder.
pub fn parse(source: &Source, path: &Path, policy: &Policy) -> Result<Post, Vec<Diagnostic>> {
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
    let text = match r.string(root, "text") {
        Some(at) => {
            if at.value.trim().is_empty() {
                r.error(at.span, "the post's `text` is empty");
            }
            at.value
        }
        None => {
            if Reader::get(root, "text").is_none() {
                r.error(0..0, "the post has no `text`").hint =
                    Some("add `text = \"\"\"...\"\"\"`".into());
            }
            String::new()
        }
    };

    let base = path.parent().unwrap_or(Path::new("."));
    let mut media = Vec::new();
    for (t, span) in r.tables(root, "media") {
        r.check_keys(t, MEDIA_KEYS, "`[[media]]`");
        let alt = r.string(t, "alt").map(|a| a.value);
        let Some(written) = r.string(t, "path") else {
            if Reader::get(t, "path").is_none() {
                r.error(span, "a `[[media]]` entry needs `path`");
            }
            continue;
        };
        let full = base.join(&written.value);
        match std::fs::read(&full) {
            Ok(bytes) => media.push(Media {
                written: written.value,
                path: full,
                alt,
                sha256: hex(&Sha256::digest(&bytes)),
                bytes: bytes.len() as u64,
            }),
            Err(e) => {
                r.error(
                    written.span,
                    format!(
                        "cannot read media `{}`: {}",
                        written.value,
                        crate::error::io_reason(&e)
                    ),
                )
                .hint = Some("media paths are relative to the post file's folder".into());
            }
        }
    }

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

    if r.has_errors() {
        return Err(r.diagnostics);
    }
    Ok(Post {
        origin: Origin::File(path.to_path_buf()),
        accounts: names,
        author,
        text,
        media,
        approvals,
    })
}

/// Every `*.post.toml` below `dir`, sorted so reports are stable.
pub fn find_post_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().is_file()
            && entry.file_name().to_string_lossy().ends_with(".post.toml")
        {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}
