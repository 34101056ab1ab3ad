//! `gate man`: the man page `gate.1` on stdout, or with `--out DIR` one page per subcommand
//! (`gate-post.1`, `gate-auth-login.1`, …). Every page ends with EXIT STATUS, ENVIRONMENT and
//! FILES, which clap does not know about.

use std::path::Path;

use clap::CommandFactory as _;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli::{Cli, ManArgs};
use crate::error::{Code, Error};

/// SPEC §2's table.
const EXIT_STATUS: &[(&str, &str)] = &[
    ("0", "sent, allowed or valid (verdict allow)"),
    (
        "1",
        "a failure not listed below (I/O, internal); also policy test with failing cases",
    ),
    (
        "2",
        "usage error, or refusing to send unattended without --yes",
    ),
    ("3", "policy file missing or invalid"),
    (
        "4",
        "denied by a content rule: banned term, length, link, media (verdict deny)",
    ),
    (
        "5",
        "held, not now: quiet hours, blackout, rate limit (verdict hold); JSON gives until",
    ),
    ("6", "needs more valid reviewer approvals (verdict review)"),
    ("7", "frozen (verdict frozen)"),
    (
        "8",
        "credentials missing, expired beyond refresh, revoked, or keychain unavailable",
    ),
    (
        "9",
        "the network refused or could not be reached; the post was not sent",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "GATE_POLICY",
        "The policy file, when --policy is not given (before ./gate.toml or the nearest parent's).",
    ),
    (
        "GATE_HOME",
        "The local state folder: journal, audit trail, freeze and locks. Default: $XDG_STATE_HOME/gate, else ~/.local/state/gate.",
    ),
    (
        "GATE_STATE_URL",
        "The team state store shared by every machine, ahead of the policy's [state] url. This version of gate does not read it yet: state is local, under GATE_HOME.",
    ),
    (
        "GATE_KEYCHAIN",
        "The keychain backend for tokens: secret-service or keyutils. Unset: gate chooses.",
    ),
    (
        "XDG_CONFIG_HOME",
        "Where the last policy lookup looks: $XDG_CONFIG_HOME/gate/gate.toml (default ~/.config).",
    ),
    (
        "XDG_STATE_HOME",
        "The parent of the default state folder (default ~/.local/state).",
    ),
    (
        "XDG_RUNTIME_DIR",
        "Where the per-user lock folder lives when it is set.",
    ),
    ("NO_COLOR", "When set, no colour is printed."),
];

const FILES: &[(&str, &str)] = &[
    (
        "gate.toml",
        "The policy: in the current folder or the nearest parent, else $XDG_CONFIG_HOME/gate/gate.toml.",
    ),
    (
        "*.post.toml",
        "Post files: text, accounts, media and reviewers' approvals.",
    ),
    (
        "$GATE_HOME/journal.sqlite3",
        "The delivery journal and the hash-chained audit trail.",
    ),
    (
        "$GATE_HOME/freeze.json",
        "The freeze made with gate freeze on this state folder.",
    ),
];

pub fn run(ctx: &crate::commands::Ctx, args: &ManArgs) -> Result<Code, Error> {
    let mut cmd = Cli::command();
    cmd.build();
    match &args.out {
        None => {
            ctx.print.bytes(&page(&cmd)?)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::other(format!("cannot create `{}`: {e}", dir.display()))
                    .with_hint("pass `--out` a folder you can write to")
            })?;
            write_all(&cmd, dir)?;
        }
    }
    Ok(Code::Ok)
}

/// `cmd`'s page and every subcommand's, recursively.
fn write_all(cmd: &clap::Command, dir: &Path) -> Result<(), Error> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page(cmd)?)
        .map_err(|e| Error::other(format!("cannot write `{}`: {e}", path.display())))?;
    // clap's own `help` subcommand gets no page: `gate help post` shows what `gate-post.1` does.
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_all(sub, dir)?;
    }
    Ok(())
}

/// One page in roff: clap's sections, then EXIT STATUS, ENVIRONMENT and FILES.
fn page(cmd: &clap::Command) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .source(format!("gate {}", env!("CARGO_PKG_VERSION")))
        .manual("gate manual")
        .render(&mut out)
        .map_err(|e| Error::other(format!("cannot write the man page: {e}")))?;
    let mut roff = Roff::new();
    for (title, items) in [
        ("EXIT STATUS", EXIT_STATUS),
        ("ENVIRONMENT", ENVIRONMENT),
        ("FILES", FILES),
    ] {
        roff.control("SH", [title]);
        for (term, text) in items {
            roff.control("TP", []);
            roff.text([bold(*term)]);
            roff.text([roman(*text)]);
        }
    }
    out.extend_from_slice(roff.to_roff().as_bytes());
    Ok(out)
}
