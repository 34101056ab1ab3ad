//! The audit trail's anchor: the chain head (the last entry's seq and hash) kept outside the
//! store, in the OS keychain (one item per store), so that `gate log --verify` notices what a chain cannot show
//! by itself: a dropped or emptied audit table, a deleted or emptied journal, entries removed
//! from the end (with `sqlite_sequence` rewound to hide it).
//!
//! The anchor only moves forward and is written after the entry is committed, so it is a lower
//! bound: the trail must hold at least the anchored entry, with the anchored hash. A process
//! that dies between the commit and the anchor leaves the anchor one entry behind, which is
//! never a false alarm. Where no keychain is reachable there is no anchor, and `--verify` says
//! it checked the chain alone.

use std::path::Path;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::env::Env;
use crate::keychain::Keychain;

/// The chain head as anchored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// The keychain item for the journal at `path` (one per state folder).
pub fn journal_item(path: &Path) -> String {
    let path = path
        .parent()
        .and_then(|dir| dir.canonicalize().ok())
        .map_or_else(
            || path.to_path_buf(),
            |dir| dir.join(path.file_name().unwrap_or_default()),
        );
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    format!("audit-head-{}", crate::core::policy::hex(&digest[..12]))
}

/// The keychain, when one answers; `None` (no anchor) otherwise. Debug builds skip it when
/// `GATE_TEST_NO_ANCHOR` is set, for tests that count keychain items.
fn keychain(env: &Env) -> Option<Keychain> {
    #[cfg(debug_assertions)]
    if env.var("GATE_TEST_NO_ANCHOR").is_some() {
        return None;
    }
    Keychain::open(env).ok()
}

/// Moves the anchor kept in the keychain item `item` to an audit entry just committed.
pub fn advance_to(env: &Env, item: &str, entry: &crate::audit::Stored) {
    advance(
        env,
        item,
        &Head {
            seq: entry.seq,
            hash: entry.hash.clone(),
        },
    );
}

/// Moves the anchor kept in `item` forward to `head` (best effort: an unreachable keychain
/// leaves the trail unanchored, never a failed command).
pub fn advance(env: &Env, item: &str, head: &Head) {
    let Some(keychain) = keychain(env) else {
        return;
    };
    if let Ok(Some(current)) = read_with(&keychain, item)
        && current.seq >= head.seq
    {
        return;
    }
    if let Ok(text) = serde_json::to_string(head) {
        let _ = keychain.set(item, &SecretString::from(text));
    }
}

fn read_with(keychain: &Keychain, user: &str) -> Result<Option<Head>, String> {
    match keychain.get(user) {
        Ok(Some(secret)) => serde_json::from_str(secret.expose_secret())
            .map(Some)
            .map_err(|_| "the anchor in the keychain is damaged".to_owned()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// What the keychain item `item` holds.
pub enum Found {
    Head(Head),
    /// The keychain answered: no entry was ever anchored for this state folder.
    None,
    /// No keychain is reachable (or it failed): the chain alone can be checked.
    Unreachable(String),
}

pub fn read(env: &Env, item: &str) -> Found {
    let Some(keychain) = keychain(env) else {
        return Found::Unreachable("no keychain is reachable".to_owned());
    };
    match read_with(&keychain, item) {
        Ok(Some(head)) => Found::Head(head),
        Ok(None) => Found::None,
        Err(why) => Found::Unreachable(why),
    }
}
