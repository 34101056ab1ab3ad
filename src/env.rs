//! The process environment gate reads, captured once so commands and tests see one snapshot.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

/// What gate reads from its surroundings: variables, the working directory, and which
/// standard streams are terminals.
#[derive(Debug, Clone)]
pub struct Env {
    vars: HashMap<String, String>,
    pub cwd: PathBuf,
    pub stdin_is_terminal: bool,
    pub stderr_is_terminal: bool,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            stdin_is_terminal: std::io::stdin().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// An environment with only `GATE_HOME` set, for unit tests of the shell modules.
    pub fn for_tests(gate_home: &std::path::Path) -> Env {
        Env {
            vars: HashMap::from([("GATE_HOME".to_owned(), gate_home.display().to_string())]),
            cwd: gate_home.to_path_buf(),
            stdin_is_terminal: false,
            stderr_is_terminal: false,
        }
    }

    /// Sets a variable, for unit tests of the shell modules.
    #[cfg(test)]
    pub fn set_var(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_owned(), value.to_owned());
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    fn dir_var(&self, name: &str) -> Option<PathBuf> {
        self.var(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    }

    fn home(&self) -> Option<PathBuf> {
        self.dir_var("HOME")
    }

    /// `$XDG_CONFIG_HOME`, else `~/.config`.
    pub fn config_dir(&self) -> Option<PathBuf> {
        self.dir_var("XDG_CONFIG_HOME")
            .or_else(|| self.home().map(|h| h.join(".config")))
    }

    /// `$GATE_HOME`, else `$XDG_STATE_HOME/gate`, else `~/.local/state/gate`.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.dir_var("GATE_HOME").or_else(|| {
            self.dir_var("XDG_STATE_HOME")
                .or_else(|| self.home().map(|h| h.join(".local").join("state")))
                .map(|d| d.join("gate"))
        })
    }
}
