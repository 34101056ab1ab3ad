//! The command-line surface, as clap parses it. Completions and the man page come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// gate: one door for a team's posts to its brand accounts.
///
/// Every post is checked against the team's policy (banned terms, signed reviews, quiet
/// hours, blackouts, freezes) before it may go out.
#[derive(Debug, Parser)]
#[command(name = "gate", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The policy file [default: $GATE_POLICY, ./gate.toml or the nearest parent's,
    /// $XDG_CONFIG_HOME/gate/gate.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// Print one JSON document on stdout and nothing else there
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less: only errors and the verdict
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: also the normalised text each post was matched on
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to use colour
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Judge a post, confirm, send it to its accounts once and journal it
    Post(PostArgs),
    /// Judge posts against the policy; never touches the network or the keychain
    Check(CheckArgs),
    /// The calendar: each post file's window and accounts, and what each waits on
    ///
    /// One line per post file and account, sorted by `not_before` (files without one
    /// first): the window and one state: `sent` (with its URL), `due`, `not-yet`, `expired`,
    /// `held until …`, `needs N more reviews` (and who may sign), `denied` or `frozen`.
    /// Read-only: it never contacts a network, reads a token or creates the state store.
    Plan(PlanArgs),
    /// Print the exact bytes a reviewer signs for a post file
    Digest(DigestArgs),
    /// Sign a post file as a reviewer and append the approval to it
    Approve(ApproveArgs),
    /// Validate or test the policy file
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Delete a post that gate sent, after confirmation, and journal it
    Retract(RetractArgs),
    /// Stop every `gate post` that uses this state store until `gate unfreeze`
    Freeze(FreezeArgs),
    /// Lift a freeze made with `gate freeze`
    Unfreeze,
    /// Show the audit trail (`--json`: JSON Lines) or verify its hash chain
    Log(LogArgs),
    /// Store, show and remove account tokens in the OS keychain
    #[command(subcommand)]
    Auth(AuthCommand),
    /// The state store: which one is in use, its schema, and moving local state into it
    ///
    /// The store is `$GATE_STATE_URL`, else the policy's `[state] url` (PostgreSQL, shared by
    /// the team), else SQLite in the state folder (this machine).
    #[command(subcommand)]
    State(StateCommand),
    /// Print the JSON Schema of the policy file or of post files, for editors and CI
    ///
    /// The documents are JSON Schema draft 2020-12 and describe every key the readers take.
    /// Save one beside your files and name it on the file's first line, e.g.
    /// `#:schema ./schema/policy.schema.json`: taplo and Even Better TOML then complete keys
    /// and flag typos as you type.
    Schema {
        /// Which file's schema
        #[arg(value_enum)]
        kind: SchemaKind,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per subcommand with `--out`
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `gate.1` and one `gate-SUB.1` per subcommand into this folder
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// The policy file (`gate.toml`)
    Policy,
    /// A post file (`*.post.toml`)
    Post,
}

#[derive(Debug, Args)]
pub struct RetractArgs {
    /// The account the post went to
    pub account: String,
    /// The post's id or URL, as `gate post` printed it
    #[arg(
        value_name = "ID|URL",
        required_unless_present = "last",
        conflicts_with = "last"
    )]
    pub post: Option<String>,
    /// The account's most recent post sent by gate
    #[arg(long)]
    pub last: bool,
    /// Delete without asking (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The post's text; `-` reads it from stdin
    #[arg(value_name = "TEXT", conflicts_with_all = ["file", "jsonl"])]
    pub text: Option<String>,
    /// Post files, or folders holding `*.post.toml` files
    #[arg(long, value_name = "PATH", num_args = 1.., conflicts_with = "jsonl")]
    pub file: Vec<PathBuf>,
    /// A JSON Lines calendar: one `{"text", "account"?, "at"?}` object per line
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// The account to judge inline text for (may repeat)
    #[arg(long, value_name = "NAME")]
    pub account: Vec<String>,
    /// Judge as if it were this time (RFC 3339, e.g. 2026-11-23T10:00:00Z)
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// How to print the results (`--json` is `--format json`)
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// How many threads judge the lines of `--jsonl` [default: the CPUs gate may use]
    #[arg(long, short = 'j', value_name = "N", requires = "jsonl")]
    pub jobs: Option<std::num::NonZeroUsize>,
}

