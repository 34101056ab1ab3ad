//! The setup the end-to-end areas start from: a sandbox whose policy names an account on a
//! network (a fake Mastodon or X of `fake`, or the real PDS), signed in through a keychain of
//! its own or one the test shares. [`Policy`] writes the policy, [`Builder`] makes the signed-in
//! sandbox, [`Fake`] is the frequent case of one fresh fake server behind it. The helpers below
//! drive a gate process to a fault or pause point and collect what it wrote.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, ChildStderr, Stdio};

use super::keychain::{SessionBus, canary};
use super::{Run, Sandbox};
use crate::fake::{Kind, Server};

/// A policy with one account: `version = 1`, an optional `timezone`, the account's
/// `platform`, `server` and optional `handle`, then any text the test adds.
pub struct Policy {
    timezone: Option<String>,
    account: String,
    platform: String,
    server: String,
    handle: Option<String>,
    extra: String,
}

impl Policy {
    pub fn new(account: &str, platform: &str, server: &str) -> Policy {
        Policy {
            timezone: None,
            account: account.to_owned(),
            platform: platform.to_owned(),
            server: server.to_owned(),
            handle: None,
            extra: String::new(),
        }
    }

    pub fn timezone(mut self, zone: &str) -> Policy {
        self.timezone = Some(zone.to_owned());
        self
    }

    pub fn handle(mut self, handle: &str) -> Policy {
        self.handle = Some(handle.to_owned());
        self
    }

    /// Text after the account's table (more tables, or more keys for the account).
    pub fn then(mut self, extra: &str) -> Policy {
        self.extra.push_str(extra);
        self
    }

    pub fn text(&self) -> String {
        let mut text = String::from("version = 1\n");
        if let Some(zone) = &self.timezone {
            text.push_str(&format!("timezone = \"{zone}\"\n"));
        }
        text.push_str(&format!(
            "\n[accounts.{}]\nplatform = \"{}\"\nserver = \"{}\"\n",
            self.account, self.platform, self.server
        ));
        if let Some(handle) = &self.handle {
            text.push_str(&format!("handle = \"{handle}\"\n"));
        }
        text.push_str(&self.extra);
        text
    }
}

/// Where the sandbox's credentials go.
pub enum Keychain<'a> {
    /// None: the test needs no credential (or shows what happens without one).
    None,
    /// A private gnome-keyring of the sandbox's own, kept by the setup.
    Own,
    /// A keychain the test started and shares between sandboxes.
    On(&'a SessionBus),
}

/// How an account signs in.
pub enum Login {
    /// `gate auth login ACCOUNT --with-token`, the token on stdin.
    Token(String),
    /// `gate auth login ACCOUNT --app-password`, the password and a newline on stdin.
    AppPassword(String),
}

/// A signed-in sandbox, built in one order: variables, the policy, the keychain, each login.
pub struct Builder<'a> {
    policy: String,
    keychain: Keychain<'a>,
    vars: Vec<(String, String)>,
    logins: Vec<(String, Login)>,
    patient: bool,
}

impl<'a> Builder<'a> {
    pub fn new(policy: impl Into<String>) -> Builder<'a> {
        Builder {
            policy: policy.into(),
            keychain: Keychain::None,
            vars: Vec::new(),
            logins: Vec::new(),
            patient: false,
        }
    }

    pub fn keychain(mut self, keychain: Keychain<'a>) -> Builder<'a> {
        self.keychain = keychain;
        self
    }

    pub fn var(mut self, name: &str, value: impl Into<String>) -> Builder<'a> {
        self.vars.push((name.to_owned(), value.into()));
        self
    }

    pub fn login(mut self, account: &str, login: Login) -> Builder<'a> {
        self.logins.push((account.to_owned(), login));
        self
    }

    pub fn token(self, account: &str, token: &str) -> Builder<'a> {
        self.login(account, Login::Token(token.to_owned()))
    }

    pub fn app_password(self, account: &str, password: &str) -> Builder<'a> {
        self.login(account, Login::AppPassword(password.to_owned()))
    }

    /// Tries a login again (three times at the most, a second apart) while a keyring that has
    /// just started on a loaded machine does not answer in time: for tests about sending, not
    /// about sign-in.
    pub fn patient(mut self) -> Builder<'a> {
        self.patient = true;
        self
    }

    /// The sandbox, and the keychain when it is its own.
    pub fn build(self) -> (Sandbox, Option<SessionBus>) {
        let mut sandbox = Sandbox::new();
        for (name, value) in &self.vars {
            sandbox.set_var(name, value.clone());
        }
        sandbox.write("gate.toml", &self.policy);
        let own = match self.keychain {
            Keychain::None => None,
            Keychain::Own => {
                let bus = SessionBus::with_gnome_keyring();
                bus.attach(&mut sandbox);
                Some(bus)
            }
            Keychain::On(bus) => {
                bus.attach(&mut sandbox);
                None
            }
        };
        for (account, login) in &self.logins {
            let run = sign_in(&sandbox, account, login, self.patient);
            assert_eq!(run.code, 0, "{run:?}");
        }
        (sandbox, own)
    }
}

