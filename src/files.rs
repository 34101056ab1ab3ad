//! Reading what users and pull requests hand gate, with bounds: regular files only (a FIFO or
//! a device never blocks or floods a check), a size cap checked before reading and again while
//! reading, UTF-8 errors with the line and column of the first bad byte, and media paths that
//! cannot leave the post file's folder.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::core::diagnostic::{Diagnostic, Level};
use crate::error::io_reason;

/// The most a post file, a post on stdin or a line of a calendar may hold.
pub const POST_CAP: u64 = 1 << 20;
/// The most a policy file may hold (room for the largest term lists `gate policy check` allows).
pub const POLICY_CAP: u64 = 16 << 20;

/// Why a bounded read failed, as words for a message.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    /// Not a regular file: a folder, a FIFO, a socket, a device.
    NotAFile(&'static str),
    TooLarge {
        cap: u64,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => f.write_str(&io_reason(e)),
            ReadError::NotAFile(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge { cap } => write!(f, "it is larger than {}", size(*cap)),
        }
    }
}

/// `1 MiB`, `16 MiB`, `1000000 bytes`.
pub fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The bytes of the regular file at `path` (symlinks followed), at most `cap` of them: its
/// size is checked before it is opened, and the read stops one byte past the cap in case the
/// file grew meanwhile.
pub fn read_file(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(kind(&meta)));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge { cap });
    }
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    // The open may have raced a swap of the path for something else: check what was opened.
    let opened = file.metadata().map_err(ReadError::Io)?;
    if !opened.is_file() {
        return Err(ReadError::NotAFile(kind(&opened)));
    }
    read_capped(file, cap)
}

/// At most `cap` bytes from `reader`; more is an error, not a silent cut.
pub fn read_capped(reader: impl Read, cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge { cap });
    }
    Ok(bytes)
}

/// `bytes` as text, or a diagnostic at the line and column of the first byte that is not UTF-8.
pub fn utf8(file: &str, bytes: Vec<u8>, what: &str) -> Result<String, Box<Diagnostic>> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let bad = e.utf8_error().valid_up_to();
        Box::new(not_utf8(file, bytes, bad, what))
    })
}

/// The diagnostic for invalid UTF-8 at byte `bad` of `bytes`.
pub fn not_utf8(file: &str, bytes: &[u8], bad: usize, what: &str) -> Diagnostic {
    let before = &bytes[..bad];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    // The valid prefix of the line is UTF-8 by construction.
    let prefix = std::str::from_utf8(&before[line_start..]).unwrap_or_default();
    let line_end = bytes[bad..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |i| bad + i);
    let shown = String::from_utf8_lossy(&bytes[line_start..line_end]).into_owned();
    let mut d = Diagnostic::whole_file(
        Level::Error,
        file,
        format!(
            "{what} is not valid UTF-8 (byte 0x{:02x} at offset {bad})",
            bytes[bad]
        ),
    )
    .with_hint("save the file as UTF-8");
    d.line = line;
    d.column = prefix.chars().count() + 1;
    let pad = unicode_width::UnicodeWidthStr::width(prefix);
    d.snippet = Some((shown, pad, 1));
    d
}

/// Why a media path was refused.
#[derive(Debug)]
pub enum MediaError {
    /// Absolute, or it leaves the post file's folder (`..`, or a symlink pointing out).
    Outside,
    Read(ReadError),
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::Outside => f.write_str("it is outside the post file's folder"),
            MediaError::Read(e) => e.fmt(f),
        }
    }
}

/// The media file `written` (as the post file names it), relative to the post file's folder
/// `base`: it must stay inside that folder once symlinks are resolved, be a regular file and
/// hold at most `cap` bytes. Returns where it really is and its bytes, read once.
pub fn media(base: &Path, written: &str, cap: u64) -> Result<(PathBuf, Vec<u8>), MediaError> {
    let relative = Path::new(written);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, Component::Prefix(_) | Component::RootDir))
    {
        return Err(MediaError::Outside);
    }
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let root = base
        .canonicalize()
        .map_err(|e| MediaError::Read(ReadError::Io(e)))?;
    let full = base
        .join(relative)
        .canonicalize()
        .map_err(|e| MediaError::Read(ReadError::Io(e)))?;
    if !full.starts_with(&root) {
        return Err(MediaError::Outside);
    }
    let bytes = read_file(&full, cap).map_err(MediaError::Read)?;
    Ok((full, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_placed_at_its_line_and_column() {
        let bytes = b"version = 1\ntext = \"caf\xc3\xa9 \xff here\"\n".to_vec();
        let d = utf8("p.toml", bytes, "the post file").unwrap_err();
        assert_eq!((d.line, d.column), (2, 14));
        assert!(d.message.contains("byte 0xff"), "{}", d.message);
        let d = utf8("p.toml", b"\x80".to_vec(), "the policy file").unwrap_err();
        assert_eq!((d.line, d.column), (1, 1));
        assert_eq!(utf8("p", b"ok\n".to_vec(), "x").unwrap(), "ok\n");
    }

    #[test]
    fn reads_are_bounded_and_only_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 11]).unwrap();
        assert!(matches!(
            read_file(&big, 10),
            Err(ReadError::TooLarge { cap: 10 })
        ));
        assert_eq!(read_file(&big, 11).unwrap().len(), 11);
        assert!(matches!(
            read_file(dir.path(), 10),
            Err(ReadError::NotAFile("a folder"))
        ));
        assert!(matches!(
            read_file(Path::new("/dev/zero"), 10),
            Err(ReadError::NotAFile("a device"))
        ));
        assert!(matches!(
            read_capped(std::io::repeat(0), 1 << 10),
            Err(ReadError::TooLarge { .. })
        ));
    }

    #[test]
    fn media_stays_inside_the_post_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let posts = dir.path().join("posts");
        std::fs::create_dir_all(posts.join("img")).unwrap();
        std::fs::write(posts.join("img/a.png"), b"png").unwrap();
        std::fs::write(dir.path().join("secret"), b"key").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), posts.join("link.png")).unwrap();
        std::os::unix::fs::symlink(posts.join("img/a.png"), posts.join("inside.png")).unwrap();
        let (_, bytes) = media(&posts, "img/a.png", 10).unwrap();
        assert_eq!(bytes, b"png");
        assert_eq!(media(&posts, "img/../img/a.png", 10).unwrap().1, b"png");
        assert_eq!(media(&posts, "inside.png", 10).unwrap().1, b"png");
        for outside in ["../secret", "link.png", "/etc/passwd", "img/../../secret"] {
            assert!(
                matches!(media(&posts, outside, 10), Err(MediaError::Outside)),
                "{outside}"
            );
        }
        assert!(matches!(
            media(&posts, "img", 10),
            Err(MediaError::Read(ReadError::NotAFile("a folder")))
        ));
    }
}
