//! Reviewer approvals: the message reviewers sign, and checking their signatures.
//!
//! A post is approved by SSH signatures in the SSHSIG format that `ssh-keygen -Y sign`
//! produces, made in the [`NAMESPACE`] `gate-post` over the message [`digest_message`]
//! builds. Using plain OpenSSH signatures means a reviewer needs no gate-specific tooling:
//!
//! ```text
//! gate digest --file post.toml | ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n gate-post
//! ```
//!
//! and the armoured output can be pasted into the post's `[[approvals]]`. The message covers
//! exactly what readers of the post will see (accounts, text, media bytes and alt text), so any
//! edit to those invalidates every approval, while appending approvals does not.
//!
//! This is a pure core module: callers read files and pass bytes and strings in.

use std::fmt;

use sha2::{Digest, Sha256};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

/// The SSHSIG namespace every approval must be made in (`ssh-keygen -Y sign -n gate-post`).
///
/// A distinct namespace stops a signature made for another purpose (a git commit, a file
/// signature) from being replayed as an approval, and vice versa.
pub const NAMESPACE: &str = "gate-post";

/// First line of the signed message; bump it if the format ever changes, so that a signature
/// over one version can never be read as a signature over another.
pub const FORMAT_VERSION: &str = "gate-post-v1";

/// One media item as it enters the signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDigest {
    /// SHA-256 of the file's bytes, lower-case hex (upper-case is lowered when building the message).
    pub sha256_hex: String,
    /// The item's alt text as written in the post.
    pub alt: String,
}

impl MediaDigest {
    /// Hashes the file's bytes; the path is deliberately not part of the digest, only the content.
    pub fn from_bytes(bytes: &[u8], alt: impl Into<String>) -> Self {
        MediaDigest {
            sha256_hex: sha256_hex(bytes),
            alt: alt.into(),
        }
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Replaces CRLF and lone CR with LF, so a post saved on Windows signs the same as on Unix.
fn normalise_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Appends one field as `<tag> <byte-length>\n<value>\n`.
///
/// The length prefix is what makes the message unambiguous: a value is consumed by its byte
/// count, never by scanning for a delimiter, so no value can contain something that a reader
/// would take for the next field's header.
fn push_field(out: &mut String, tag: &str, value: &str) {
    out.push_str(tag);
    out.push(' ');
    out.push_str(&value.len().to_string());
    out.push('\n');
    out.push_str(value);
    out.push('\n');
}

/// Builds the exact message reviewers sign (and `gate digest` prints).
///
/// Format `gate-post-v1`, UTF-8, every line ending in LF, including the last:
///
/// ```text
/// gate-post-v1
/// accounts <N>                  N = number of distinct accounts
/// account <len>                 repeated N times, accounts sorted by bytes, duplicates removed
/// <account>
/// text <len>
/// <text>                        CRLF and lone CR normalised to LF; otherwise exact
/// media <M>                     M = number of media items
/// sha256 64                     repeated M times, in file order
/// <lower-case hex sha256>
/// alt <len>
/// <alt text>                    CRLF and lone CR normalised to LF; otherwise exact
/// ```
///
/// `<len>` is the decimal byte length of the value that follows on the next line(s) (after
/// normalisation); the value is followed by one LF that is not counted. Accounts are sorted
/// and deduplicated because `accounts = ["a", "b"]` and `["b", "a"]` publish to the same
/// places; media stay in file order because the order is visible in the published post.
pub fn digest_message(accounts: &[String], text: &str, media: &[MediaDigest]) -> String {
    let mut accounts: Vec<&str> = accounts.iter().map(String::as_str).collect();
    accounts.sort_unstable();
    accounts.dedup();

    let mut out = String::new();
    out.push_str(FORMAT_VERSION);
    out.push('\n');
    out.push_str(&format!("accounts {}\n", accounts.len()));
    for account in accounts {
        push_field(&mut out, "account", account);
    }
    push_field(&mut out, "text", &normalise_newlines(text));
    out.push_str(&format!("media {}\n", media.len()));
    for item in media {
        push_field(&mut out, "sha256", &item.sha256_hex.to_ascii_lowercase());
        push_field(&mut out, "alt", &normalise_newlines(&item.alt));
    }
    out
}

/// One `[[approvals]]` entry as written in the post file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The reviewer the approval claims to be from (a name in `[reviewers.keys]`).
    pub reviewer: String,
    /// The SSHSIG PEM armour (`-----BEGIN SSH SIGNATURE-----` ...).
    pub signature: String,
}

/// Why an approval does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The `reviewer` name is not in `[reviewers.keys]`.
    UnknownReviewer,
    /// Signed by a key that is not the named reviewer's; `signer` is the listed reviewer who
    /// owns the signing key, if any (someone signed under a colleague's name).
    WrongKey { signer: Option<String> },
    /// Made in another namespace (e.g. `git` or `file`), so it was not meant as an approval.
    WrongNamespace(String),
    /// The signature does not verify over the current message: the post was edited after signing.
    ContentChanged,
    /// This reviewer (or this key) has already been counted.
    Duplicate,
    /// The post's author cannot approve their own post.
    SelfApproval,
    /// Not a readable SSHSIG signature, or one made with an unsupported algorithm.
    Malformed(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::UnknownReviewer => f.write_str("reviewer is not listed in [reviewers.keys]"),
            Rejection::WrongKey { signer: Some(signer) } => {
                write!(f, "signed with {signer}'s key, not this reviewer's")
            }
            Rejection::WrongKey { signer: None } => {
                f.write_str("signed with a key that is not listed for this reviewer")
            }
            Rejection::WrongNamespace(ns) => {
                write!(f, "signed in namespace {ns:?}, expected {NAMESPACE:?}")
            }
            Rejection::ContentChanged => {
                f.write_str("signature does not match the post (edited after signing?)")
            }
            Rejection::Duplicate => f.write_str("this reviewer has already approved"),
            Rejection::SelfApproval => f.write_str("the author cannot approve their own post"),
            Rejection::Malformed(why) => write!(f, "malformed signature: {why}"),
        }
    }
}

