//! Cross-process locks. Only one process may send a delivery (a lock under
//! `$GATE_HOME/locks/`), and only one may refresh a keychain item's token: refresh tokens are
//! single-use and the keychain is the user's, shared by every `GATE_HOME`, so that lock lives
//! in a per-user folder ([`user_dir`]) and is named for the item (service + user).
//!
//! A lock is an `flock` on a file that is never removed. Should something remove or replace
//! it anyway (a temp-folder cleaner, a person), a process that waited on the old file would
//! hold a lock nobody else can see: after taking the lock, the open file and the path are
//! compared (device and inode) and, when they differ, the lock is taken again on the path.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::Digest as _;

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
    acquire_in(&dir, &file_name(name), timeout)
}

/// Takes the lock of keychain item `service` + `user`, the one every process of this user
/// refreshes that item's token under, whatever its `GATE_HOME`.
pub fn acquire_item(
    env: &Env,
    service: &str,
    user: &str,
    timeout: Duration,
) -> Result<Lock, Error> {
    let dir = user_dir(env)?;
    acquire_in(&dir, &item_file_name(service, user), timeout)
}

/// A lock name as a file name: unusual characters become `_`.
fn file_name(name: &str) -> String {
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
    format!("{safe}.lock")
}

/// The lock file of a keychain item: readable, plus a digest of the exact service and user
/// so that two users that read alike (`a:b`, `a_b`) never share a lock.
fn item_file_name(service: &str, user: &str) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(service.as_bytes());
    hash.update([0]);
    hash.update(user.as_bytes());
    let digest = hash.finalize();
    let short: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    file_name(&format!("item-{service}-{user}-{short}"))
}

/// The user's own lock folder, shared by every `GATE_HOME`: `$XDG_RUNTIME_DIR/gate/locks`,
/// else `/run/user/UID/gate/locks` when that runtime folder is the user's, else
/// `$TMPDIR/gate-UID/locks` (`/tmp` without `TMPDIR`). The gate folder is made 0700; one
/// owned by another user, or open to others, is refused, since whoever controls it could
/// hold or remove the user's locks.
pub fn user_dir(env: &Env) -> Result<PathBuf, Error> {
    let uid = rustix::process::getuid().as_raw();
    let runtime = env
        .var("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            let run = PathBuf::from(format!("/run/user/{uid}"));
            std::fs::metadata(&run)
                .ok()
                .filter(|m| m.is_dir() && m.uid() == uid)
                .map(|_| run)
        });
    let base = match runtime {
        Some(runtime) => runtime.join("gate"),
        None => {
            let tmp = env
                .var("TMPDIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            tmp.join(format!("gate-{uid}"))
        }
    };
    private_dir(&base, uid)?;
    let locks = base.join("locks");
    private_dir(&locks, uid)?;
    crate::state::refuse_network_fs(env, &locks)?;
    Ok(locks)
}

/// Creates `dir` (0700) if missing, and checks it is a folder of `uid`'s that nobody else
/// may write to.
fn private_dir(dir: &Path, uid: u32) -> Result<(), Error> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::state::create_dir(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                Error::other(format!(
                    "cannot make `{}` private: {}",
                    dir.display(),
                    io_reason(&e)
                ))
            })?;
        }
        Err(e) => {
            return Err(Error::other(format!(
                "cannot create `{}`: {}",
                dir.display(),
                io_reason(&e)
            )));
        }
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        Error::other(format!(
            "cannot read `{}`: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    check_private(dir, meta.is_dir(), meta.uid(), meta.mode(), uid)
}

/// The rule of [`private_dir`] on what `stat` said.
fn check_private(dir: &Path, is_dir: bool, owner: u32, mode: u32, uid: u32) -> Result<(), Error> {
    let shown = dir.display();
    if !is_dir {
        return Err(Error::other(format!(
            "`{shown}` is not a folder; gate keeps its locks there"
        ))
        .with_hint(format!("remove `{shown}` and run gate again")));
    }
    if owner != uid {
        return Err(Error::other(format!(
            "the lock folder `{shown}` belongs to user {owner}, not to you (user {uid})"
        ))
        .with_hint(
            "someone else made it; remove it, or set `XDG_RUNTIME_DIR` (or `TMPDIR`) to a folder of your own",
        ));
    }
    if mode & 0o077 != 0 {
        return Err(Error::other(format!(
            "the lock folder `{shown}` is open to other users (mode {:o})",
            mode & 0o777
        ))
        .with_hint(format!("run `chmod 700 {shown}`")));
    }
    Ok(())
}

/// Takes the lock file `file` in `dir`, waiting up to `timeout`.
fn acquire_in(dir: &Path, file: &str, timeout: Duration) -> Result<Lock, Error> {
    let path = dir.join(file);
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let file = open(&path)?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
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
        if is_at_path(&file, &path)? {
            // A file in use stays young, so an age-based temp cleaner leaves it alone.
            let _ = file.set_modified(std::time::SystemTime::now());
            return Ok(Lock { _file: file, path });
        }
        // Removed or replaced while we waited: this lock guards nothing. Take the path's.
    }
}

