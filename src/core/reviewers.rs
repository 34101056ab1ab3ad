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
pub fn push_field(out: &mut String, tag: &str, value: &str) {
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
    let mut out = accounts_block(accounts);
    push_content(&mut out, text, media);
    out
}

/// The message for a thread (SPEC §8): the same header and accounts as [`digest_message`],
/// then `thread <K>` and each item's `text` and `media` fields in order, exactly as a plain
/// post writes its one text and media:
///
/// ```text
/// gate-post-v1
/// accounts <N> ... (as above)
/// thread <K>                    K = number of items
/// text <len> / <text> / media <M> / ...   repeated K times, in file order
/// ```
///
/// A plain post's message has `text` where a thread's has `thread`, so no thread signs the
/// same as a plain post, and the lengths keep every item's text apart from the next.
pub fn thread_message(accounts: &[String], items: &[(&str, Vec<MediaDigest>)]) -> String {
    let mut out = accounts_block(accounts);
    out.push_str(&format!("thread {}\n", items.len()));
    for (text, media) in items {
        push_content(&mut out, text, media);
    }
    out
}

fn accounts_block(accounts: &[String]) -> String {
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
    out
}

fn push_content(out: &mut String, text: &str, media: &[MediaDigest]) {
    push_field(out, "text", &normalise_newlines(text));
    out.push_str(&format!("media {}\n", media.len()));
    for item in media {
        push_field(out, "sha256", &item.sha256_hex.to_ascii_lowercase());
        push_field(out, "alt", &normalise_newlines(&item.alt));
    }
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
            Rejection::WrongKey {
                signer: Some(signer),
            } => {
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

/// Lower-cases a library error, to match gate's message style.
fn lowercase(e: impl fmt::Display) -> String {
    e.to_string().to_lowercase()
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
    let sig = SshSig::from_pem(pem.as_bytes()).map_err(|e| Rejection::Malformed(lowercase(e)))?;
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
/// whitespace, and a key listed for the author is refused under any name, erring towards
/// refusing. Never panics, whatever the signature text.
pub fn verify_approvals(
    keys: &[(String, PublicKey)],
    author: Option<&str>,
    message: &[u8],
    approvals: &[Approval],
) -> ReviewOutcome {
    let mut outcome = ReviewOutcome::default();
    let mut counted_keys: Vec<ssh_key::public::KeyData> = Vec::new();
    for (index, approval) in approvals.iter().enumerate() {
        let verdict = check_signature(keys, message, approval).and_then(|key| {
            if is_author(keys, author, &approval.reviewer, &key) {
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

/// Whether the one signing as `reviewer` with `key` is the post's `author`: the same name
/// (case and surrounding whitespace ignored), or a key listed for the author under any name
/// (her key under a second name is still her). `gate approve` refuses to sign and the check
/// of approvals refuses to count by this one rule.
pub fn is_author(
    keys: &[(String, PublicKey)],
    author: Option<&str>,
    reviewer: &str,
    key: &ssh_key::public::KeyData,
) -> bool {
    let Some(author) = author.map(|a| a.trim().to_lowercase()) else {
        return false;
    };
    let same = |name: &str| name.trim().to_lowercase() == author;
    same(reviewer)
        || keys
            .iter()
            .any(|(name, listed)| same(name) && listed.key_data() == key)
}

/// Parses an OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
///
/// Only ed25519 is accepted: one algorithm keeps the policy simple and avoids weak RSA keys.
pub fn parse_public_key(line: &str) -> Result<PublicKey, String> {
    let line = line.trim();
    if line.is_empty() {
        return Err("empty public key".into());
    }
    // The library's error detail ("invalid Base64 length") helps nobody fix a policy file;
    // the expected shape does.
    let key = PublicKey::from_openssh(line).map_err(
        |_| "not an openssh public key line (expected \"ssh-ed25519 <base64> [comment]\")",
    )?;
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
        .map_err(|e| format!("signing failed: {}", lowercase(e)))?;
    sig.to_pem(LineEnding::LF)
        .map_err(|e| format!("encoding signature failed: {}", lowercase(e)))
}

/// Which listed reviewer owns `key`, comparing key data only (comments are ignored, since the
/// same key may be pasted with different comments).
pub fn reviewer_for_key<'a>(keys: &'a [(String, PublicKey)], key: &PublicKey) -> Option<&'a str> {
    keys.iter()
        .find(|(_, listed)| listed.key_data() == key.key_data())
        .map(|(name, _)| name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    // ---------- digest_message ----------

    fn accounts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn sample_media() -> Vec<MediaDigest> {
        vec![
            MediaDigest::from_bytes(b"abc", "Screenshot of the release notes"),
            MediaDigest::from_bytes(b"", ""),
        ]
    }

    fn sample_message() -> String {
        digest_message(
            &accounts(&["brand-bsky", "brand"]),
            "Our new release is out today.\n",
            &sample_media(),
        )
    }

    #[test]
    fn digest_golden() {
        let expected = "gate-post-v1\n\
accounts 2\n\
account 5\n\
brand\n\
account 10\n\
brand-bsky\n\
text 30\n\
Our new release is out today.\n\
\n\
media 2\n\
sha256 64\n\
ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
alt 31\n\
Screenshot of the release notes\n\
sha256 64\n\
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
alt 0\n\
\n";
        assert_eq!(sample_message(), expected);
    }

    #[test]
    fn digest_without_media_or_accounts_still_ends_with_newline() {
        assert_eq!(
            digest_message(&[], "", &[]),
            "gate-post-v1\naccounts 0\ntext 0\n\nmedia 0\n"
        );
    }

    #[test]
    fn digest_normalises_line_endings() {
        let lf = digest_message(&accounts(&["brand"]), "one\ntwo\n\nthree", &[]);
        let crlf = digest_message(&accounts(&["brand"]), "one\r\ntwo\r\n\r\nthree", &[]);
        let cr = digest_message(&accounts(&["brand"]), "one\rtwo\r\rthree", &[]);
        assert_eq!(lf, crlf);
        assert_eq!(lf, cr);
        let alt_lf = vec![MediaDigest::from_bytes(b"x", "line one\nline two")];
        let alt_crlf = vec![MediaDigest::from_bytes(b"x", "line one\r\nline two")];
        assert_eq!(
            digest_message(&[], "t", &alt_lf),
            digest_message(&[], "t", &alt_crlf)
        );
    }

    #[test]
    fn digest_ignores_account_order_and_duplicates_and_hash_case() {
        let a = digest_message(&accounts(&["brand", "brand-bsky"]), "t", &sample_media());
        let b = digest_message(
            &accounts(&["brand-bsky", "brand", "brand"]),
            "t",
            &sample_media(),
        );
        assert_eq!(a, b);
        let mut upper = sample_media();
        upper[0].sha256_hex = upper[0].sha256_hex.to_ascii_uppercase();
        assert_eq!(
            a,
            digest_message(&accounts(&["brand", "brand-bsky"]), "t", &upper)
        );
    }

    #[test]
    fn digest_changes_with_every_field() {
        let base = sample_message();
        let accts = accounts(&["brand-bsky", "brand"]);
        let text = "Our new release is out today.\n";
        let media_with = |edit: &dyn Fn(&mut Vec<MediaDigest>)| {
            let mut m = sample_media();
            edit(&mut m);
            digest_message(&accts, text, &m)
        };
        let variants = [
            // text: an edit, a trailing space, a dropped final newline
            digest_message(
                &accts,
                "Our new release is out tomorrow.\n",
                &sample_media(),
            ),
            digest_message(&accts, "Our new release is out today. \n", &sample_media()),
            digest_message(&accts, "Our new release is out today.", &sample_media()),
            // accounts: one removed, one added, one renamed
            digest_message(&accounts(&["brand"]), text, &sample_media()),
            digest_message(
                &accounts(&["brand", "brand-bsky", "x"]),
                text,
                &sample_media(),
            ),
            digest_message(
                &accounts(&["brand", "brand-mastodon"]),
                text,
                &sample_media(),
            ),
            // media: an alt text (two ways), a hash, the order, one dropped, one added
            media_with(&|m| m[0].alt = "Screenshot of the release note".into()),
            media_with(&|m| m[1].alt = "Empty".into()),
            media_with(&|m| m[0] = MediaDigest::from_bytes(b"abd", m[0].alt.clone())),
            media_with(&|m| m.reverse()),
            media_with(&|m| {
                m.pop();
            }),
            media_with(&|m| m.push(MediaDigest::from_bytes(b"more", "more"))),
        ];
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(v, &base, "variant {i} did not change the message");
        }
        for i in 0..variants.len() {
            for j in i + 1..variants.len() {
                assert_ne!(variants[i], variants[j], "variants {i} and {j} collide");
            }
        }
    }

    /// A reader for the format, used to show it is unambiguous: every message parses back into
    /// exactly the (normalised) fields it was built from, so two different posts cannot share a
    /// message.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        accounts: Vec<String>,
        text: String,
        media: Vec<(String, String)>,
    }

    fn parse_message(msg: &str) -> Parsed {
        fn line<'a>(rest: &mut &'a str) -> &'a str {
            let end = rest.find('\n').expect("line");
            let l = &rest[..end];
            *rest = &rest[end + 1..];
            l
        }
        fn count(rest: &mut &str, tag: &str) -> usize {
            let l = line(rest);
            let (t, n) = l.split_once(' ').expect("tag and number");
            assert_eq!(t, tag);
            n.parse().expect("number")
        }
        fn field(rest: &mut &str, tag: &str) -> String {
            let len = count(rest, tag);
            let value = &rest[..len];
            assert_eq!(&rest[len..len + 1], "\n");
            *rest = &rest[len + 1..];
            value.to_string()
        }
        let mut rest = msg;
        assert_eq!(line(&mut rest), FORMAT_VERSION);
        let n = count(&mut rest, "accounts");
        let accounts = (0..n).map(|_| field(&mut rest, "account")).collect();
        let text = field(&mut rest, "text");
        let m = count(&mut rest, "media");
        let media = (0..m)
            .map(|_| (field(&mut rest, "sha256"), field(&mut rest, "alt")))
            .collect();
        assert!(rest.is_empty(), "trailing bytes: {rest:?}");
        Parsed {
            accounts,
            text,
            media,
        }
    }

    #[test]
    fn text_that_looks_like_field_headers_cannot_collide() {
        let hash = sha256_hex(b"abc");
        // The text of one post spells out, byte for byte, the tail of another post's message.
        let forged_tail = format!("\nmedia 1\nsha256 64\n{hash}\nalt 3\nimg");
        let honest = digest_message(
            &accounts(&["brand"]),
            "hi",
            &[MediaDigest {
                sha256_hex: hash.clone(),
                alt: "img".into(),
            }],
        );
        let forged = digest_message(&accounts(&["brand"]), &format!("hi{forged_tail}"), &[]);
        assert_ne!(honest, forged);
        assert_eq!(parse_message(&forged).text, format!("hi{forged_tail}"));
        assert!(parse_message(&forged).media.is_empty());

        // An account name containing a newline and a header is still one account.
        let two = digest_message(&accounts(&["a", "b"]), "t", &[]);
        let one = digest_message(&accounts(&["a\naccount 1\nb"]), "t", &[]);
        assert_ne!(two, one);
        assert_eq!(
            parse_message(&one).accounts,
            vec!["a\naccount 1\nb".to_string()]
        );

        // Alt text that mimics a second media item stays alt text.
        let alt = format!("x\nsha256 64\n{hash}\nalt 1\ny");
        let one_item = digest_message(
            &[],
            "t",
            &[MediaDigest {
                sha256_hex: hash.clone(),
                alt: alt.clone(),
            }],
        );
        let parsed = parse_message(&one_item);
        assert_eq!(parsed.media, vec![(hash.clone(), alt)]);
        // Text that mimics the header line itself.
        let sneaky = digest_message(&[], "gate-post-v1\naccounts 0\n", &[]);
        assert_eq!(parse_message(&sneaky).text, "gate-post-v1\naccounts 0\n");
    }

    #[test]
    fn golden_message_parses_back() {
        let parsed = parse_message(&sample_message());
        assert_eq!(parsed.accounts, accounts(&["brand", "brand-bsky"]));
        assert_eq!(parsed.text, "Our new release is out today.\n");
        assert_eq!(parsed.media.len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn digest_round_trips(
            accts in proptest::collection::vec(".*", 0..4),
            text in ".*",
            media in proptest::collection::vec(("[0-9a-f]{64}", ".*"), 0..4),
        ) {
            let items: Vec<MediaDigest> = media
                .iter()
                .map(|(h, a)| MediaDigest { sha256_hex: h.clone(), alt: a.clone() })
                .collect();
            let msg = digest_message(&accts, &text, &items);
            let parsed = parse_message(&msg);
            let mut want_accounts = accts.clone();
            want_accounts.sort();
            want_accounts.dedup();
            proptest::prop_assert_eq!(parsed.accounts, want_accounts);
            proptest::prop_assert_eq!(parsed.text, normalise_newlines(&text));
            let want_media: Vec<(String, String)> =
                media.iter().map(|(h, a)| (h.clone(), normalise_newlines(a))).collect();
            proptest::prop_assert_eq!(parsed.media, want_media);
        }

        #[test]
        fn arbitrary_signature_text_never_panics_or_counts(sig in "(?s).{0,300}") {
            proptest::prop_assert!(fixed_check(&sig).valid.is_empty());
        }

        #[test]
        fn arbitrary_armoured_base64_never_panics_or_counts(
            body in "(U1NIU0lH)?[A-Za-z0-9+/]{0,400}={0,2}",
        ) {
            // Optionally starts with the SSHSIG magic, so the decoder gets past the preamble.
            let lines: Vec<String> = body
                .as_bytes()
                .chunks(70)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let armour = format!(
                "-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n",
                lines.join("\n")
            );
            proptest::prop_assert!(fixed_check(&armour).valid.is_empty());
        }
    }

    /// Checks one approval against a fixed listed key (no ssh-keygen needed per proptest case).
    fn fixed_check(signature: &str) -> ReviewOutcome {
        const LINE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH/fVGdMSRVwEZoy3f0c0+cS+X+3GPK0AnRBs/Nq3JuH fixed";
        let keys = vec![(
            "carol".to_string(),
            parse_public_key(LINE).expect("fixed key"),
        )];
        let approvals = [Approval {
            reviewer: "carol".into(),
            signature: signature.to_string(),
        }];
        verify_approvals(&keys, None, b"m", &approvals)
    }

    // ---------- OpenSSH interop and approvals ----------

    /// Runs ssh-keygen; these tests need OpenSSH and fail loudly without it rather than skip.
    fn ssh_keygen(args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write as _;
        let mut child = Command::new("ssh-keygen")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("ssh-keygen is required for these tests (install openssh-client): {e}")
            });
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write to ssh-keygen");
        child.wait_with_output().expect("ssh-keygen output")
    }

    fn ssh_keygen_ok(args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = ssh_keygen(args, stdin);
        assert!(
            out.status.success(),
            "ssh-keygen {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    struct Key {
        path: PathBuf,
        private: PrivateKey,
        public_line: String,
        public: PublicKey,
    }

    fn gen_key(dir: &Path, name: &str, kind: &str, passphrase: &str) -> Key {
        let path = dir.join(name);
        let p = path.to_str().expect("utf-8 path");
        let mut args = vec!["-q", "-t", kind, "-N", passphrase, "-C", name, "-f", p];
        if kind == "rsa" {
            args.extend(["-b", "1024"]);
        }
        ssh_keygen_ok(&args, b"");
        let public_line = std::fs::read_to_string(path.with_extension("pub")).expect("pub");
        let private = PrivateKey::read_openssh_file(&path).expect("private key");
        let public = PublicKey::from_openssh(public_line.trim()).expect("public key");
        Key {
            path,
            private,
            public_line,
            public,
        }
    }

    /// carol, dave and erin are listed reviewers (erin writes the post); mallory is not listed.
    struct Team {
        dir: tempfile::TempDir,
        keys: Vec<(String, PublicKey)>,
        carol: Key,
        dave: Key,
        erin: Key,
        mallory: Key,
    }

    impl Team {
        fn new() -> Team {
            let dir = tempfile::tempdir().expect("tempdir");
            let carol = gen_key(dir.path(), "carol", "ed25519", "");
            let dave = gen_key(dir.path(), "dave", "ed25519", "");
            let erin = gen_key(dir.path(), "erin", "ed25519", "");
            let mallory = gen_key(dir.path(), "mallory", "ed25519", "");
            let keys = vec![
                (
                    "carol".to_string(),
                    parse_public_key(&carol.public_line).expect("carol"),
                ),
                (
                    "dave".to_string(),
                    parse_public_key(&dave.public_line).expect("dave"),
                ),
                (
                    "erin".to_string(),
                    parse_public_key(&erin.public_line).expect("erin"),
                ),
            ];
            Team {
                dir,
                keys,
                carol,
                dave,
                erin,
                mallory,
            }
        }

        fn check(&self, message: &str, approvals: &[(&str, &str)]) -> ReviewOutcome {
            let approvals: Vec<Approval> = approvals
                .iter()
                .map(|(r, s)| Approval {
                    reviewer: r.to_string(),
                    signature: s.to_string(),
                })
                .collect();
            verify_approvals(&self.keys, Some("erin"), message.as_bytes(), &approvals)
        }
    }

    fn keygen_sign(key: &Key, namespace: &str, message: &[u8]) -> String {
        let p = key.path.to_str().expect("utf-8 path");
        let out = ssh_keygen_ok(&["-Y", "sign", "-f", p, "-n", namespace], message);
        String::from_utf8(out).expect("armour is ascii")
    }

    fn rejections(out: &ReviewOutcome) -> Vec<Rejection> {
        out.rejected.iter().map(|(_, _, r)| r.clone()).collect()
    }

    fn sole_rejection(out: &ReviewOutcome) -> Rejection {
        assert!(out.valid.is_empty(), "unexpectedly valid: {:?}", out.valid);
        assert_eq!(out.rejected.len(), 1, "{:?}", out.rejected);
        out.rejected[0].2.clone()
    }

    #[test]
    fn ssh_keygen_signature_of_digest_verifies() {
        let team = Team::new();
        let msg = sample_message();
        let sig = keygen_sign(&team.carol, NAMESPACE, msg.as_bytes());
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"));
        let out = team.check(&msg, &[("carol", &sig)]);
        assert_eq!(out.valid, vec!["carol"]);
        assert!(out.rejected.is_empty());
    }

    #[test]
    fn trailing_newline_is_part_of_what_is_signed() {
        let team = Team::new();
        let msg = sample_message();
        let sig = keygen_sign(&team.carol, NAMESPACE, msg.trim_end().as_bytes());
        let out = team.check(&msg, &[("carol", &sig)]);
        assert_eq!(sole_rejection(&out), Rejection::ContentChanged);
    }

    #[test]
    fn sign_output_verifies_with_ssh_keygen() {
        let team = Team::new();
        let msg = sample_message();
        let sig = sign(&team.carol.private, msg.as_bytes()).expect("sign");
        let sig_path = team.dir.path().join("msg.sig");
        std::fs::write(&sig_path, &sig).expect("write sig");
        let allowed = team.dir.path().join("allowed_signers");
        std::fs::write(
            &allowed,
            format!("carol namespaces=\"gate-post\" {}", team.carol.public_line),
        )
        .expect("write allowed_signers");
        let (a, s) = (allowed.to_str().unwrap(), sig_path.to_str().unwrap());
        let verify = [
            "-Y", "verify", "-f", a, "-I", "carol", "-n", NAMESPACE, "-s", s,
        ];
        let out = ssh_keygen(&verify, msg.as_bytes());
        assert!(
            out.status.success(),
            "ssh-keygen rejected sign() output: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // ...and ssh-keygen is really checking: an edited message fails.
        let edited = msg.replace("today", "tonight");
        assert!(!ssh_keygen(&verify, edited.as_bytes()).status.success());
        // sign() output also counts in gate itself.
        assert_eq!(team.check(&msg, &[("carol", &sig)]).valid, vec!["carol"]);
    }

    #[test]
    fn two_reviewers_count_in_file_order() {
        let team = Team::new();
        let msg = sample_message();
        let d = sign(&team.dave.private, msg.as_bytes()).unwrap();
        let c = keygen_sign(&team.carol, NAMESPACE, msg.as_bytes());
        let out = team.check(&msg, &[("dave", &d), ("carol", &c)]);
        assert_eq!(out.valid, vec!["dave", "carol"]);
        assert!(out.rejected.is_empty());
    }

    #[test]
    fn same_reviewer_twice_counts_once() {
        let team = Team::new();
        let msg = sample_message();
        let a = sign(&team.carol.private, msg.as_bytes()).unwrap();
        let b = keygen_sign(&team.carol, NAMESPACE, msg.as_bytes());
        let out = team.check(&msg, &[("carol", &a), ("carol", &b)]);
        assert_eq!(out.valid, vec!["carol"]);
        assert_eq!(
            out.rejected,
            vec![(1, "carol".to_string(), Rejection::Duplicate)]
        );
    }

    #[test]
    fn one_key_listed_under_two_names_counts_once() {
        let team = Team::new();
        let mut keys = team.keys.clone();
        keys.push(("carol-alt".to_string(), team.carol.public.clone()));
        let msg = sample_message();
        let sig = sign(&team.carol.private, msg.as_bytes()).unwrap();
        let approvals = [
            Approval {
                reviewer: "carol".into(),
                signature: sig.clone(),
            },
            Approval {
                reviewer: "carol-alt".into(),
                signature: sig,
            },
        ];
        let out = verify_approvals(&keys, None, msg.as_bytes(), &approvals);
        assert_eq!(out.valid, vec!["carol"]);
        assert_eq!(rejections(&out), vec![Rejection::Duplicate]);
    }

    #[test]
    fn unlisted_key_is_rejected() {
        let team = Team::new();
        let msg = sample_message();
        let sig = sign(&team.mallory.private, msg.as_bytes()).unwrap();
        // under an unlisted name
        let out = team.check(&msg, &[("mallory", &sig)]);
        assert_eq!(sole_rejection(&out), Rejection::UnknownReviewer);
        // under a listed reviewer's name
        let out = team.check(&msg, &[("carol", &sig)]);
        assert_eq!(sole_rejection(&out), Rejection::WrongKey { signer: None });
    }

    #[test]
    fn listed_key_under_another_reviewers_name_is_wrong_key() {
        let team = Team::new();
        let msg = sample_message();
        let sig = sign(&team.dave.private, msg.as_bytes()).unwrap();
        let out = team.check(&msg, &[("carol", &sig)]);
        assert_eq!(
            sole_rejection(&out),
            Rejection::WrongKey {
                signer: Some("dave".into())
            }
        );
        // The author can't launder her own approval through a colleague's name either.
        let sig = sign(&team.erin.private, msg.as_bytes()).unwrap();
        let out = team.check(&msg, &[("dave", &sig)]);
        assert_eq!(
            sole_rejection(&out),
            Rejection::WrongKey {
                signer: Some("erin".into())
            }
        );
    }

    #[test]
    fn wrong_namespace_is_rejected() {
        let team = Team::new();
        let msg = sample_message();
        let sig = keygen_sign(&team.carol, "file", msg.as_bytes());
        let out = team.check(&msg, &[("carol", &sig)]);
        assert_eq!(
            sole_rejection(&out),
            Rejection::WrongNamespace("file".into())
        );
        let sig = keygen_sign(&team.carol, "git", msg.as_bytes());
        let out = team.check(&msg, &[("carol", &sig)]);
        assert_eq!(
            sole_rejection(&out),
            Rejection::WrongNamespace("git".into())
        );
    }

    #[test]
    fn edits_after_signing_invalidate_the_approval() {
        let team = Team::new();
        let accts = accounts(&["brand-bsky", "brand"]);
        let text = "Our new release is out today.\n";
        let signed = sample_message();
        let sig = keygen_sign(&team.carol, NAMESPACE, signed.as_bytes());
        assert_eq!(team.check(&signed, &[("carol", &sig)]).valid, vec!["carol"]);

        let mut edits: Vec<(&str, String)> = Vec::new();
        edits.push((
            "text",
            digest_message(
                &accts,
                "Our new release is out tomorrow.\n",
                &sample_media(),
            ),
        ));
        let mut m = sample_media();
        m[0].alt = "A screenshot".into();
        edits.push(("alt text", digest_message(&accts, text, &m)));
        let mut m = sample_media();
        m[0] = MediaDigest::from_bytes(b"abc but different pixels", m[0].alt.clone());
        edits.push(("media bytes", digest_message(&accts, text, &m)));
        edits.push((
            "accounts",
            digest_message(&accounts(&["brand"]), text, &sample_media()),
        ));
        for (what, edited) in edits {
            let out = team.check(&edited, &[("carol", &sig)]);
            assert_eq!(sole_rejection(&out), Rejection::ContentChanged, "{what}");
        }
        // A CRLF re-save of the same text is not an edit.
        let crlf = digest_message(&accts, "Our new release is out today.\r\n", &sample_media());
        assert_eq!(team.check(&crlf, &[("carol", &sig)]).valid, vec!["carol"]);
    }

    #[test]
    fn authors_own_approval_does_not_count() {
        let team = Team::new();
        let msg = sample_message();
        let sig = keygen_sign(&team.erin, NAMESPACE, msg.as_bytes());
        let out = team.check(&msg, &[("erin", &sig)]);
        assert_eq!(sole_rejection(&out), Rejection::SelfApproval);
        // The comparison errs towards refusing: case and stray spaces in `author` don't help.
        let approvals = [Approval {
            reviewer: "erin".into(),
            signature: sig.clone(),
        }];
        let out = verify_approvals(&team.keys, Some(" Erin "), msg.as_bytes(), &approvals);
        assert_eq!(sole_rejection(&out), Rejection::SelfApproval);
        // Her key listed under a second name is still her.
        let mut keys = team.keys.clone();
        keys.push(("erin-work".to_string(), team.erin.public.clone()));
        let alias = [Approval {
            reviewer: "erin-work".into(),
            signature: sig.clone(),
        }];
        let out = verify_approvals(&keys, Some("erin"), msg.as_bytes(), &alias);
        assert_eq!(sole_rejection(&out), Rejection::SelfApproval);
        // Without an author, erin is an ordinary reviewer.
        let out = verify_approvals(&team.keys, None, msg.as_bytes(), &approvals);
        assert_eq!(out.valid, vec!["erin"]);
    }

    fn assert_malformed(team: &Team, msg: &str, sig: &str) -> String {
        match sole_rejection(&team.check(msg, &[("carol", sig)])) {
            Rejection::Malformed(why) => {
                assert!(!why.is_empty());
                why
            }
            other => panic!("expected Malformed for {sig:?}, got {other:?}"),
        }
    }

    #[test]
    fn truncated_and_garbage_signatures_are_malformed() {
        let team = Team::new();
        let msg = sample_message();
        let sig = keygen_sign(&team.carol, NAMESPACE, msg.as_bytes());
        let lines: Vec<&str> = sig.lines().collect();
        assert!(lines.len() >= 4, "{sig}");

        // cut off half way
        assert_malformed(&team, &msg, &sig[..sig.len() / 2]);
        // armour intact but a base64 line missing
        let mut short = lines.clone();
        short.remove(2);
        assert_malformed(&team, &msg, &short.join("\n"));
        // armour intact, base64 cut mid-line
        let mut cut = lines.clone();
        let last_b64 = cut.len() - 2;
        cut[last_b64] = &lines[last_b64][..lines[last_b64].len() / 2];
        assert_malformed(&team, &msg, &cut.join("\n"));
        // garbage
        for junk in [
            "",
            "   \n\n",
            "hello",
            "-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n",
            "-----BEGIN SSH SIGNATURE-----\n!!!not base64!!!\n-----END SSH SIGNATURE-----\n",
            "-----BEGIN SSH SIGNATURE-----\naGVsbG8gd29ybGQ=\n-----END SSH SIGNATURE-----\n",
            "-----BEGIN PGP SIGNATURE-----\naGVsbG8=\n-----END PGP SIGNATURE-----\n",
            "U1NIU0lHAAAAAQ==",
        ] {
            assert_malformed(&team, &msg, junk);
        }
    }

    #[test]
    fn layout_noise_from_hand_editing_is_tolerated() {
        let team = Team::new();
        let msg = sample_message();
        let sig = keygen_sign(&team.carol, NAMESPACE, msg.as_bytes());
        let indented: String = sig.lines().map(|l| format!("    {l}\r\n")).collect();
        let noisy = format!("\n\n{indented}\n  ");
        assert_eq!(team.check(&msg, &[("carol", &noisy)]).valid, vec!["carol"]);
    }

    #[test]
    fn rsa_signatures_are_malformed_not_wrong_key() {
        let team = Team::new();
        let rsa = gen_key(team.dir.path(), "rsa", "rsa", "");
        let msg = sample_message();
        let sig = keygen_sign(&rsa, NAMESPACE, msg.as_bytes());
        let why = assert_malformed(&team, &msg, &sig);
        assert!(why.contains("unsupported algorithm"), "{why}");
        // and rsa keys are refused for listing and for signing
        let err = parse_public_key(&rsa.public_line).unwrap_err();
        assert!(err.contains("only ssh-ed25519"), "{err}");
        assert!(sign(&rsa.private, msg.as_bytes()).is_err());
    }

    #[test]
    fn no_prefix_or_mutation_of_a_signature_panics() {
        let team = Team::new();
        let msg = sample_message();
        let sig = sign(&team.carol.private, msg.as_bytes()).unwrap();
        for end in 0..sig.len() {
            let out = team.check(&msg, &[("carol", &sig[..end])]);
            // a prefix missing only the final newline is still the whole signature
            if end < sig.len() - 1 {
                assert!(out.valid.is_empty(), "prefix of {end} bytes counted");
            }
        }
        let alphabet = b"AZaz09+/=";
        for i in 0..sig.len() {
            for &c in alphabet {
                let mut bytes = sig.clone().into_bytes();
                if bytes[i] == b'\n' || bytes[i] == c {
                    continue;
                }
                bytes[i] = c;
                let mutated = String::from_utf8(bytes).unwrap();
                let _ = team.check(&msg, &[("carol", &mutated)]);
            }
        }
    }

    #[test]
    fn outcome_reports_index_and_reviewer_as_written() {
        let team = Team::new();
        let msg = sample_message();
        let c = sign(&team.carol.private, msg.as_bytes()).unwrap();
        let out = team.check(&msg, &[("nobody", "junk"), ("carol", &c), ("Carol", &c)]);
        assert_eq!(out.valid, vec!["carol"]);
        assert_eq!(out.rejected.len(), 2);
        assert_eq!(out.rejected[0].0, 0);
        assert_eq!(out.rejected[0].1, "nobody");
        assert!(matches!(out.rejected[0].2, Rejection::Malformed(_)));
        assert_eq!(
            out.rejected[1],
            (2, "Carol".to_string(), Rejection::UnknownReviewer)
        );
    }

    #[test]
    fn encrypted_key_decrypts_and_signs() {
        let team = Team::new();
        let key = gen_key(team.dir.path(), "locked", "ed25519", "pass");
        assert!(key.private.is_encrypted());
        let msg = sample_message();
        let err = sign(&key.private, msg.as_bytes()).unwrap_err();
        assert!(err.contains("encrypted"), "{err}");
        assert!(key.private.decrypt("wrong").is_err());
        // This is how a caller unlocks a key: PrivateKey::decrypt with the passphrase.
        let unlocked = key.private.decrypt("pass").expect("decrypt");
        let sig = sign(&unlocked, msg.as_bytes()).expect("sign");
        let keys = vec![("frank".to_string(), key.public.clone())];
        let approvals = [Approval {
            reviewer: "frank".into(),
            signature: sig,
        }];
        let out = verify_approvals(&keys, Some("erin"), msg.as_bytes(), &approvals);
        assert_eq!(out.valid, vec!["frank"]);
    }

    #[test]
    fn parse_public_key_accepts_ed25519_lines_only() {
        let team = Team::new();
        let line = team.carol.public_line.trim();
        assert!(parse_public_key(line).is_ok());
        assert!(parse_public_key(&format!("  {line}  \n")).is_ok());
        let no_comment = line.rsplit_once(' ').unwrap().0;
        assert!(parse_public_key(no_comment).is_ok());
        for bad in [
            "",
            "   ",
            "ssh-ed25519",
            "ssh-ed25519 AAAA",
            "ssh-ed25519 not-base64!!",
            "carol ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB",
            "hello world",
        ] {
            let err = parse_public_key(bad).unwrap_err();
            assert!(!err.is_empty());
            assert_eq!(err, err.to_lowercase(), "error not lowercase: {err}");
        }
        // the key type label must match the encoded key
        let blob = no_comment.split_once(' ').unwrap().1;
        assert!(parse_public_key(&format!("ssh-rsa {blob}")).is_err());
    }

    #[test]
    fn reviewer_for_key_ignores_comments() {
        let team = Team::new();
        let recommented = format!(
            "{} someone@laptop",
            team.dave.public_line.trim().rsplit_once(' ').unwrap().0
        );
        let key = parse_public_key(&recommented).unwrap();
        assert_eq!(reviewer_for_key(&team.keys, &key), Some("dave"));
        assert_eq!(reviewer_for_key(&team.keys, &team.mallory.public), None);
    }

    #[test]
    fn rejection_messages_are_short_and_lowercase() {
        let all = [
            Rejection::UnknownReviewer,
            Rejection::WrongKey {
                signer: Some("dave".into()),
            },
            Rejection::WrongKey { signer: None },
            Rejection::WrongNamespace("file".into()),
            Rejection::ContentChanged,
            Rejection::Duplicate,
            Rejection::SelfApproval,
            Rejection::Malformed("empty signature".into()),
        ];
        for r in all {
            let s = r.to_string();
            assert!(s.len() < 80, "{s}");
            assert!(s.starts_with(|c: char| c.is_lowercase()), "{s}");
        }
    }
}