fn sign_in(sandbox: &Sandbox, account: &str, login: &Login, patient: bool) -> Run {
    let (args, stdin) = match login {
        Login::Token(token) => (["auth", "login", account, "--with-token"], token.to_owned()),
        Login::AppPassword(password) => (
            ["auth", "login", account, "--app-password"],
            format!("{password}\n"),
        ),
    };
    let mut run = sandbox.run_with_stdin(&args, &stdin);
    if patient {
        for _ in 0..3 {
            if run.code == 0 || !run.stderr.contains("did not answer within") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
            run = sandbox.run_with_stdin(&args, &stdin);
        }
    }
    run
}

/// A fresh fake server and a sandbox whose policy names it.
pub struct Fake {
    pub sandbox: Sandbox,
    pub server: Server,
    pub bus: Option<SessionBus>,
}

impl Fake {
    /// Starts a fake `kind` server with a new token; the policy is made from its URL; each of
    /// `accounts` signs in with the token (when `keychain` is not [`Keychain::None`]).
    pub fn start(
        kind: Kind,
        keychain: Keychain<'_>,
        accounts: &[&str],
        policy: impl FnOnce(&str) -> String,
    ) -> Fake {
        let token = canary();
        let server = Server::start(kind, &token);
        let signs_in = !matches!(keychain, Keychain::None);
        let mut builder = Builder::new(policy(&server.url)).keychain(keychain);
        if signs_in {
            for account in accounts {
                builder = builder.token(account, &token);
            }
        }
        let (sandbox, bus) = builder.build();
        Fake {
            sandbox,
            server,
            bus,
        }
    }

    /// Runs gate and checks that the token shows nowhere in what it printed.
    pub fn run(&self, args: &[&str]) -> Run {
        let run = self.sandbox.run(args);
        self.no_token(&run);
        run
    }

    pub fn no_token(&self, run: &Run) {
        let token = self.server.token();
        assert!(
            !run.stdout.contains(token) && !run.stderr.contains(token),
            "the token leaked: {run:?}"
        );
    }
}

impl Sandbox {
    /// Starts gate with `args` and `GATE_TEST_FAULT=point`, waits until it reaches the point,
    /// and SIGKILLs it there.
    pub fn kill_at(&self, args: &[&str], point: &str) {
        let mut child = self
            .command(args)
            .env("GATE_TEST_FAULT", point)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            seen.push_str(&line);
            if line.contains(&format!("gate-test-fault: {point}")) {
                break;
            }
            line.clear();
        }
        assert!(
            seen.contains(&format!("gate-test-fault: {point}")),
            "gate never reached `{point}`: {seen}"
        );
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "gate was not killed: {status:?}");
    }
}

/// Waits until `child` has written `needle` on stderr; returns the rest of its stderr.
pub fn wait_for(child: &mut Child, needle: &str) -> BufReader<ChildStderr> {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap_or(0) > 0 {
        seen.push_str(&line);
        if line.contains(needle) {
            return stderr;
        }
        line.clear();
    }
    panic!("gate never wrote `{needle}`: {seen}");
}

/// Waits for a child [`wait_for`] has read from: its exit, its stdout and the rest of stderr.
pub fn finish(mut child: Child, mut stderr: BufReader<ChildStderr>) -> Run {
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    let mut stdout = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
    let status = child.wait().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: rest,
    }
}
