//! The files gate is pointed at, read from disk and handed to the core as text: the policy
//! (found by the documented lookup order), post files and the media they name, and the
//! folders of post files `gate check` walks. Reads are bounded ([`crate::files`]).

use std::path::{Path, PathBuf};

use crate::core::diagnostic::{Diagnostic, Level, Source};
use crate::core::policy::{self, Origin, Policy};
use crate::core::post::{self, MediaFile, MediaProblem, MediaReader, Post};
use crate::env::Env;
use crate::error::Error;
use crate::files;

/// Finds the policy file by the documented lookup order: `--policy`, `$GATE_POLICY`,
/// `gate.toml` here or in the nearest parent, `$XDG_CONFIG_HOME/gate/gate.toml`.
pub fn locate_policy(flag: Option<&Path>, env: &Env) -> Option<(PathBuf, Origin)> {
    if let Some(path) = flag {
        return Some((path.to_path_buf(), Origin::Flag));
    }
    if let Some(path) = env.var("GATE_POLICY").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), Origin::Env));
    }
    let mut dir = env.cwd.clone();
    loop {
        let candidate = dir.join("gate.toml");
        if candidate.is_file() {
            return Some((relative_to(&candidate, &env.cwd), Origin::Search));
        }
        if !dir.pop() {
            break;
        }
    }
    let config = env.config_dir()?.join("gate").join("gate.toml");
    config.is_file().then_some((config, Origin::Config))
}

/// `path` as seen from `base` (`gate.toml`, `../gate.toml`), which is what CI annotations
/// and people expect; unchanged when it is not below an ancestor of `base`.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let mut up = PathBuf::new();
    for ancestor in base.ancestors() {
        if let Ok(rest) = path.strip_prefix(ancestor) {
            return up.join(rest);
        }
        up.push("..");
    }
    path.to_path_buf()
}

/// Loads and validates a policy. Returns the policy only when there is no error; warnings
/// come back either way.
pub fn load_policy(path: &Path) -> (Option<Policy>, Vec<Diagnostic>) {
    let display = path.display().to_string();
    let text = match files::read_file(path, files::POLICY_CAP) {
        Ok(bytes) => match files::utf8(&display, bytes, "the policy file") {
            Ok(text) => text,
            Err(d) => return (None, vec![*d]),
        },
        Err(e) => {
            let d = Diagnostic::whole_file(
                Level::Error,
                display,
                format!("cannot read the policy file: {e}"),
            );
            let d = match &e {
                files::ReadError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => d
                    .with_hint("write one from `policy.example.toml`, or point `--policy` or `GATE_POLICY` at it"),
                _ => d,
            };
            return (None, vec![d]);
        }
    };
    let source = Source::new(display, text);
    let (policy, diagnostics) = policy::parse(&source);
    (
        policy.map(|mut p| {
            p.path = path.to_path_buf();
            p
        }),
        diagnostics,
    )
}

/// Reads and validates a post file; accounts must exist in `policy`.
pub fn load_post(path: &Path, policy: &Policy) -> Result<Post, Vec<Diagnostic>> {
    let display = path.display().to_string();
    let bytes = files::read_file(path, files::POST_CAP).map_err(|e| {
        let d = Diagnostic::whole_file(
            Level::Error,
            &display,
            format!("cannot read the post file: {e}"),
        );
        vec![match e {
            files::ReadError::TooLarge { .. } => d.with_hint(
                "a post file holds one post's text and settings; media stay in files of their own",
            ),
            _ => d,
        }]
    })?;
    let text = files::utf8(&display, bytes, "the post file").map_err(|d| vec![*d])?;
    let source = Source::new(display, text);
    parse_post(&source, path, policy)
}

/// Validates post-file text read from `path`; media paths resolve relative to its folder.
pub fn parse_post(source: &Source, path: &Path, policy: &Policy) -> Result<Post, Vec<Diagnostic>> {
    let mut media = Folder {
        base: path.parent().unwrap_or(Path::new(".")),
    };
    post::parse(source, path, policy, &mut media)
}

/// Media confined to the post file's folder.
struct Folder<'a> {
    base: &'a Path,
}

impl MediaReader for Folder<'_> {
    fn read(&mut self, written: &str, cap: u64) -> Result<MediaFile, MediaProblem> {
        match files::media(self.base, written, cap) {
            Ok((path, data)) => Ok(MediaFile { path, data }),
            Err(e) => Err(MediaProblem {
                message: format!("cannot read media `{written}`: {e}"),
                hint: match &e {
                    files::MediaError::Outside => {
                        "media must be files inside the post file's folder (no absolute paths, no `..` out of it, no symlinks pointing out)".to_owned()
                    }
                    files::MediaError::Read(files::ReadError::TooLarge { cap }) => format!(
                        "the largest file the post's networks take is {}",
                        files::size(*cap)
                    ),
                    files::MediaError::Read(_) => {
                        "media paths are relative to the post file's folder".to_owned()
                    }
                },
            }),
        }
    }
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

/// The post on stdin, at most [`crate::files::POST_CAP`] bytes of UTF-8.
pub fn read_stdin() -> Result<String, Error> {
    let bytes = crate::files::read_capped(std::io::stdin().lock(), crate::files::POST_CAP)
        .map_err(|e| {
            Error::usage(format!("cannot read the post from stdin: {e}"))
                .with_hint("a post is text of at most 1 MiB")
        })?;
    let text =
        crate::files::utf8("<stdin>", bytes, "the post on stdin").map_err(|d| Error::Input {
            diagnostics: vec![*d],
        })?;
    Ok(crate::core::post::without_final_newline(&text).to_owned())
}
