//! gate's local state under `$GATE_HOME` (or the XDG state folder): for now the machine's
//! freeze switch.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::error::{Error, io_reason};
use crate::evaluate::LocalFreeze;

const FREEZE_FILE: &str = "freeze.json";

#[derive(Debug, Serialize, Deserialize)]
struct FreezeRecord {
    reason: String,
    since: DateTime<Utc>,
    by: Option<String>,
}

/// The state folder; an error when neither `GATE_HOME`, `XDG_STATE_HOME` nor `HOME` is set.
pub fn dir(env: &Env) -> Result<PathBuf, Error> {
    env.state_dir().ok_or_else(|| {
        Error::other("cannot find a folder for gate's state")
            .with_hint("set `GATE_HOME` (or `XDG_STATE_HOME` or `HOME`) to an absolute path")
    })
}

/// The freeze in force on this machine, if any. A freeze file gate cannot read counts as a
/// freeze: when in doubt, do not post.
pub fn read_freeze(env: &Env) -> Result<Option<LocalFreeze>, Error> {
    let Some(dir) = env.state_dir() else {
        return Ok(None);
    };
    let path = dir.join(FREEZE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Ok(Some(LocalFreeze {
                reason: format!(
                    "the freeze file `{}` cannot be read ({})",
                    path.display(),
                    io_reason(&e)
                ),
                since: None,
                by: None,
            }));
        }
    };
    Ok(Some(match serde_json::from_str::<FreezeRecord>(&text) {
        Ok(record) => LocalFreeze {
            reason: record.reason,
            since: Some(record.since),
            by: record.by,
        },
        Err(_) => LocalFreeze {
            reason: format!("the freeze file `{}` is damaged", path.display()),
            since: None,
            by: None,
        },
    }))
}

/// `path` as a folder, created with its parents if missing.
pub fn create_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path).map_err(|e| {
        Error::other(format!(
            "cannot create `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
    })
}

/// Writes the freeze atomically (a temporary file renamed into place).
pub fn write_freeze(env: &Env, reason: &str, now: DateTime<Utc>) -> Result<PathBuf, Error> {
    let dir = dir(env)?;
    create_dir(&dir)?;
    let record = FreezeRecord {
        reason: reason.to_owned(),
        since: now,
        by: env
            .var("USER")
            .or_else(|| env.var("LOGNAME"))
            .map(str::to_owned),
    };
    let path = dir.join(FREEZE_FILE);
    let mut bytes = serde_json::to_vec_pretty(&record)
        .map_err(|e| Error::other(format!("cannot encode the freeze: {e}")))?;
    bytes.push(b'\n');
    write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Replaces `path` with `bytes` all at once: a temporary file in the same folder, synced, then
/// renamed over it, so a crash leaves the old file or the new one, never half of either. A
/// file that is replaced keeps its permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            tmp.as_file().set_permissions(meta.permissions())?;
        }
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|e| {
        Error::other(format!(
            "cannot write `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
    })
}

/// Removes the freeze; `false` when there was none.
pub fn remove_freeze(env: &Env) -> Result<bool, Error> {
    let path = dir(env)?.join(FREEZE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::other(format!(
            "cannot remove `{}`: {}",
            path.display(),
            io_reason(&e)
        ))),
    }
}
