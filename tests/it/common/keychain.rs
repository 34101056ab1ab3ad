//! Private keychains for tests: a session bus of the test's own (`dbus-daemon`) with, when
//! asked, an unlocked gnome-keyring Secret Service on it, isolated by a temporary
//! `XDG_DATA_HOME` and `XDG_RUNTIME_DIR`. Everything started here is killed on drop. A
//! missing tool fails the test loudly; `.ci/run` installs them.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Sandbox, require_tool};

pub struct SessionBus {
    dir: tempfile::TempDir,
    bus: Child,
    daemon: Option<Child>,
    /// `DBUS_SESSION_BUS_ADDRESS` for processes that should use this bus.
    pub address: String,
}

/// A bus that only the test uses, with no service activation: nothing starts unless the
/// test starts it.
fn bus_config(socket: &std::path::Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

impl SessionBus {
    /// A session bus with nobody providing `org.freedesktop.secrets` on it.
    pub fn without_provider() -> SessionBus {
        require_tool("dbus-daemon");
        require_tool("dbus-send");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&dir.path().join("bus"))).unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon starts");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed no address: {line:?}"
        );
        SessionBus {
            dir,
            bus,
            daemon: None,
            address,
        }
    }

    /// A session bus with gnome-keyring's Secret Service on it, its login keyring created
    /// and unlocked with a password, ready for `org.freedesktop.secrets` calls.
    pub fn with_gnome_keyring() -> SessionBus {
        require_tool("gnome-keyring-daemon");
        require_tool("secret-tool");
        let mut bus = SessionBus::without_provider();
        let data = bus.dir.path().join("data");
        let runtime = bus.dir.path().join("runtime");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let log = std::fs::File::create(bus.dir.path().join("gnome-keyring.log")).unwrap();
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("XDG_DATA_HOME", &data)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("gnome-keyring-daemon starts");
        // The password must be non-empty; a wrong one would only fail later.
        let mut stdin = daemon.stdin.take().unwrap();
        stdin.write_all(b"test-keyring-password").unwrap();
        drop(stdin);
        bus.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let owned = bus.dbus_send(&[
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ]);
            if String::from_utf8_lossy(&owned.stdout).contains("boolean true") {
                let alias = bus.dbus_send(&[
                    "--dest=org.freedesktop.secrets",
                    "/org/freedesktop/secrets",
                    "org.freedesktop.Secret.Service.ReadAlias",
                    "string:default",
                ]);
                if String::from_utf8_lossy(&alias.stdout).contains("/collection/") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring did not come up on the test bus; its log:\n{}",
                std::fs::read_to_string(bus.dir.path().join("gnome-keyring.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        bus
    }

    /// `dbus-send --session --print-reply ARGS…` against this bus.
    pub fn dbus_send(&self, args: &[&str]) -> Output {
        Command::new("dbus-send")
            .args(["--session", "--print-reply"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("dbus-send runs")
    }

    /// Locks the login keyring, as a screen lock or `seahorse` would.
    pub fn lock_login_keyring(&self) {
        let out = self.dbus_send(&[
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ]);
        assert!(
            out.status.success(),
            "Lock failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `secret-tool ARGS…` on this bus, with `stdin`.
    pub fn secret_tool(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new("secret-tool")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("secret-tool runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// The JSON document gate keeps for keychain user `user` (service `gate`).
    pub fn stored(&self, user: &str) -> serde_json::Value {
        let out = self.secret_tool(&["lookup", "service", "gate", "username", user], "");
        assert!(out.status.success(), "nothing stored for {user}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Stores `doc` for keychain user `user` (service `gate`), as another program could.
    pub fn store(&self, user: &str, doc: &serde_json::Value) {
        let out = self.secret_tool(
            &[
                "store",
                "--label=gate test",
                "service",
                "gate",
                "username",
                user,
            ],
            &doc.to_string(),
        );
        assert!(out.status.success(), "{out:?}");
    }

    /// Points the sandbox's gate processes at this bus.
    pub fn attach(&self, sandbox: &mut Sandbox) {
        sandbox.set_var("DBUS_SESSION_BUS_ADDRESS", self.address.clone());
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        if let Some(daemon) = &mut self.daemon {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// A token no test output, file or process entry may ever show.
pub fn canary() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("gate-canary-{}-{nanos:x}", std::process::id())
}

/// Fails when any file under the sandbox (GATE_HOME, HOME, every XDG folder) holds `needle`.
pub fn assert_no_file_holds(sandbox: &Sandbox, needle: &str) {
    for entry in walkdir(sandbox.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "`{}` holds the token",
            entry.display()
        );
    }
}

fn walkdir(root: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