impl std::error::Error for Rejection {}

/// A reviewer whose approval counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub reviewer: String,
}

/// The result of checking every approval on a post.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewOutcome {
    /// Distinct reviewers whose approvals count, in file order.
    pub valid: Vec<String>,
    /// `(approval index, reviewer as written, why)` for every approval that does not count.
    pub rejected: Vec<(usize, String, Rejection)>,
}

/// Lower-cases the first character of a library error, to match gate's message style.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Parses SSHSIG armour leniently about layout, strictly about content.
///
/// Post files are hand-edited TOML, so the armour may carry indentation, CRLF line endings or
/// surrounding blank lines; those are stripped (base64 never contains whitespace). Everything
/// else is left to the strict PEM and SSHSIG decoders.
fn parse_signature(armour: &str) -> Result<SshSig, Rejection> {
    let cleaned: Vec<&str> = armour
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if cleaned.is_empty() {
        return Err(Rejection::Malformed("empty signature".into()));
    }
    if cleaned.first() != Some(&"-----BEGIN SSH SIGNATURE-----") {
        return Err(Rejection::Malformed(
            "missing -----BEGIN SSH SIGNATURE----- line".into(),
        ));
    }
    if cleaned.last() != Some(&"-----END SSH SIGNATURE-----") {
        return Err(Rejection::Malformed(
            "missing -----END SSH SIGNATURE----- line (truncated?)".into(),
        ));
    }
    let mut pem = cleaned.join("\n");
    pem.push('\n');
    let sig = SshSig::from_pem(pem.as_bytes())
        .map_err(|e| Rejection::Malformed(lowercase_first(&e.to_string())))?;
    // Only ed25519 keys can be listed, so anything else can never count; saying "unsupported
    // algorithm" is more helpful than "wrong key". Checking the signature blob's algorithm as
    // well as the key's catches a crafted signature whose two halves disagree.
    let key_alg = sig.public_key().algorithm();
    if key_alg != Algorithm::Ed25519 {
        return Err(Rejection::Malformed(format!(
            "unsupported algorithm {} (only ssh-ed25519)",
            key_alg.as_str()
        )));
    }
    if sig.algorithm() != Algorithm::Ed25519 {
        return Err(Rejection::Malformed(format!(
            "unsupported signature algorithm {} (only ssh-ed25519)",
            sig.algorithm().as_str()
        )));
    }
    Ok(sig)
}

