//! gate: one door for a team's posts to its brand accounts.
//!
//! The pure core (`policy`, `terms`, `hours`, `length`, `post`, `digest`, `reviewers`,
//! `evaluate`) does no I/O and never reads the clock; the shell (`cli`, `commands`, `output`)
//! does the reading, printing and deciding of exit codes.

pub mod hours;
pub mod reviewers;
pub mod terms;

/// Runs gate with the process's arguments and returns the exit code.
pub fn run() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
