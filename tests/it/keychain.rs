//! `gate auth` against real keychains: gnome-keyring's Secret Service on a private session
//! bus, and the kernel keyring under `keyctl session -`. A token stored by one gate process
//! must be read by another (an in-memory store would fail this), peers must see what gate
//! stored, and no token may show in output, files or `/proc`.

use crate::common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::keychain::{SessionBus, assert_no_file_holds, canary};
use common::{Run, Sandbox, require_tool, run_command};

const POLICY: &str = r#"version = 1
timezone = "Europe/London"

[accounts.brand]
platform = "mastodon"
server = "https://mastodon.example"

[accounts.bsky]
platform = "bluesky"
"#;

const USER: &str = "brand@mastodon.example";

fn sandbox() -> Sandbox {
    let s = Sandbox::new();
    s.write("gate.toml", POLICY);
    s
}

/// The kernel keyrings gate's keyutils store links into (session and the user's persistent
/// keyring) are shared by every process of the user: each keyutils test names its own host.
fn sandbox_with_unique_host() -> (Sandbox, String) {
    let host = format!("{}.example", canary());
    let s = Sandbox::new();
    s.write("gate.toml", &POLICY.replace("mastodon.example", &host));
    (s, format!("brand@{host}"))
}

fn sandbox_on(bus: &SessionBus) -> Sandbox {
    let mut s = sandbox();
    bus.attach(&mut s);
    s
}

/// No token in a run's output.
fn assert_clean(run: &Run, token: &str) {
    assert!(
        !run.stdout.contains(token),
        "stdout shows the token: {run:?}"
    );
    assert!(
        !run.stderr.contains(token),
        "stderr shows the token: {run:?}"
    );
}

// ---------------------------------------------------------------- Secret Service