/// Checks one approval up to (not including) the per-post bookkeeping of duplicates and
/// self-approval; returns the signing key's data on success.
fn check_signature(
    keys: &[(String, PublicKey)],
    message: &[u8],
    approval: &Approval,
) -> Result<ssh_key::public::KeyData, Rejection> {
    let sig = parse_signature(&approval.signature)?;
    if sig.namespace() != NAMESPACE {
        return Err(Rejection::WrongNamespace(sig.namespace().to_string()));
    }
    let mut named = keys
        .iter()
        .filter(|(name, _)| *name == approval.reviewer)
        .peekable();
    if named.peek().is_none() {
        return Err(Rejection::UnknownReviewer);
    }
    let Some((_, key)) = named.find(|(_, key)| key.key_data() == sig.public_key()) else {
        let signer = keys
            .iter()
            .find(|(_, key)| key.key_data() == sig.public_key())
            .map(|(name, _)| name.clone());
        return Err(Rejection::WrongKey { signer });
    };
    key.verify(NAMESPACE, message, &sig)
        .map_err(|_| Rejection::ContentChanged)?;
    Ok(sig.public_key().clone())
}

/// Decides which approvals count.
///
/// `keys` are `(reviewer name, ed25519 public key)` from the policy's `[reviewers.keys]`;
/// `message` is [`digest_message`]'s output for the post as it is now. Checks, in order:
/// malformed → namespace → unknown reviewer → wrong key → signature over the message →
/// self-approval → duplicate. Each approval counts at most once per reviewer; a key that has
/// already counted for one reviewer is also a [`Rejection::Duplicate`] under another name (in
/// case a policy lists one key twice). The author comparison ignores case and surrounding
/// whitespace, erring towards refusing. Never panics, whatever the signature text.
pub fn verify_approvals(
    keys: &[(String, PublicKey)],
    author: Option<&str>,
    message: &[u8],
    approvals: &[Approval],
) -> ReviewOutcome {
    let author = author.map(|a| a.trim().to_lowercase());
    let mut outcome = ReviewOutcome::default();
    let mut counted_keys: Vec<ssh_key::public::KeyData> = Vec::new();
    for (index, approval) in approvals.iter().enumerate() {
        let verdict = check_signature(keys, message, approval).and_then(|key| {
            if author.as_deref() == Some(approval.reviewer.trim().to_lowercase().as_str()) {
                Err(Rejection::SelfApproval)
            } else if outcome.valid.contains(&approval.reviewer) || counted_keys.contains(&key) {
                Err(Rejection::Duplicate)
            } else {
                Ok(key)
            }
        });
        match verdict {
            Ok(key) => {
                counted_keys.push(key);
                outcome.valid.push(approval.reviewer.clone());
            }
            Err(why) => outcome
                .rejected
                .push((index, approval.reviewer.clone(), why)),
        }
    }
    outcome
}

/// Parses an OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
///
/// Only ed25519 is accepted: one algorithm keeps the policy simple and avoids weak RSA keys.
pub fn parse_public_key(line: &str) -> Result<PublicKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("empty public key".into());
    }
    let key = PublicKey::from_openssh(line).map_err(|e| {
        format!(
            "not an openssh public key line ({})",
            lowercase_first(&e.to_string())
        )
    })?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(format!(
            "only ssh-ed25519 keys are accepted, got {}",
            key.algorithm().as_str()
        ));
    }
    Ok(key)
}

/// Signs `message` in the [`NAMESPACE`], producing the same armour `ssh-keygen -Y sign` does
/// (SHA-512 message hash, LF line endings), ready to paste into `[[approvals]]`.
///
/// An encrypted key must be decrypted by the caller first, e.g.
/// `let key = key.decrypt(passphrase)?;` ([`PrivateKey::decrypt`]); this module never
/// prompts. Only ed25519 keys are accepted, since only those can be listed as reviewers.
pub fn sign(key: &PrivateKey, message: &[u8]) -> Result<String, String> {
    if key.is_encrypted() {
        return Err("private key is encrypted; decrypt it with its passphrase first".into());
    }
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(format!(
            "only ssh-ed25519 keys can sign approvals, got {}",
            key.algorithm().as_str()
        ));
    }
    let sig = key
        .sign(NAMESPACE, HashAlg::Sha512, message)
        .map_err(|e| format!("signing failed: {}", lowercase_first(&e.to_string())))?;
    sig.to_pem(LineEnding::LF)
        .map_err(|e| format!("encoding signature failed: {}", lowercase_first(&e.to_string())))
}

/// Which listed reviewer owns `key`, comparing key data only (comments are ignored, since the
/// same key may be pasted with different comments).
pub fn reviewer_for_key<'a>(keys: &'a [(String, PublicKey)], key: &PublicKey) -> Option<&'a str> {
    keys.iter()
        .find(|(_, listed)| listed.key_data() == key.key_data())
        .map(|(name, _)| name.as_str())
}
