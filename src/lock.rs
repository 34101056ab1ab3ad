//! Cross-process locks under the state folder. Refresh tokens are single-use, so only one
//! process may refresh an account's token at a time; and only one may send a delivery.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::error::{Error, io_reason};

/// An exclusive lock, held until dropped (the OS also releases it if the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock `name` (a file under `$GATE_HOME/locks/`), waiting up to `timeout` for
/// another process to release it.
pub fn acquire(env: &Env, name: &str, timeout: Duration) -> Result<Lock, Error> {
    let dir = crate::state::dir(env)?.join("locks");
    crate::state::create_dir(&dir)?;
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{safe}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Error::other(format!(
                "cannot open `{}`: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file, path }),
            Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::other(format!(
                    "another gate process has held `{}` for over {} s",
                    path.display(),
                    timeout.as_secs()
                ))
                .with_hint("wait for it to finish, or check for a hung `gate` process"));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::other(format!(
                    "cannot lock `{}`: {}",
                    path.display(),
                    io_reason(&e)
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::for_tests(dir.path());
        let first = acquire(&env, "brand@mastodon.example", Duration::from_secs(1)).unwrap();
        assert!(first.path.ends_with("locks/brand@mastodon.example.lock"));
        let err = acquire(&env, "brand@mastodon.example", Duration::from_millis(50)).unwrap_err();
        assert!(
            err.to_string().contains("another gate process has held"),
            "{err}"
        );
        drop(first);
        acquire(&env, "brand@mastodon.example", Duration::from_millis(50)).unwrap();
    }
}
