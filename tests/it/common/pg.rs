//! A real PostgreSQL server for the tests: Debian's binaries (`/usr/lib/postgresql/*/bin`),
//! a fresh cluster in a temporary folder, run as an ordinary user (`nobody` when the tests run
//! as root: `initdb` refuses root), trust authentication for the role `gate`, listening on
//! 127.0.0.1 only. One server per test binary, started on first use, one database per test;
//! a watchdog stops the server and removes its folder when the test process ends. A test that
//! needs it fails loudly when it cannot be started.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Pg {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// The ordinary user the server runs as, when the tests run as root.
    user: Option<&'static str>,
}

static SERVER: OnceLock<Pg> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The test binary's server (started on first use).
pub fn server() -> &'static Pg {
    SERVER.get_or_init(Pg::start)
}

fn bin_dir() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .filter(|b| b.join("initdb").exists())
                .max()
        });
    found.unwrap_or_else(|| {
        panic!(
            "PostgreSQL is required by this test and is not installed (no /usr/lib/postgresql/*/bin/initdb); `.ci/run` installs Debian's `postgresql`"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pg {
    /// A server of the test's own (for tests that restart it); stopped when dropped.
    pub fn own() -> Pg {
        Pg::start_with(None)
    }

    /// A server of the test's own where the role `gate` signs in over TCP with `password`
    /// (SCRAM-SHA-256); stopped when dropped.
    pub fn with_password(password: &str) -> Pg {
        Pg::start_with(Some(password))
    }

    fn start() -> Pg {
        Pg::start_with(None)
    }

    fn start_with(password: Option<&str>) -> Pg {
        let bin = bin_dir();
        let root = rustix_is_root();
        let user = root.then_some("nobody");
        let dir = tempfile::Builder::new()
            .prefix("gate-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if let Some(user) = user {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(&dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "cannot hand {} to {user}", dir.display());
        }
        let port = free_port();
        let pg = Pg {
            dir,
            port,
            bin,
            user,
        };
        let data = pg.dir.join("data");
        let mut initdb = pg.as_server(&pg.bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "gate", "-E", "UTF8", "--no-sync"]);
        match password {
            None => {
                initdb.arg("--auth=trust");
            }
            Some(password) => {
                let file = pg.dir.join("pwfile");
                std::fs::write(&file, password).unwrap();
                if let Some(user) = pg.user {
                    Command::new("chown").arg(user).arg(&file).status().unwrap();
                }
                initdb
                    .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                    .arg(format!("--pwfile={}", file.display()));
            }
        }
        let out = initdb.output().unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.pg_ctl(&["start", "-w"]);
        pg.watchdog();
        pg
    }

    fn as_server(&self, program: &Path) -> Command {
        match self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off -c max_connections=200",
            self.dir.display(),
            self.port
        );
        let out = self
            .as_server(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("log"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server and removes its folder once this test process is gone.
    fn watchdog(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            stop = match self.user {
                Some(user) => format!("runuser -u {user} -- {}", self.bin.join("pg_ctl").display()),
                None => self.bin.join("pg_ctl").display().to_string(),
            },
            data = self.dir.join("data").display(),
            dir = self.dir.display(),
        );
        // Left running on purpose: it outlives this process to stop the server after it.
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server's watchdog starts");
    }

    /// A new, empty database for one test; its URL (no password: trust on loopback).
    pub fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://gate@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    /// psql over the server's Unix socket (trusted on every server these tests start).
    fn psql(&self, db: &str, sql: &str) -> std::process::Output {
        Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "gate"])
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-XAtq", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs SQL in `db` with psql; its output, unaligned.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = self.psql(db, sql);
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs SQL that is expected to fail; its error.
    pub fn sql_fails(&self, db: &str, sql: &str) -> String {
        let out = self.psql(db, sql);
        assert!(!out.status.success(), "psql {sql} succeeded");
        String::from_utf8_lossy(&out.stderr).trim().to_owned()
    }

    /// Kills every other session on `db` (`pg_terminate_backend`); how many.
    pub fn terminate(&self, db: &str) -> usize {
        self.sql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            ),
        )
        .parse()
        .unwrap()
    }

    /// `pg_ctl restart -m immediate`: every session dies, the server comes back.
    pub fn restart_immediate(&self) {
        self.pg_ctl(&["restart", "-m", "immediate", "-w"]);
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .as_server(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "immediate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The database name in a URL from [`Pg::database`].
pub fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap().split('?').next().unwrap()
}

fn rustix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