#[derive(Debug, Args)]
pub struct PostArgs {
    /// The post's text; `-` reads it from stdin
    #[arg(value_name = "TEXT", conflicts_with = "file")]
    pub text: Option<String>,
    /// A post file (it names its own accounts, media and approvals)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Send every post file below these folders whose window is open now, each to each of
    /// its accounts once; never asks, so it needs `--yes` (or `--dry-run`). For cron.
    #[arg(
        long,
        value_name = "DIR",
        num_args = 1..,
        conflicts_with_all = ["text", "file", "account", "wait", "language", "visibility", "reply_to"]
    )]
    pub due: Vec<PathBuf>,
    /// The account to send inline text to (may repeat) [default: the policy's only account]
    #[arg(long, value_name = "NAME")]
    pub account: Vec<String>,
    /// Send without asking (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Do everything but send: judge, read the credentials and the journal, print what would go
    #[arg(long)]
    pub dry_run: bool,
    /// When the post is held (quiet hours, blackout), sleep until it may go, then judge again
    #[arg(long)]
    pub wait: bool,
    /// The longest `--wait` sleeps, e.g. `90s`, `30m`, `2h` [default: 12h]
    #[arg(long, value_name = "DURATION", requires = "wait")]
    pub max_wait: Option<String>,
    /// The post's language, a BCP 47 tag such as `en`, `en-GB`, `pt-BR` (overrides the post
    /// file's `language`; X takes none)
    #[arg(long, value_name = "TAG")]
    pub language: Option<String>,
    /// Who may see it on Mastodon [default: public]; Bluesky and X refuse anything else
    #[arg(long, value_enum, value_name = "WHO")]
    pub visibility: Option<crate::core::post::Visibility>,
    /// Reply to this post: its id or address on the one account's network (overrides the post
    /// file's `reply_to`)
    #[arg(long, value_name = "ID|URL")]
    pub reply_to: Option<String>,
    /// Send a delivery whose earlier attempt may have gone out even though the network cannot
    /// say whether it did (look at the account first: this may post twice)
    #[arg(long)]
    pub force_resend: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Folders holding `*.post.toml` files (or post files) [default: the current folder]
    #[arg(value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Show the plan as of this time (RFC 3339, e.g. 2026-11-23T10:00:00Z)
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The post file
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The post file to sign
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Your OpenSSH ed25519 private key [default: ~/.ssh/id_ed25519]
    #[arg(long, value_name = "PATH")]
    pub key: Option<PathBuf>,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Sign even though content rules deny the post
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file (for CI)
    Check(PolicyCheckArgs),
    /// Run the example cases written in the policy's `[[tests]]`
    Test(PolicyTestArgs),
}

#[derive(Debug, Args)]
pub struct PolicyCheckArgs {
    /// The policy file [default: the policy lookup]
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// How to print diagnostics
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// The policy file [default: the policy lookup]
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    /// GitHub Actions workflow commands (`::error file=…,line=…,col=…::…`)
    Github,
    /// One Markdown table, for `$GITHUB_STEP_SUMMARY`
    Markdown,
}

#[derive(Debug, Args)]
pub struct FreezeArgs {
    /// Why posting stops, shown to everyone who tries
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Only entries for this account
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Only entries at or after this time (RFC 3339, or a date like 2026-11-23)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Recompute the hash chain; exit 1 naming the first entry edited, removed or reordered
    #[arg(long, conflicts_with_all = ["account", "since"])]
    pub verify: bool,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Name the backend (never the password), its schema version, whether it answers, and the freeze
    Status,
    /// Create or bring up to date the team store's schema, or print its SQL for a DBA
    Migrate(StateMigrateArgs),
    /// Copy this machine's journal and audit trail into the team store (chain verified)
    Import,
    /// Store the team store's password in the OS keychain (read from stdin, or asked for)
    Password,
}

#[derive(Debug, Args)]
pub struct StateMigrateArgs {
    /// Print the SQL instead of running it (for a DBA; nothing is connected to)
    #[arg(long)]
    pub print_sql: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Sign in to an account (OAuth in the browser) or store a token made elsewhere
    Login(AuthLoginArgs),
    /// Show, per account, whether a token is stored, where, its expiry, scopes and identity
    Status(AuthStatusArgs),
    /// Revoke an account's token at the server and remove it from the OS keychain
    Logout(AuthLogoutArgs),
}

#[derive(Debug, Args)]
pub struct AuthLoginArgs {
    /// The account, as named in the policy
    #[arg(value_name = "ACCOUNT")]
    pub account: String,
    /// Read a token made elsewhere from stdin (a hidden prompt on a terminal); never from argv
    #[arg(long)]
    pub with_token: bool,
    /// Do not open a browser or listen for the redirect: print the sign-in URL and read the
    /// pasted answer (Mastodon: the code; X and Bluesky: the address the browser was sent to)
    #[arg(long, conflicts_with = "with_token")]
    pub no_browser: bool,
    /// X: the team app's client secret, read from stdin with `-` or a hidden prompt without a
    /// value, then kept in the keychain (never from argv)
    #[arg(long, value_name = "-", num_args = 0..=1, default_missing_value = "", conflicts_with = "with_token")]
    pub client_secret: Option<String>,
    /// How long to wait for the browser's redirect, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    /// Bluesky: sign in with the account's `handle` and an app password read from stdin (a
    /// hidden prompt on a terminal); never from argv. Without it, Bluesky signs in with OAuth
    #[arg(long, conflicts_with_all = ["with_token", "no_browser", "client_secret"])]
    pub app_password: bool,
}

#[derive(Debug, Args)]
pub struct AuthStatusArgs {
    /// Only this account (exit 8 when it has no usable token) [default: every account]
    #[arg(value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// Do not ask the servers who the tokens belong to, and do not refresh them
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Args)]
pub struct AuthLogoutArgs {
    /// The account, as named in the policy
    #[arg(value_name = "ACCOUNT")]
    pub account: String,
    /// Only remove the token from the keychain; do not revoke it at the server
    #[arg(long)]
    pub offline: bool,
}