fn open(path: &Path) -> Result<File, Error> {
    crate::state::private_file(path)?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Error::other(format!(
                "cannot open `{}`: {}",
                path.display(),
                io_reason(&e)
            ))
        })
}

/// Whether the open `file` is still the one at `path` (same device and inode).
fn is_at_path(file: &File, path: &Path) -> Result<bool, Error> {
    let held = file.metadata().map_err(|e| {
        Error::other(format!(
            "cannot read `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
    })?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::other(format!(
            "cannot read `{}`: {}",
            path.display(),
            io_reason(&e)
        ))),
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

    /// One handle holds the lock and another waits on the same file; the file is removed. When
    /// the holder lets go, the waiter gets the old file's lock, which nobody opening the path
    /// can see: it must notice and lock the path's file instead, so that a third process that
    /// opens the path now waits for it.
    #[test]
    fn a_lock_removed_while_waited_on_is_taken_again_on_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().to_path_buf();
        let first = acquire_in(&locks, "x.lock", Duration::from_secs(1)).unwrap();
        let waiter = {
            let locks = locks.clone();
            std::thread::spawn(move || acquire_in(&locks, "x.lock", Duration::from_secs(10)))
        };
        // The waiter has opened the file and is polling its lock.
        std::thread::sleep(Duration::from_millis(200));
        std::fs::remove_file(locks.join("x.lock")).unwrap();
        drop(first);
        let second = waiter.join().unwrap().unwrap();
        let third = acquire_in(&locks, "x.lock", Duration::from_millis(300));
        assert!(
            third.is_err(),
            "a process that opened the path got in while another held the lock"
        );
        drop(second);
        acquire_in(&locks, "x.lock", Duration::from_millis(300)).unwrap();
    }

    #[test]
    fn a_replaced_lock_file_is_noticed_too() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().to_path_buf();
        let first = acquire_in(&locks, "x.lock", Duration::from_secs(1)).unwrap();
        let waiter = {
            let locks = locks.clone();
            std::thread::spawn(move || acquire_in(&locks, "x.lock", Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(200));
        std::fs::write(locks.join("y"), "").unwrap();
        std::fs::rename(locks.join("y"), locks.join("x.lock")).unwrap();
        drop(first);
        let second = waiter.join().unwrap().unwrap();
        assert!(acquire_in(&locks, "x.lock", Duration::from_millis(300)).is_err());
        drop(second);
    }

    #[test]
    fn item_locks_are_named_for_service_and_user() {
        let a = item_file_name("gate", "team@127.0.0.1:8080");
        assert!(a.starts_with("item-gate-team@127.0.0.1_8080-"), "{a}");
        assert!(a.ends_with(".lock"));
        assert_ne!(a, item_file_name("gate", "team@127.0.0.1_8080"));
        assert_ne!(a, item_file_name("other", "team@127.0.0.1:8080"));
        assert_eq!(a, item_file_name("gate", "team@127.0.0.1:8080"));
    }

    #[test]
    fn the_user_folder_is_shared_by_every_gate_home_and_private() {
        let runtime = tempfile::tempdir().unwrap();
        let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let dirs: Vec<PathBuf> = homes
            .iter()
            .map(|h| {
                let mut env = Env::for_tests(h.path());
                env.set_var("XDG_RUNTIME_DIR", &runtime.path().display().to_string());
                user_dir(&env).unwrap()
            })
            .collect();
        assert_eq!(dirs[0], dirs[1]);
        assert_eq!(dirs[0], runtime.path().join("gate/locks"));
        for d in [runtime.path().join("gate"), dirs[0].clone()] {
            let mode = std::fs::metadata(&d).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        // Held from one GATE_HOME, it is held for the other.
        let mut env = Env::for_tests(homes[0].path());
        env.set_var("XDG_RUNTIME_DIR", &runtime.path().display().to_string());
        let held = acquire_item(&env, "gate", "team@x", Duration::from_secs(1)).unwrap();
        let mut other = Env::for_tests(homes[1].path());
        other.set_var("XDG_RUNTIME_DIR", &runtime.path().display().to_string());
        assert!(acquire_item(&other, "gate", "team@x", Duration::from_millis(50)).is_err());
        drop(held);
        acquire_item(&other, "gate", "team@x", Duration::from_millis(50)).unwrap();

        // Opened up to others: refused, with the fix.
        std::fs::set_permissions(
            runtime.path().join("gate"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let err = user_dir(&env).unwrap_err().to_string();
        assert!(err.contains("is open to other users (mode 755)"), "{err}");
        assert!(err.contains("hint: run `chmod 700"), "{err}");
    }

    #[test]
    fn a_folder_of_another_user_is_refused() {
        let p = Path::new("/tmp/gate-1000");
        let err = check_private(p, true, 0, 0o40700, 1000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error: the lock folder `/tmp/gate-1000` belongs to user 0, not to you (user 1000)\n  hint: someone else made it; remove it, or set `XDG_RUNTIME_DIR` (or `TMPDIR`) to a folder of your own\n"
        );
        assert!(check_private(p, false, 1000, 0o100600, 1000).is_err());
        assert!(check_private(p, true, 1000, 0o40700, 1000).is_ok());
        assert!(check_private(p, true, 1000, 0o40701, 1000).is_err());
    }
}
