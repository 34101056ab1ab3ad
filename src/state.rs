//! gate's local state folder, `$GATE_HOME` (or the XDG state folder): where it is, the check
//! that it is on a filesystem whose locks work, and private folders and files in it. The
//! SQLite store (src/store/sqlite.rs) keeps its journal and freeze file there.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::{Error, io_reason};

/// The state folder; an error when neither `GATE_HOME`, `XDG_STATE_HOME` nor `HOME` is set,
/// or when it is on a network filesystem ([`refuse_network_fs`]).
pub fn dir(env: &Env) -> Result<PathBuf, Error> {
    let dir = env.state_dir().ok_or_else(|| {
        Error::other("cannot find a folder for gate's state")
            .with_hint("set `GATE_HOME` (or `XDG_STATE_HOME` or `HOME`) to an absolute path")
    })?;
    refuse_network_fs(env, &dir)?;
    Ok(dir)
}

/// What gate knows of a filesystem: its `statfs` magic and, for FUSE, the subtype the mount
/// table names (`sshfs` for `fuse.sshfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsKind {
    pub magic: u32,
    pub fuse_subtype: Option<String>,
}

const FUSE_SUPER_MAGIC: u32 = 0x6573_5546;

/// The network (or cluster, or host-shared) filesystem `kind` is, by name; `None` for a local
/// one. On these SQLite's WAL (shared memory) and `flock` are not to be trusted: the SQLite
/// manual says WAL "does not work over a network filesystem", and NFS and SMB emulate or drop
/// `flock` depending on mount options.
pub fn network_fs(kind: &FsKind) -> Option<&'static str> {
    Some(match kind.magic {
        0x6969 => "NFS",
        0x517b => "SMB",
        0xff53_4d42 => "CIFS",
        0xfe53_4d42 => "SMB2",
        0x0102_1997 => "9p",
        0x7375_7245 => "Coda",
        0x5346_414f | 0x6b41_4653 => "AFS",
        0x564c => "NCP",
        0x00c3_6400 => "Ceph",
        0x0116_1970 => "GFS2",
        0x7461_636f => "OCFS2",
        0x0bd0_0bd0 => "Lustre",
        0x4750_4653 => "GPFS",
        0x2003_0528 => "OrangeFS",
        0x786f_4256 => "VirtualBox shared folder (vboxsf)",
        FUSE_SUPER_MAGIC => {
            let subtype = kind.fuse_subtype.as_deref()?;
            return NETWORK_FUSE
                .iter()
                .find(|(name, _)| *name == subtype)
                .map(|(_, shown)| *shown);
        }
        _ => return None,
    })
}

/// FUSE filesystems that reach over the network or to a host; other FUSE mounts (overlays,
/// NTFS, encrypted folders) are local.
const NETWORK_FUSE: &[(&str, &str)] = &[
    ("sshfs", "sshfs (FUSE)"),
    ("s3fs", "s3fs (FUSE)"),
    ("rclone", "rclone (FUSE)"),
    ("gcsfuse", "gcsfuse (FUSE)"),
    ("goofys", "goofys (FUSE)"),
    ("glusterfs", "GlusterFS (FUSE)"),
    ("ceph-fuse", "Ceph (FUSE)"),
    ("cephfs", "Ceph (FUSE)"),
    ("juicefs", "JuiceFS (FUSE)"),
    ("davfs", "WebDAV (FUSE)"),
    ("curlftpfs", "FTP (FUSE)"),
    ("smbnetfs", "SMB (FUSE)"),
    ("vmhgfs-fuse", "VMware shared folder (FUSE)"),
    ("gvfsd-fuse", "GVfs (FUSE)"),
];

/// Refuses a state or lock folder on a network filesystem (exit 1): its locks and SQLite's
/// WAL may silently not work, and exactly-once sending rests on them.
/// `GATE_ALLOW_NETWORK_FS=1` accepts it. The folder need not exist yet: its nearest existing
/// parent is asked.
pub fn refuse_network_fs(env: &Env, dir: &Path) -> Result<(), Error> {
    if env.var("GATE_ALLOW_NETWORK_FS") == Some("1") {
        return Ok(());
    }
    let Some(kind) = fs_kind(env, dir) else {
        return Ok(());
    };
    let Some(name) = network_fs(&kind) else {
        return Ok(());
    };
    Err(Error::other(format!(
        "the folder `{}` is on a network filesystem ({name}), where gate's locks and its journal's locking cannot be trusted",
        dir.display()
    ))
    .with_hint(
        "use a local folder (set `GATE_HOME`, or `XDG_RUNTIME_DIR` for the lock folder), or `GATE_ALLOW_NETWORK_FS=1` if you know its locks work",
    ))
}

/// The filesystem `dir` (or its nearest existing parent) is on; `None` when it cannot be told.
/// Debug builds let `GATE_DEBUG_FS_TYPE` (a hex magic such as `0x6969`, or `fuse.SUBTYPE`)
/// stand in for the answer, so tests can play a network mount.
fn fs_kind(env: &Env, dir: &Path) -> Option<FsKind> {
    #[cfg(debug_assertions)]
    if let Some(fake) = env.var("GATE_DEBUG_FS_TYPE").filter(|v| !v.is_empty()) {
        if let Some(sub) = fake.strip_prefix("fuse.") {
            return Some(FsKind {
                magic: FUSE_SUPER_MAGIC,
                fuse_subtype: Some(sub.to_owned()),
            });
        }
        let magic = u32::from_str_radix(fake.trim_start_matches("0x"), 16).ok()?;
        return Some(FsKind {
            magic,
            fuse_subtype: None,
        });
    }
    let _ = env;
    let existing = dir.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statfs(existing).ok()?;
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
    let magic = (st.f_type as u64 & 0xffff_ffff) as u32;
    let fuse_subtype = if magic == FUSE_SUPER_MAGIC {
        let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let canonical = existing.canonicalize().ok()?;
        fuse_subtype(&table, &canonical)
    } else {
        None
    };
    Some(FsKind {
        magic,
        fuse_subtype,
    })
}

