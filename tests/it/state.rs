//! The state folder: gate refuses one on a network filesystem, where SQLite's WAL and `flock`
//! cannot be trusted, unless told `GATE_ALLOW_NETWORK_FS=1`. The filesystem is reported by a
//! debug-build knob (`GATE_DEBUG_FS_TYPE`, a `statfs` magic or `fuse.SUBTYPE`): no NFS or
//! SMB server can be mounted here; the decision itself is table-tested in `src/state.rs`.

use crate::common;

use common::Sandbox;

fn sandbox(fs: &str) -> Sandbox {
    let mut s = Sandbox::new();
    s.write("gate.toml", "version = 1\n");
    s.set_var("GATE_DEBUG_FS_TYPE", fs);
    s
}

#[test]
fn a_state_folder_on_nfs_is_refused_with_the_fix_and_allowed_when_asked() {
    let mut s = sandbox("0x6969");
    let home = s.path().join("state");
    let refused = s.run(&["freeze", "--reason", "incident"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert_eq!(
        refused.stderr,
        format!(
            "error: the folder `{}` is on a network filesystem (NFS), where gate's locks and its journal's locking cannot be trusted\n  \
             hint: use a local folder (set `GATE_HOME`, or `XDG_RUNTIME_DIR` for the lock folder), or `GATE_ALLOW_NETWORK_FS=1` if you know its locks work\n",
            home.display()
        )
    );
    assert!(!home.join("freeze.json").exists(), "the freeze was written");

    s.set_var("GATE_ALLOW_NETWORK_FS", "1");
    let allowed = s.run(&["freeze", "--reason", "incident"]);
    assert_eq!(allowed.code, 0, "{allowed:?}");
    assert!(home.join("freeze.json").exists());
    let unfrozen = s.run(&["unfreeze"]);
    assert_eq!(unfrozen.code, 0, "{unfrozen:?}");
}

#[test]
fn the_journal_is_refused_on_an_sshfs_mount() {
    let s = sandbox("fuse.sshfs");
    let run = s.run(&["log"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("is on a network filesystem (sshfs (FUSE))"),
        "{run:?}"
    );
}

#[test]
fn a_local_fuse_mount_is_used() {
    let s = sandbox("fuse.fuse-overlayfs");
    let run = s.run(&["freeze", "--reason", "incident"]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// The state folder, the journal (and its WAL), the freeze and the lock files are their
/// user's alone; ones an older gate or a loose umask left open are closed on the next open.
#[test]
fn the_state_folder_and_its_files_are_private_and_loose_ones_are_fixed() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = Sandbox::new();
    s.write("gate.toml", "version = 1\n");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let home = s.path().join("state");
    let run = s.run(&["freeze", "--reason", "incident"]);
    assert_eq!(run.code, 0, "{run:?}");
    let files = [
        home.join("journal.sqlite3"),
        home.join("journal.sqlite3-wal"),
        home.join("freeze.json"),
    ];
    assert_eq!(mode(&home), 0o700);
    for f in &files {
        if f.exists() {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
    assert!(files[0].exists() && files[2].exists());
    // Loosen everything, as an older gate did; the next command closes it again.
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = s.run(&["log", "--verify"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = s.run(&["unfreeze"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&files[0]), 0o600);
}
