//! Runs the built `gate` binary in a clean environment: a temporary folder as the working
//! directory, `HOME`, `GATE_HOME` and every `XDG_*` (`XDG_RUNTIME_DIR` too) inside it, no
//! inherited `GATE_*`. `common::keychain` starts private keychains for the tests that need one.

#![allow(dead_code)]

pub mod fake_http;
pub mod fault_proxy;
pub mod keychain;
pub mod oauth;
pub mod pds;
pub mod pg;
pub mod setup;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// Variables added on top of the scrubbed environment (e.g. a test's session bus).
    pub vars: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The `verdict` of each line of JSON Lines on stdout (`check --jsonl --json`).
    pub fn verdicts(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(|l| {
                let line: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
                line["verdict"].as_str().unwrap_or("(none)").to_owned()
            })
            .collect()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temporary folder"),
            vars: Vec::new(),
        }
    }

    /// Adds (or replaces) a variable in every command's environment.
    pub fn set_var(&mut self, name: &str, value: impl Into<String>) {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_owned(), value.into()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap()
    }

    /// A `gate` command with a scrubbed environment, run from the sandbox.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.program(env!("CARGO_BIN_EXE_gate"));
        cmd.args(args);
        cmd
    }

    /// Any program with gate's scrubbed environment (plus `GATE` naming the binary), run
    /// from the sandbox: for `keyctl session - sh -c '"$GATE" …'` and peers like `secret-tool`.
    pub fn program(&self, program: &str) -> Command {
        let runtime = self.path().join("runtime");
        std::fs::create_dir_all(&runtime).unwrap();
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path().join("home"))
            .env("GATE_HOME", self.path().join("state"))
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_STATE_HOME", self.path().join("xdg-state"))
            .env("XDG_DATA_HOME", self.path().join("data"))
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("LANG", "C.UTF-8")
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("NO_COLOR", "1")
            .env("GATE", env!("CARGO_BIN_EXE_gate"))
            .current_dir(self.path())
            .stdin(Stdio::null());
        for (name, value) in &self.vars {
            cmd.env(name, value);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        finish(self.command(args).output().expect("gate runs"))
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run_command(self.command(args), stdin)
    }
}

/// Runs any command with `stdin` written to it and closed; stdout and stderr captured.
/// A command may exit without reading its input (gate refuses early on many errors): the
/// broken pipe that leaves is not a failure of the test.
pub fn run_command(mut cmd: Command, stdin: &str) -> Run {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    write_stdin(&mut child, stdin);
    finish(child.wait_with_output().unwrap())
}

/// Writes `stdin` to the child and closes it. A child that exits without reading it (gate
/// refusing before it reads a token) makes this a broken pipe, which is not the test's failure.
fn write_stdin(child: &mut std::process::Child, stdin: &str) {
    use std::io::Write;
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "cannot write to stdin: {e}"
        );
    }
}

fn finish(output: Output) -> Run {
    Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Fails loudly when a peer the test needs is missing: never a silent skip.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{name}` is required by this test and is not installed; `.ci/run` installs it"
    );
}

/// Makes an ed25519 key pair with ssh-keygen; returns (private key path, public key line).
pub fn keygen(dir: &Path, name: &str, passphrase: &str) -> (PathBuf, String) {
    require_tool("ssh-keygen");
    let path = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            &format!("{name}@example.com"),
            "-f",
        ])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}