#[test]
fn secret_service_token_stored_by_one_process_is_read_by_another_and_by_secret_tool() {
    let bus = SessionBus::with_gnome_keyring();
    let s = sandbox_on(&bus);
    let token = canary();

    let login = s.run_with_stdin(
        &["auth", "login", "brand", "--with-token"],
        &format!("{token}\n"),
    );
    assert_eq!(login.code, 0, "{login:?}");
    assert_eq!(login.stdout, "");
    assert_eq!(
        login.stderr,
        format!(
            "stored a token for `brand` in the Secret Service keyring (service `gate`, user `{USER}`)\n"
        )
    );

    // Another process reads it.
    let status = s.run(&["auth", "status", "brand", "--json", "--offline"]);
    assert_eq!(status.code, 0, "{status:?}");
    let doc = status.json();
    assert_eq!(doc["keychain"], "secret-service");
    let row = &doc["accounts"][0];
    assert_eq!(row["account"], "brand");
    assert_eq!(row["user"], USER);
    assert_eq!(row["present"], true);
    assert_eq!(row["usable"], true);
    assert_eq!(row["stored_in"], "secret-service");
    assert_eq!(row["expires_at"], serde_json::Value::Null);
    assert_eq!(row["checked_online"], false);

    let human = s.run(&["auth", "status", "--offline"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert_eq!(
        human.stdout,
        format!(
            "brand (mastodon, user `{USER}`): stored in the Secret Service keyring\n  expires: never\n  scopes: not recorded\n  identity: not recorded\n\
             bsky (bluesky, user `bsky@bsky.social`): no token stored\n"
        )
    );
    assert_eq!(human.stderr, "");

    // The peer sees the item under service `gate`, user `brand@host`.
    let lookup = bus.secret_tool(&["lookup", "service", "gate", "username", USER], "");
    assert!(lookup.status.success(), "{lookup:?}");
    let stored: serde_json::Value = serde_json::from_slice(&lookup.stdout).unwrap();
    assert_eq!(stored["v"], 1);
    assert_eq!(stored["access_token"], token.as_str());

    // Logging in again replaces, never duplicates.
    let again = s.run_with_stdin(
        &["auth", "login", "brand", "--with-token", "--json"],
        &token,
    );
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.json()["replaced"], true);

    let logout = s.run(&["auth", "logout", "brand", "--offline"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    assert!(
        logout
            .stderr
            .starts_with("removed the token for `brand` from the Secret Service keyring\n"),
        "{logout:?}"
    );
    let gone = bus.secret_tool(&["lookup", "service", "gate", "username", USER], "");
    assert!(!gone.status.success() && gone.stdout.is_empty(), "{gone:?}");
    let after = s.run(&["auth", "status", "brand", "--offline"]);
    assert_eq!(after.code, 8, "{after:?}");
    assert_eq!(
        after.stderr,
        "error: `brand` has no usable token: no token stored\n  hint: run `gate auth login brand`\n"
    );
    let again = s.run(&["auth", "logout", "brand", "--offline"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        again.stderr,
        "no token for `brand` was stored in the Secret Service keyring\n"
    );

    for run in [&login, &status, &human, &logout, &after] {
        assert_clean(run, &token);
    }
    assert_no_file_holds(&s, &token);
}

#[test]
fn secret_service_reads_what_secret_tool_stored() {
    let bus = SessionBus::with_gnome_keyring();
    let s = sandbox_on(&bus);

    // gate's own JSON form, written by another program.
    let json = r#"{"v":1,"access_token":"from-secret-tool","expires_at":"2099-01-01T00:00:00Z","scopes":["read","write:statuses"],"identity":"@brand@mastodon.example"}"#;
    let store = bus.secret_tool(
        &[
            "store",
            "--label=gate brand",
            "service",
            "gate",
            "username",
            USER,
        ],
        json,
    );
    assert!(store.status.success(), "{store:?}");
    let status = s.run(&["auth", "status", "brand", "--json", "--offline"]);
    assert_eq!(status.code, 0, "{status:?}");
    let row = &status.json()["accounts"][0];
    assert_eq!(row["usable"], true);
    assert_eq!(row["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(row["scopes"], serde_json::json!(["read", "write:statuses"]));
    assert_eq!(row["identity"], "@brand@mastodon.example");
    assert!(!status.stdout.contains("from-secret-tool"));

    // A bare token works too.
    let store = bus.secret_tool(
        &[
            "store",
            "--label=gate bsky",
            "service",
            "gate",
            "username",
            "bsky@bsky.social",
        ],
        "bare-token",
    );
    assert!(store.status.success(), "{store:?}");
    let status = s.run(&["auth", "status", "bsky", "--offline"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.starts_with(
            "bsky (bluesky, user `bsky@bsky.social`): stored in the Secret Service keyring\n"
        ),
        "{status:?}"
    );

    // An expired one is there but not usable: exit 8 for a named account.
    let expired = r#"{"v":1,"access_token":"old","expires_at":"2020-01-01T00:00:00Z"}"#;
    bus.secret_tool(
        &[
            "store",
            "--label=gate brand",
            "service",
            "gate",
            "username",
            USER,
        ],
        expired,
    );
    let status = s.run(&["auth", "status", "brand", "--offline"]);
    assert_eq!(status.code, 8, "{status:?}");
    assert!(
        status
            .stdout
            .contains("stored in the Secret Service keyring, but expired at 2020-01-01T00:00:00Z"),
        "{status:?}"
    );
    assert!(
        status
            .stderr
            .starts_with("error: `brand` has no usable token: expired at 2020-01-01T00:00:00Z\n"),
        "{status:?}"
    );
}

#[test]
fn no_session_bus_is_exit_8_with_the_fix() {
    let mut s = sandbox();
    s.set_var("GATE_KEYCHAIN", "secret-service");
    let run = s.run(&["auth", "status", "--offline"]);
    assert_eq!(run.code, 8, "{run:?}");
    let runtime = s.path().join("runtime").join("bus");
    assert_eq!(
        run.stderr,
        format!(
            "error: no keychain is reachable: Secret Service: no D-Bus session bus (`DBUS_SESSION_BUS_ADDRESS` is not set \
             and there is no `{}`)\n  hint: run gate in your desktop session, or start a session bus with a Secret Service \
             in it (`dbus-run-session`, then `gnome-keyring-daemon --unlock`); gate never keeps tokens in a file\n",
            runtime.display()
        )
    );
    assert_eq!(run.stdout, "");
    // The same for login, before it reads any token.
    let login = s.run_with_stdin(&["auth", "login", "brand", "--with-token"], "never-read");
    assert_eq!(login.code, 8, "{login:?}");
    assert_no_file_holds(&s, "never-read");
}

#[test]
fn a_bus_without_a_secret_service_is_exit_8_with_the_fix() {
    let bus = SessionBus::without_provider();
    let mut s = sandbox_on(&bus);
    s.set_var("GATE_KEYCHAIN", "secret-service");
    let run = s.run(&["auth", "status", "--json", "--offline"]);
    assert_eq!(run.code, 8, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: no keychain is reachable: Secret Service: no provider owns org.freedesktop.secrets on the session bus\n  \
         hint: start gnome-keyring-daemon (or KeePassXC's Secret Service) in your session; gate never keeps tokens in a file\n"
    );
    assert_eq!(run.json()["error"]["code"], 8);

    // Without forcing, keyutils is tried next; outside a session keyring of its own it is absent too.
    require_no_own_session_keyring();
    s.vars.retain(|(n, _)| n != "GATE_KEYCHAIN");
    let run = s.run(&["auth", "status", "--offline"]);
    assert_eq!(run.code, 8, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: no keychain is reachable: Secret Service: no provider owns org.freedesktop.secrets on the session bus; \
         kernel keyutils: this process has no session keyring of its own (only the user default, which cannot read keys back)\n  \
         hint: start gnome-keyring-daemon (or KeePassXC's Secret Service) in your session, or run gate under \
         `keyctl session -` to use the kernel keyring; gate never keeps tokens in a file\n"
    );
}

#[test]
fn a_locked_keyring_is_exit_8_and_never_prompts() {
    let bus = SessionBus::with_gnome_keyring();
    let s = sandbox_on(&bus);
    let token = canary();
    let login = s.run_with_stdin(&["auth", "login", "brand", "--with-token"], &token);
    assert_eq!(login.code, 0, "{login:?}");
    bus.lock_login_keyring();

    let hint = "  hint: unlock the keyring (log in to your desktop session, or `printf %s \"$PASSWORD\" | gnome-keyring-daemon \
                --unlock`) and run gate again; gate never shows an unlock prompt\n";
    let started = Instant::now();
    let status = s.run(&["auth", "status", "--offline"]);
    assert_eq!(status.code, 8, "{status:?}");
    assert_eq!(
        status.stderr,
        format!("error: the Secret Service keyring `Login` is locked\n{hint}")
    );
    let relogin = s.run_with_stdin(&["auth", "login", "brand", "--with-token"], "other-token");
    assert_eq!(relogin.code, 8, "{relogin:?}");
    assert_eq!(relogin.stderr, status.stderr);
    let logout = s.run(&["auth", "logout", "brand", "--offline"]);
    assert_eq!(logout.code, 8, "{logout:?}");
    // An unlock prompt would wait for a person (or fail slowly); gate asks for none.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    for run in [&login, &status, &relogin, &logout] {
        assert_clean(run, &token);
    }
}

#[test]
fn a_bus_that_never_answers_times_out_with_exit_8() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mute");
    // Accepts connections into its backlog and never speaks.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut s = sandbox();
    s.set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}", socket.display()),
    );
    // Debug builds only: the stuck keyring is given up on after 3 s, not the 10 s a user waits.
    s.set_var("GATE_TEST_KEYCHAIN_WAIT", "3");
    let started = Instant::now();
    let run = s.run(&["auth", "status", "--offline"]);
    let took = started.elapsed();
    assert_eq!(run.code, 8, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: the Secret Service keyring did not answer within 3 s\n"),
        "{run:?}"
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
}

// ---------------------------------------------------------------- kernel keyutils

/// Runs `script` under `keyctl session -` with the sandbox's environment; the token, when
/// given, is fed on stdin and read into an unexported shell variable `t`.
fn in_key_session(s: &Sandbox, script: &str, token: &str) -> Run {
    require_tool("keyctl");
    let mut cmd = s.program("keyctl");
    cmd.args([
        "session",
        "-",
        "sh",
        "-ec",
        &format!("IFS= read -r t || true\n{script}"),
    ]);
    run_command(cmd, &format!("{token}\n"))
}

#[test]
fn keyutils_token_stored_by_one_process_is_read_by_the_next() {
    let (mut s, user) = sandbox_with_unique_host();
    s.set_var("GATE_KEYCHAIN", "keyutils");
    s.set_var("USER_NAME", user.clone());
    let token = canary();
    let run = in_key_session(
        &s,
        r#"printf '%s\n' "$t" | "$GATE" auth login brand --with-token
"$GATE" auth status brand --json --offline
echo ---
keyctl print "$(keyctl search @s user "keyring:$USER_NAME@gate")" | grep -c "$t"
"$GATE" auth logout brand --offline
"$GATE" auth status brand --offline || echo "status exit $?""#,
        &token,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let (json, rest) = run.stdout.split_once("---\n").unwrap();
    let doc: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(doc["keychain"], "keyutils");
    assert_eq!(doc["accounts"][0]["usable"], true);
    assert_eq!(doc["accounts"][0]["stored_in"], "keyutils");
    // The kernel key holds gate's JSON with the token (counted, not printed).
    assert_eq!(
        rest,
        format!("1\nbrand (mastodon, user `{user}`): no token stored\nstatus exit 8\n"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("stored a token for `brand` in the kernel keyutils session keyring"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("removed the token for `brand` from the kernel keyutils session keyring"),
        "{run:?}"
    );
    assert_clean(&run, &token);
    assert_no_file_holds(&s, &token);
}

#[test]
fn without_a_secret_service_gate_falls_back_to_keyutils() {
    let (s, user) = sandbox_with_unique_host(); // no bus at all, nothing forced
    let token = canary();
    let run = in_key_session(
        &s,
        r#"printf '%s\n' "$t" | "$GATE" auth login brand --with-token
"$GATE" auth status brand --offline
"$GATE" auth logout brand"#,
        &token,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let want =
        format!("brand (mastodon, user `{user}`): stored in the kernel keyutils session keyring\n");
    assert!(run.stdout.starts_with(&want), "{run:?}");
    assert_clean(&run, &token);
}

/// The cases "outside a session keyring" need a test runner without one of its own (CI,
/// containers, cron); a desktop login with pam_keyinit has one.
fn require_no_own_session_keyring() {
    require_tool("keyctl");
    let out = std::process::Command::new("keyctl")
        .args(["rdescribe", "@s"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(";_uid_ses."),
        "this test must run without a session keyring of its own (as in CI or a container); \
         `keyctl rdescribe @s` says: {text}"
    );
}

#[test]
fn keyutils_outside_a_session_keyring_is_exit_8_with_the_fix() {
    require_no_own_session_keyring();
    let mut s = sandbox();
    s.set_var("GATE_KEYCHAIN", "keyutils");
    let run = s.run(&["auth", "status", "--offline"]);
    assert_eq!(run.code, 8, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: no keychain is reachable: kernel keyutils: this process has no session keyring of its own (only the user \
         default, which cannot read keys back)\n  hint: run gate under `keyctl session -` to use the kernel keyring; gate \
         never keeps tokens in a file\n"
    );
}

// ---------------------------------------------------------------- the canary

#[test]
fn the_token_never_shows_in_argv_environ_output_or_files() {
    let bus = SessionBus::with_gnome_keyring();
    let s = sandbox_on(&bus);
    let token = canary();
    let mut child = s
        .command(&["auth", "login", "brand", "--with-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the child is gate (exec done), then read its /proc entries while it runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cmdline = loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.windows(4).any(|w| w == b"auth") {
            break cmdline;
        }
        assert!(Instant::now() < deadline, "gate did not start");
        std::thread::sleep(Duration::from_millis(5));
    };
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(token.as_bytes()).unwrap();
    stdin.write_all(b"\n").unwrap();
    // While gate holds the token, its argv and environment still do not.
    let during_cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let during_environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    for (what, bytes) in [
        ("cmdline", &cmdline),
        ("environ", &environ),
        ("cmdline later", &during_cmdline),
        ("environ later", &during_environ),
        ("stdout", &out.stdout),
        ("stderr", &out.stderr),
    ] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{what} holds the token"
        );
    }
    // Every command, with and without --json and -v, keeps it out of its output.
    for args in [
        &["auth", "status", "--offline"][..],
        &["auth", "status", "brand", "--json", "--offline"],
        &["auth", "status", "-v", "--offline"],
        &["auth", "logout", "brand", "--json", "--offline"],
    ] {
        let run = s.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert_clean(&run, &token);
    }
    assert_no_file_holds(&s, &token);
}

// ---------------------------------------------------------------- usage

#[test]
fn auth_names_only_policy_accounts_and_refuses_tokens_it_cannot_use() {
    let s = sandbox();
    let run = s.run(&["auth", "logout", "brnad", "--offline"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: unknown account `brnad`\n  hint: did you mean `brand`?\n"
    );
    let run = s.run(&["auth", "login", "bsky", "--client-secret", "-"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: `--client-secret` is only for X accounts\n  hint: Bluesky's OAuth clients are public: gate binds its tokens to a DPoP key instead\n"
    );
    let mut s = s;
    s.set_var("GATE_KEYCHAIN", "plaintext");
    let run = s.run(&["auth", "status", "--offline"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: `GATE_KEYCHAIN` is `plaintext`; it must be `secret-service` or `keyutils`\n  hint: unset `GATE_KEYCHAIN` \
         to let gate choose, or set it to `secret-service` or `keyutils`\n"
    );
}

#[test]
fn login_refuses_an_empty_or_multi_word_token() {
    let bus = SessionBus::with_gnome_keyring();
    let s = sandbox_on(&bus);
    let run = s.run_with_stdin(&["auth", "login", "brand", "--with-token"], "\n");
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("error: no token given\n"), "{run:?}");
    let run = s.run_with_stdin(
        &["auth", "login", "brand", "--with-token"],
        "secret-part other-part\n",
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: the token holds whitespace or control characters\n"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("secret-part"));
    let lookup = bus.secret_tool(&["lookup", "service", "gate", "username", USER], "");
    assert!(!lookup.status.success(), "nothing stored: {lookup:?}");
}