/// The FUSE subtype of the mount holding `path`, from `/proc/self/mountinfo`: the mount
/// with the longest mount point that contains `path`, if its type is `fuse.SUBTYPE`.
fn fuse_subtype(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else {
            continue;
        };
        let point = unescape_mount(point);
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let Some(fstype) = fields.get(dash + 1) else {
            continue;
        };
        if path.starts_with(&point) && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), fstype));
        }
    }
    best.and_then(|(_, t)| t.strip_prefix("fuse.").map(str::to_owned))
}

/// Mount points escape space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) = std::str::from_utf8(&bytes[i + 1..i + 4])
                .map_err(drop)
                .and_then(|o| u8::from_str_radix(o, 8).map_err(drop))
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `path` as a folder, created with its parents if missing.
pub fn create_dir(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let err = |e: std::io::Error| {
        Error::other(format!(
            "cannot create `{}`: {}",
            path.display(),
            io_reason(&e)
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(err)?;
    // gate's state is its user's alone: a folder made open to others (by an older gate, a
    // umask, a copy) is closed again.
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            Error::other(format!(
                "cannot make `{}` private (mode 0700): {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
    }
    Ok(())
}

/// Makes an existing file of gate's state readable by its user alone (mode 0600); a missing
/// file is left for its creator.
pub fn private_file(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
                Error::other(format!(
                    "cannot make `{}` private (mode 0600): {}",
                    path.display(),
                    io_reason(&e)
                ))
            })
        }
        _ => Ok(()),
    }
}

/// Who this process runs as when `$USER` and `$LOGNAME` are unset (cron, containers): the
/// name `/etc/passwd` gives the uid, else `uid N`.
pub(crate) fn user_name() -> Option<String> {
    let uid = rustix::process::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid.to_string()).then(|| name.to_owned())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(magic: u32, sub: Option<&str>) -> FsKind {
        FsKind {
            magic,
            fuse_subtype: sub.map(str::to_owned),
        }
    }

    #[test]
    fn network_filesystems_are_told_from_local_ones() {
        for (magic, sub, want) in [
            (0x6969, None, Some("NFS")),
            (0xff53_4d42, None, Some("CIFS")),
            (0xfe53_4d42, None, Some("SMB2")),
            (0x517b, None, Some("SMB")),
            (0x0102_1997, None, Some("9p")),
            (0x00c3_6400, None, Some("Ceph")),
            (0x786f_4256, None, Some("VirtualBox shared folder (vboxsf)")),
            (FUSE_SUPER_MAGIC, Some("sshfs"), Some("sshfs (FUSE)")),
            (FUSE_SUPER_MAGIC, Some("rclone"), Some("rclone (FUSE)")),
            // Local filesystems, FUSE ones included.
            (0xef53, None, None),      // ext2/3/4
            (0x9123_683e, None, None), // btrfs
            (0x5846_5342, None, None), // xfs
            (0x0102_1994, None, None), // tmpfs
            (0x794c_7630, None, None), // overlayfs
            (FUSE_SUPER_MAGIC, Some("fuse-overlayfs"), None),
            (FUSE_SUPER_MAGIC, Some("ntfs-3g"), None),
            (FUSE_SUPER_MAGIC, None, None),
        ] {
            assert_eq!(network_fs(&kind(magic, sub)), want, "{magic:#x} {sub:?}");
        }
    }

    #[test]
    fn the_fuse_subtype_comes_from_the_longest_mount_point() {
        let table = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /home/ann/remote rw,nosuid - fuse.sshfs ann@host: rw,user_id=1000
41 40 0:41 / /home/ann/remote/inner\\040dir rw - fuse.fuse-overlayfs x rw
";
        let at = |p: &str| fuse_subtype(table, Path::new(p));
        assert_eq!(at("/home/ann/remote/state").as_deref(), Some("sshfs"));
        assert_eq!(
            at("/home/ann/remote/inner dir/s").as_deref(),
            Some("fuse-overlayfs")
        );
        assert_eq!(at("/home/ann/remotely"), None);
        assert_eq!(at("/var/lib"), None);
        assert_eq!(unescape_mount("a\\040b\\134c"), "a b\\c");
    }

    #[test]
    fn a_state_folder_on_nfs_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("state");
        let mut env = Env::for_tests(&home);
        // The real answer for a temporary folder: local.
        dir_ok(&env);
        env.set_var("GATE_DEBUG_FS_TYPE", "0x6969");
        let err = super::dir(&env).unwrap_err();
        assert_eq!(err.code(), crate::error::Code::Failure);
        assert_eq!(
            err.to_string(),
            format!(
                "error: the folder `{}` is on a network filesystem (NFS), where gate's locks and its journal's locking cannot be trusted\n  hint: use a local folder (set `GATE_HOME`, or `XDG_RUNTIME_DIR` for the lock folder), or `GATE_ALLOW_NETWORK_FS=1` if you know its locks work\n",
                home.display()
            )
        );
        env.set_var("GATE_ALLOW_NETWORK_FS", "1");
        dir_ok(&env);
    }

    fn dir_ok(env: &Env) {
        super::dir(env).unwrap();
    }
}
