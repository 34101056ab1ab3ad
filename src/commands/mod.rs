//! One module per subcommand; this one holds what they share: the parsed global flags, the
//! environment, and loading the policy.

pub mod approve;
pub mod auth;
pub mod check;
pub mod digest;
pub mod freeze;
pub mod log;
pub mod man;
pub mod plan;
pub mod policy;
pub mod post;
pub mod retract;
pub mod schema;
pub mod state;

use std::io::Write as _;
use std::path::Path;

use crate::cli::Global;
use crate::core::diagnostic::{Diagnostic, Level};
use crate::core::policy::{self as policy_file, Policy};
use crate::env::Env;
use crate::error::Error;
use crate::output::Verbosity;
use crate::print::Printer;

/// What every command gets: the global flags and the environment they run in.
pub struct Ctx {
    pub global: Global,
    pub env: Env,
    /// Where everything the command says goes.
    pub print: Printer,
}

impl Ctx {
    pub fn new(global: Global, env: Env) -> Ctx {
        let verbosity = if global.quiet {
            Verbosity::Quiet
        } else if global.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Ctx {
            global,
            env,
            print: Printer::new(verbosity),
        }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.print.verbosity()
    }

    /// The state store SPEC §6 names (`$GATE_STATE_URL`, the policy's `[state] url`, else the
    /// local SQLite store), opened once for the command. `policy`: the command's policy, when
    /// it loaded one; commands that work without a policy look for one here for its `[state]`.
    pub fn store(
        &self,
        policy: Option<&Policy>,
        access: crate::store::Access,
    ) -> Result<Box<dyn crate::store::Store>, Error> {
        match policy {
            Some(policy) => crate::store::open(&self.env, Some(policy), access),
            None => {
                let found = self.policy_for_state()?;
                crate::store::open(&self.env, found.as_ref(), access)
            }
        }
    }

    /// For a command that works without a policy: the policy when one is found and valid,
    /// for its `[state] url`. One that is found but invalid must still not send a team's
    /// freeze to this machine's file: its `[state] url` is read on its own, and a broken one
    /// is an error.
    pub fn policy_for_state(&self) -> Result<Option<Policy>, Error> {
        let Some((path, _)) =
            crate::inputs::locate_policy(self.global.policy.as_deref(), &self.env)
        else {
            return Ok(None);
        };
        let (policy, diagnostics) = crate::inputs::load_policy(&path);
        if policy.is_some() {
            return Ok(policy);
        }
        let names_state = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.parse::<toml::Table>().ok())
            .is_some_and(|t| t.contains_key("state"));
        if names_state && self.env.var("GATE_STATE_URL").is_none() {
            return Err(Error::Policy { diagnostics });
        }
        Ok(None)
    }

    /// Finds and validates the policy; warnings are printed, errors returned (exit 3).
    pub fn load_policy(&self, explicit: Option<&Path>) -> Result<Policy, Error> {
        let flag = explicit.or(self.global.policy.as_deref());
        let Some((path, _)) = crate::inputs::locate_policy(flag, &self.env) else {
            return Err(Error::Policy {
                diagnostics: vec![no_policy()],
            });
        };
        let (policy, diagnostics) = crate::inputs::load_policy(&path);
        match policy {
            Some(policy) => {
                self.print.warnings(&diagnostics);
                Ok(policy)
            }
            None => Err(Error::Policy { diagnostics }),
        }
    }
}

/// Asks a yes/no question on the terminal, no by default. It takes `y` or `n` and then
/// Enter, so one stray keypress never answers for a brand. Ctrl-C leaves the terminal as it
/// found it: the cursor the prompt hides is shown again, and gate stops (exit 130) having
/// done nothing more.
pub fn confirm(question: String) -> Result<bool, Error> {
    fn interrupted() -> ! {
        let _ = dialoguer::console::Term::stderr().show_cursor();
        let _ = writeln!(std::io::stderr());
        std::process::exit(130);
    }
    // The prompt reads keys in raw mode and turns Ctrl-C into SIGINT; without a handler that
    // would end gate with the cursor still hidden.
    static HANDLER: std::sync::Once = std::sync::Once::new();
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| interrupted());
    });
    match dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .wait_for_newline(true)
        .interact()
    {
        Ok(answer) => Ok(answer),
        Err(dialoguer::Error::IO(e)) if e.kind() == std::io::ErrorKind::Interrupted => {
            interrupted()
        }
        Err(e) => {
            let _ = dialoguer::console::Term::stderr().show_cursor();
            Err(Error::other(format!("cannot ask for confirmation: {e}")))
        }
    }
}

/// The error for a policy lookup that found nothing (exit 3).
pub fn no_policy() -> Diagnostic {
    // No file is named: there is none, and `gate.toml` is only one of the places looked in.
    Diagnostic::whole_file(Level::Error, "", "no policy file found").with_hint(
        "pass `--policy PATH`, set `GATE_POLICY`, or put `gate.toml` in this folder or a parent \
         (or in `$XDG_CONFIG_HOME/gate/`); `policy.example.toml` is a start",
    )
}

/// The policy's account `name`, or a usage error with a "did you mean" or the accounts the
/// policy defines; `flag` names where the name came from (empty for a positional argument).
pub fn named_account<'p>(
    policy: &'p crate::core::policy::Policy,
    name: &str,
    flag: &str,
) -> Result<&'p crate::core::policy::Account, Error> {
    policy.account(name).ok_or_else(|| {
        let message = if flag.is_empty() {
            format!("unknown account `{name}`")
        } else {
            format!("unknown account `{name}` in `{flag}`")
        };
        Error::usage(message).with_hint(policy_file::account_hint(&policy.accounts, name))
    })
}

/// The accounts inline text is judged for: those named with `--account`, else the policy's
/// only account, else none (global rules only).
pub fn inline_accounts<'p>(
    policy: &'p Policy,
    names: &[String],
) -> Result<Vec<&'p crate::core::policy::Account>, Error> {
    if names.is_empty() {
        return Ok(if policy.accounts.len() == 1 {
            policy.accounts.values().collect()
        } else {
            Vec::new()
        });
    }
    let mut out: Vec<&crate::core::policy::Account> = Vec::new();
    for name in names {
        let a = named_account(policy, name, "--account")?;
        if !out.iter().any(|o| o.name == a.name) {
            out.push(a);
        }
    }
    Ok(out)
}

/// `--now` as an instant; it must carry an offset so nobody guesses the zone.
pub fn parse_now(text: &str) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    match policy_file::parse_datetime(text) {
        Some(policy_file::Written::Exact(t)) => Ok(t),
        _ => Err(Error::usage(format!("invalid value `{text}` for `--now`"))
            .with_hint("write an RFC 3339 instant with an offset, e.g. `2026-11-23T10:00:00Z`")),
    }
}
