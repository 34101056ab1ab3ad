//! gate: one door for a team's posts to its brand accounts.
//!
//! The pure core (`policy`, `terms`, `hours`, `length`, `post`, `reviewers`, `evaluate`) does
//! no I/O beyond reading the files it is pointed at and never reads the clock; the shell
//! (`cli`, `commands`, `output`, `state`, `keychain`) does the printing, the clock and the exit codes.

pub mod anchor;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod core;
pub mod credential;
pub mod env;
pub mod error;
pub mod files;
pub mod http;
pub mod inputs;
pub mod keychain;
pub mod lock;
pub mod loopback;
pub mod output;
pub mod pause;
pub mod platforms;
pub mod print;
pub mod redact;
#[cfg(test)]
mod robustness;
pub mod state;
pub mod store;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{AuthCommand, Cli, ColorWhen, Command, PolicyCommand, StateCommand};
use crate::commands::Ctx;
use crate::error::{Code, Error};

/// Runs gate with the process's arguments and environment; returns the exit code.
pub fn run() -> ExitCode {
    // A panic prints its message with every secret gate sent hidden, like any other output.
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(
            std::io::stderr(),
            "gate panicked: {}",
            redact::scrub(&info.to_string())
        );
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Code::Usage.as_u8()
            } else {
                0
            });
        }
    };
    match cli.global.color {
        ColorWhen::Always => anstream::ColorChoice::Always.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
        ColorWhen::Auto => {}
    }
    let ctx = Ctx::new(cli.global, env::Env::from_process());
    let code = match execute(&ctx, cli.command) {
        Ok(code) => code,
        Err(e) => {
            report(&ctx, &e);
            e.code()
        }
    };
    ExitCode::from(code.as_u8())
}

fn execute(ctx: &Ctx, command: Command) -> Result<Code, Error> {
    match command {
        Command::Post(args) => commands::post::run(ctx, &args),
        Command::Check(args) => commands::check::run(ctx, &args),
        Command::Plan(args) => commands::plan::run(ctx, &args),
        Command::Digest(args) => commands::digest::run(ctx, &args),
        Command::Approve(args) => commands::approve::run(ctx, &args),
        Command::Policy(PolicyCommand::Check(args)) => commands::policy::check(ctx, &args),
        Command::Policy(PolicyCommand::Test(args)) => commands::policy::test(ctx, &args),
        Command::Retract(args) => commands::retract::run(ctx, &args),
        Command::Freeze(args) => commands::freeze::freeze(ctx, &args),
        Command::Unfreeze => commands::freeze::unfreeze(ctx),
        Command::Log(args) => commands::log::run(ctx, &args),
        Command::Auth(AuthCommand::Login(args)) => commands::auth::login(ctx, &args),
        Command::Auth(AuthCommand::Status(args)) => commands::auth::status(ctx, &args),
        Command::Auth(AuthCommand::Logout(args)) => commands::auth::logout(ctx, &args),
        Command::State(StateCommand::Status) => commands::state::status(ctx),
        Command::State(StateCommand::Migrate(args)) => commands::state::migrate(ctx, &args),
        Command::State(StateCommand::Import) => commands::state::import(ctx),
        Command::State(StateCommand::Password) => commands::state::password(ctx),
        Command::Schema { kind } => commands::schema::run(ctx, kind),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "gate", &mut script);
            ctx.print.bytes(&script)?;
            Ok(Code::Ok)
        }
        Command::Man(args) => commands::man::run(ctx, &args),
    }
}

/// Prints an error on stderr; with `--json`, stdout also gets `{"error": …}` so a script
/// reading stdout always gets a document.
fn report(ctx: &Ctx, error: &Error) {
    if let Error::Closed = error {
        return;
    }
    ctx.print.error(error);
    if ctx.global.json {
        let diagnostics: Vec<_> = match error {
            Error::Policy { diagnostics } | Error::Input { diagnostics } => diagnostics
                .iter()
                .map(crate::core::diagnostic::Diagnostic::json)
                .collect(),
            _ => Vec::new(),
        };
        let message = match error {
            Error::Usage { message, .. }
            | Error::Other { message, .. }
            | Error::Credentials { message, .. }
            | Error::Network { message, .. } => message.clone(),
            Error::Policy { .. } => "the policy file is missing or invalid".to_owned(),
            Error::Input { .. } => "an input file is invalid".to_owned(),
            Error::Closed => String::new(),
        };
        let _ = ctx.print.json(&serde_json::json!({
            "error": { "code": error.code().as_u8(), "message": message, "diagnostics": diagnostics }
        }));
    }
}
