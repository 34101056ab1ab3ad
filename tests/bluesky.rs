//! Bluesky against a real PDS on loopback (`test-peers/pds`) and the real Secret Service on a
//! private bus: app-password sign-in, online status, refresh, logout, and the adapter
//! publishing posts with facets and images exactly once.

mod common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::keychain::{SessionBus, assert_no_file_holds};
use common::pds::{self, Account as PdsAccount, Pds};
use common::{Run, Sandbox};
use gate::platforms::bluesky::{self, Bluesky};
use gate::platforms::{Media, Outgoing, Platform, SendError};
use serde_json::Value;

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// One test's world: a keychain on a private bus, a sandbox whose policy names a bluesky
/// account `bsky` on the shared PDS, and that account's app password.
struct World {
    bus: SessionBus,
    s: Sandbox,
    pds: &'static Pds,
    alice: PdsAccount,
    app_password: String,
    /// The keychain user gate stores the session under.
    user: String,
}

fn world() -> World {
    let pds = pds::shared();
    let alice = pds.create_account("alice");
    let app_password = pds.app_password(&alice, "gate");
    let bus = SessionBus::with_gnome_keyring();
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    s.write(
        "gate.toml",
        &format!(
            "version = 1\ntimezone = \"Europe/London\"\n\n[accounts.bsky]\nplatform = \"bluesky\"\nserver = \"{}\"\nhandle = \"{}\"\n",
            pds.url, alice.handle
        ),
    );
    let user = format!("bsky@{}", pds.url.trim_start_matches("http://"));
    World {
        bus,
        s,
        pds,
        alice,
        app_password,
        user,
    }
}

impl World {
    fn login(&self) -> Run {
        self.s.run_with_stdin(
            &["auth", "login", "bsky", "--app-password"],
            &format!("{}\n", self.app_password),
        )
    }

    /// What the keychain holds for the account, read by the Secret Service's own client.
    fn stored(&self) -> Value {
        let out = self
            .bus
            .secret_tool(&["lookup", "service", "gate", "username", &self.user], "");
        assert!(
            out.status.success(),
            "nothing stored for {}: {out:?}",
            self.user
        );
        serde_json::from_slice(&out.stdout).expect("a JSON credential")
    }

    /// Replaces what the keychain holds (as another process or a tampering user could).
    fn store(&self, credential: &Value) {
        let clear = self
            .bus
            .secret_tool(&["clear", "service", "gate", "username", &self.user], "");
        assert!(clear.status.success(), "{clear:?}");
        let out = self.bus.secret_tool(
            &[
                "store",
                "--label",
                "gate test",
                "service",
                "gate",
                "username",
                &self.user,
            ],
            &credential.to_string(),
        );
        assert!(out.status.success(), "{out:?}");
    }

    fn account(&self) -> gate::policy::Account {
        gate::policy::Account {
            name: "bsky".into(),
            platform: gate::policy::Platform::Bluesky,
            server: self.pds.url.clone(),
            handle: Some(self.alice.handle.clone()),
            reviewers_required: None,
            max_chars: None,
            banned_terms: Default::default(),
            oauth: Default::default(),
        }
    }

    /// A session made by the library's own sign-in (`gate auth login --app-password` runs the
    /// same code). The Secret Service store reads the bus address from the process
    /// environment, which a test may not change, so in-process tests do not read the keychain:
    /// `usable_session` is exercised through the binary (`gate auth status`).
    fn session(&self) -> gate::credential::Credential {
        bluesky::session::create_session(
            &self.account(),
            &self.alice.handle,
            &secrecy::SecretString::from(self.app_password.clone()),
        )
        .expect("signed in")
    }
}

fn assert_clean(run: &Run, secret: &str) {
    assert!(
        !run.stdout.contains(secret),
        "stdout shows a secret: {run:?}"
    );
    assert!(
        !run.stderr.contains(secret),
        "stderr shows a secret: {run:?}"
    );
}

fn refresh_with(pds: &Pds, refresh_jwt: &str) -> u16 {
    reqwest::blocking::Client::new()
        .post(format!(
            "{}/xrpc/com.atproto.server.refreshSession",
            pds.url
        ))
        .bearer_auth(refresh_jwt)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn app_password_login_stores_a_session_that_status_checks_online_and_logout_ends() {
    let w = world();

    let login = w.login();
    assert_eq!(login.code, 0, "{login:?}");
    assert_eq!(login.stdout, "");
    assert!(
        login.stderr.starts_with(&format!(
            "signed in to {} as `{}` (did:plc:",
            w.user.trim_start_matches("bsky@"),
            w.alice.handle
        )),
        "{login:?}"
    );
    assert!(
        login.stderr.contains("the app password was not stored"),
        "{login:?}"
    );
    assert_clean(&login, &w.app_password);

    // The keychain holds the session, never the app password.
    let stored = w.stored();
    assert_eq!(stored["v"], 1);
    assert_eq!(stored["identity"], w.alice.handle.as_str());
    assert_eq!(stored["extra"]["did"], w.alice.did.as_str());
    assert_eq!(stored["scopes"], serde_json::json!(["com.atproto.appPass"]));
    let access = stored["access_token"].as_str().unwrap().to_owned();
    let refresh = stored["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("eyJ") && refresh.starts_with("eyJ"));
    assert_ne!(access, refresh);
    let expires: chrono::DateTime<chrono::Utc> =
        stored["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(
        expires > chrono::Utc::now() + chrono::TimeDelta::minutes(10),
        "expiry from the JWT: {expires}"
    );
    assert!(!stored.to_string().contains(&w.app_password));

    // Another process uses it: the server confirms who it is.
    let status = w.s.run(&["--json", "auth", "status", "bsky"]);
    assert_eq!(status.code, 0, "{status:?}");
    let row = &status.json()["accounts"][0];
    assert_eq!(row["checked_online"], true, "{status:?}");
    assert_eq!(row["usable"], true);
    assert_eq!(row["identity"], w.alice.handle.as_str());
    let human = w.s.run(&["auth", "status", "bsky"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(
        human
            .stdout
            .contains(&format!("identity: {}", w.alice.handle)),
        "{human:?}"
    );
    assert!(!human.stderr.contains("not checked"), "{human:?}");
    for run in [&status, &human] {
        assert_clean(run, &access);
        assert_clean(run, &refresh);
    }

    // Logout ends the session at the server, then forgets it.
    let logout = w.s.run(&["--json", "auth", "logout", "bsky"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    assert_eq!(logout.json()["revoked"], true, "{logout:?}");
    assert_eq!(logout.json()["removed"], true);
    assert_eq!(
        refresh_with(w.pds, &refresh),
        400,
        "the refresh token still works after logout"
    );
    let gone = w
        .bus
        .secret_tool(&["lookup", "service", "gate", "username", &w.user], "");
    assert!(!gone.status.success(), "{gone:?}");
    let after = w.s.run(&["auth", "status", "bsky"]);
    assert_eq!(after.code, 8, "{after:?}");
    assert_no_file_holds(&w.s, &w.app_password);
    assert_no_file_holds(&w.s, &refresh);
}

#[test]
fn a_wrong_app_password_or_missing_handle_is_a_clear_error() {
    let w = world();
    let wrong = w.s.run_with_stdin(
        &["auth", "login", "bsky", "--app-password"],
        "aaaa-bbbb-cccc-dddd\n",
    );
    assert_eq!(wrong.code, 8, "{wrong:?}");
    assert!(
        wrong.stderr.starts_with(&format!(
            "error: {} refused the sign-in of `{}`: AuthenticationRequired (401): Invalid identifier or password\n  hint: check the handle and the app password",
            w.user.trim_start_matches("bsky@"),
            w.alice.handle
        )),
        "{wrong:?}"
    );
    let empty =
        w.s.run_with_stdin(&["auth", "login", "bsky", "--app-password"], "\n");
    assert_eq!(empty.code, 2, "{empty:?}");
    assert_eq!(
        empty.stderr,
        "error: no app password given\n  hint: pipe in only the app password, e.g. `gate auth login bsky --app-password < app-password.txt`\n"
    );
    w.s.write(
        "gate.toml",
        &w.s.read("gate.toml")
            .replace(&format!("handle = \"{}\"\n", w.alice.handle), ""),
    );
    let no_handle = w.s.run_with_stdin(
        &["auth", "login", "bsky", "--app-password"],
        &w.app_password,
    );
    assert_eq!(no_handle.code, 2, "{no_handle:?}");
    assert_eq!(
        no_handle.stderr,
        "error: bluesky account `bsky` has no `handle`\n  hint: add `handle = \"brand.bsky.social\"` to `[accounts.bsky]` in the policy\n"
    );
}

#[test]
fn the_app_password_never_shows_in_argv_environ_output_or_files() {
    let w = world();
    let mut child =
        w.s.command(&["auth", "login", "bsky", "--app-password"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let pid = child.id();
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
    stdin.write_all(w.app_password.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let session = w.stored();
    let secrets = [
        w.app_password.as_str(),
        session["access_token"].as_str().unwrap(),
        session["refresh_token"].as_str().unwrap(),
    ];
    for secret in secrets {
        for (what, bytes) in [
            ("cmdline", &cmdline),
            ("environ", &environ),
            ("stdout", &out.stdout),
            ("stderr", &out.stderr),
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{what} holds a secret"
            );
        }
    }
    for args in [
        &["auth", "status"][..],
        &["--json", "auth", "status", "bsky"],
        &["-v", "auth", "status"],
    ] {
        let run = w.s.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        for secret in secrets {
            assert_clean(&run, secret);
        }
    }
    // A refused refresh's error holds no token either.
    let mut expired = w.stored();
    expired["expires_at"] = "2000-01-01T00:00:00Z".into();
    w.store(&expired);
    let revoke = w.pds.procedure(
        "com.atproto.server.revokeAppPassword",
        Some(&w.alice.access_jwt),
        &serde_json::json!({"name": "gate"}),
    );
    assert_eq!(revoke, Value::Null);
    let refused = w.s.run(&["-v", "auth", "status", "bsky"]);
    assert_eq!(refused.code, 8, "{refused:?}");
    for secret in secrets {
        assert_clean(&refused, secret);
        assert_no_file_holds(&w.s, secret);
    }
}

#[test]
fn an_expiring_session_is_refreshed_into_the_keychain_and_a_revoked_one_is_exit_8() {
    let w = world();
    let login = w.login();
    assert_eq!(login.code, 0, "{login:?}");
    let first = w.stored();

    // Make the access token look expired: the next use refreshes it, under the lock, and the
    // new session is in the keychain.
    let mut expired = first.clone();
    expired["expires_at"] = "2000-01-01T00:00:00Z".into();
    w.store(&expired);
    let status = w.s.run(&["--json", "auth", "status", "bsky"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(status.json()["accounts"][0]["checked_online"], true);
    let second = w.stored();
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "the refresh token rotated"
    );
    // (The access JWT may equal the old one: the PDS signs the same claims within one second.)
    let expires: chrono::DateTime<chrono::Utc> =
        second["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > chrono::Utc::now() + chrono::TimeDelta::minutes(10));
    assert_eq!(second["extra"]["did"], w.alice.did.as_str());
    assert!(
        w.s.path()
            .join("state/locks")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "the refresh took a lock"
    );

    // A fresh session is used as it is: no refresh.
    let again = w.s.run(&["--json", "auth", "status", "bsky"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(w.stored()["refresh_token"], second["refresh_token"]);

    // The PDS keeps a used app-password refresh token valid for a grace period (2 hours), so
    // a replay within it is not refused: gate's lock is what keeps refreshes one at a time.
    // A revoked app password ends every session made with it: the refresh is refused, exit 8.
    let revoke = w.pds.procedure(
        "com.atproto.server.revokeAppPassword",
        Some(&w.alice.access_jwt),
        &serde_json::json!({"name": "gate"}),
    );
    assert_eq!(revoke, Value::Null);
    let mut expired = second.clone();
    expired["expires_at"] = "2000-01-01T00:00:00Z".into();
    w.store(&expired);
    let refused = w.s.run(&["auth", "status", "bsky"]);
    assert_eq!(refused.code, 8, "{refused:?}");
    assert_eq!(
        refused.stderr,
        format!(
            "error: {} refused to refresh the session of `bsky`: ExpiredToken (400): Token has been revoked\n  \
             hint: sign in again with `gate auth login bsky --app-password` (make an app password under Settings → Privacy and security → App passwords)\n",
            w.user.trim_start_matches("bsky@")
        )
    );
    // The refused session is left as it was, for the user to replace.
    assert_eq!(w.stored()["refresh_token"], second["refresh_token"]);
}

#[test]
fn a_post_with_a_link_a_mention_a_tag_and_an_image_is_published_exactly_once() {
    let w = world();
    let bob = w.pds.create_account("bob");

    let session = w.session();
    let adapter = Bluesky::new(&w.account(), &session).unwrap();
    assert_eq!(adapter.whoami().unwrap(), w.alice.handle);

    let text = format!(
        "Ünïcödé 🎉 launch: https://example.com/news?id=1 with @{} #GateLaunch!",
        bob.handle
    );
    let media = [Media {
        name: "dot.png".into(),
        bytes: PNG.to_vec(),
        mime: "image/png".into(),
        alt: Some("A single blue dot".into()),
    }];
    let key = adapter.new_key();
    let post = Outgoing {
        text: &text,
        media: &media,
        reply_to: None,
        language: Some("en"),
        key: &key,
        visibility: None,
        progress: &gate::platforms::Progress::HIDDEN,
    };
    let published = adapter.publish(&post).expect("published");
    assert_eq!(
        published.id,
        format!("at://{}/app.bsky.feed.post/{key}", w.alice.did)
    );
    assert_eq!(
        published.url,
        format!("https://bsky.app/profile/{}/post/{key}", w.alice.handle)
    );

    // Read it back from the PDS.
    let got = w
        .pds
        .query(
            "com.atproto.repo.getRecord",
            &[
                ("repo", &w.alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &key),
            ],
        )
        .expect("the record exists");
    let record = &got["value"];
    assert_eq!(record["text"], text.as_str());
    assert_eq!(record["langs"], serde_json::json!(["en"]));
    // Byte offsets, found here independently of gate's detector.
    let at = |needle: &str| {
        let start = text.find(needle).unwrap();
        serde_json::json!({"byteStart": start, "byteEnd": start + needle.len()})
    };
    let mention = format!("@{}", bob.handle);
    assert_eq!(
        record["facets"],
        serde_json::json!([
            {"index": at("https://example.com/news?id=1"), "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/news?id=1"}]},
            {"index": at(&mention), "features": [{"$type": "app.bsky.richtext.facet#mention", "did": bob.did}]},
            {"index": at("#GateLaunch"), "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "GateLaunch"}]},
        ])
    );
    assert_eq!(
        at("https://example.com/news?id=1")["byteStart"],
        25,
        "the accents and emoji count in bytes"
    );
    let images = &record["embed"]["images"];
    assert_eq!(record["embed"]["$type"], "app.bsky.embed.images");
    assert_eq!(images.as_array().unwrap().len(), 1);
    assert_eq!(images[0]["alt"], "A single blue dot");
    assert_eq!(images[0]["image"]["mimeType"], "image/png");
    assert_eq!(images[0]["image"]["size"], PNG.len());

    // The identical retry (say, after a timeout) is a no-op: one record, the same answer.
    let again = adapter.publish(&post).expect("the retry succeeds");
    assert_eq!(again, published);
    assert_eq!(adapter.find(&post).unwrap(), Some(published.clone()));
    let list = w
        .pds
        .query(
            "com.atproto.repo.listRecords",
            &[("repo", &w.alice.did), ("collection", "app.bsky.feed.post")],
        )
        .unwrap();
    assert_eq!(list["records"].as_array().unwrap().len(), 1, "{list}");

    // Another text under a used key never overwrites the post.
    let other = Outgoing {
        text: "something else",
        media: &[],
        reply_to: None,
        language: None,
        key: &key,
        visibility: None,
        progress: &gate::platforms::Progress::HIDDEN,
    };
    match adapter.publish(&other) {
        Err(SendError::Refused {
            status: 409,
            message,
        }) => {
            assert_eq!(
                message,
                format!("another post already has the record key `{key}`")
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        w.pds
            .query(
                "com.atproto.repo.getRecord",
                &[
                    ("repo", &w.alice.did),
                    ("collection", "app.bsky.feed.post"),
                    ("rkey", &key)
                ]
            )
            .unwrap()["value"]["text"],
        text.as_str()
    );

    // A reply names its parent and the thread's root.
    let reply_key = adapter.new_key();
    let reply = Outgoing {
        text: "a reply",
        media: &[],
        reply_to: Some(&published.id),
        language: None,
        key: &reply_key,
        visibility: None,
        progress: &gate::platforms::Progress::HIDDEN,
    };
    adapter.publish(&reply).expect("the reply is published");
    let got = w
        .pds
        .query(
            "com.atproto.repo.getRecord",
            &[
                ("repo", &w.alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &reply_key),
            ],
        )
        .unwrap();
    assert_eq!(
        got["value"]["reply"]["parent"]["uri"],
        published.id.as_str()
    );
    assert_eq!(got["value"]["reply"]["root"]["uri"], published.id.as_str());

    // Too many or too large images are refused before anything is uploaded.
    let big = [Media {
        name: "big.png".into(),
        bytes: vec![0; 1_000_001],
        mime: "image/png".into(),
        alt: None,
    }];
    let too_big = Outgoing {
        text: "big",
        media: &big,
        reply_to: None,
        language: None,
        key: &adapter.new_key(),
        visibility: None,
        progress: &gate::platforms::Progress::HIDDEN,
    };
    match adapter.publish(&too_big) {
        Err(SendError::Refused { status: 0, message }) => {
            assert_eq!(
                message,
                "`big.png` is 1000001 bytes; Bluesky takes images of at most 1000000 bytes"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Delete removes it; find then finds nothing.
    adapter.delete(&published.id).unwrap();
    assert_eq!(adapter.find(&post).unwrap(), None);
    let (status, body) = w
        .pds
        .query(
            "com.atproto.repo.getRecord",
            &[
                ("repo", &w.alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &key),
            ],
        )
        .unwrap_err();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("RecordNotFound"))
    );
}

#[test]
fn an_unresolvable_mention_stays_plain_text() {
    let w = world();
    let session = w.session();
    let adapter = Bluesky::new(&w.account(), &session).unwrap();
    let key = adapter.new_key();
    let post = Outgoing {
        text: "hi @nobody-here.test",
        media: &[],
        reply_to: None,
        language: None,
        key: &key,
        visibility: None,
        progress: &gate::platforms::Progress::HIDDEN,
    };
    adapter.publish(&post).unwrap();
    let got = w
        .pds
        .query(
            "com.atproto.repo.getRecord",
            &[
                ("repo", &w.alice.did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", &key),
            ],
        )
        .unwrap();
    assert_eq!(got["value"].get("facets"), None, "{got}");
}

#[test]
fn a_handle_belongs_only_to_bluesky_accounts() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\ntimezone = \"UTC\"\n\n[accounts.m]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\nhandle = \"m.example\"\n\n[accounts.b]\nplatform = \"bluesky\"\nhandle = \"brand.bsky.social\"\n",
    );
    let run = s.run(&["policy", "check", "--json"]);
    assert_eq!(run.code, 3, "{run:?}");
    let d = &run.json()["diagnostics"];
    assert_eq!(d.as_array().unwrap().len(), 1, "{run:?}");
    assert_eq!(
        (d[0]["line"].as_u64(), d[0]["column"].as_u64()),
        (Some(7), Some(10))
    );
    assert_eq!(
        d[0]["message"],
        "`handle` is only for bluesky accounts; `m` is not one"
    );
    // `--app-password` is for bluesky accounts only.
    s.write(
        "gate.toml",
        &s.read("gate.toml").replace("handle = \"m.example\"\n", ""),
    );
    let run = s.run(&["auth", "login", "m", "--app-password"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: `--app-password` is for bluesky accounts; `m` is a mastodon account\n  hint: use `gate auth login m --with-token`\n"
    );
}

/// `gate post` end to end on Bluesky: the session from `gate auth login --app-password`, the
/// record created through the adapter, and a second run printing the same URL without a
/// second record.
#[test]
fn gate_post_publishes_to_bluesky_once() {
    let w = world();
    assert_eq!(w.login().code, 0);
    let text = "Version 2.0 is out: https://example.com/releases #launch";
    let first = w.s.run(&["post", "--yes", "--account", "bsky", text]);
    assert_eq!(first.code, 0, "{first:?}");
    let url = first.stdout.trim().to_owned();
    assert!(
        url.starts_with(&format!(
            "https://bsky.app/profile/{}/post/",
            w.alice.handle
        )),
        "{first:?}"
    );
    let again = w.s.run(&["post", "--yes", "--account", "bsky", text]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.stdout.trim(), url);

    let records = w
        .pds
        .query(
            "com.atproto.repo.listRecords",
            &[
                ("repo", w.alice.did.as_str()),
                ("collection", "app.bsky.feed.post"),
            ],
        )
        .expect("listRecords");
    let records = records["records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["value"]["text"], text);
    let rkey = url.rsplit('/').next().unwrap();
    assert!(
        records[0]["uri"].as_str().unwrap().ends_with(rkey),
        "{records:?}"
    );
}

#[test]
fn gate_retract_deletes_the_record_gate_posted() {
    let w = world();
    assert_eq!(w.login().code, 0);
    let list = || {
        let records = w
            .pds
            .query(
                "com.atproto.repo.listRecords",
                &[
                    ("repo", w.alice.did.as_str()),
                    ("collection", "app.bsky.feed.post"),
                ],
            )
            .expect("listRecords");
        records["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| r["value"]["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let keep =
        w.s.run(&["post", "--yes", "--account", "bsky", "This one stays"]);
    assert_eq!(keep.code, 0, "{keep:?}");
    let gone =
        w.s.run(&["post", "--yes", "--account", "bsky", "This one goes"]);
    assert_eq!(gone.code, 0, "{gone:?}");
    let url = gone.stdout.trim().to_owned();
    assert_eq!(list().len(), 2);

    let run = w.s.run(&["retract", "bsky", "--last", "--yes"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout.trim(), url);
    assert_eq!(list(), vec!["This one stays".to_owned()]);

    // Again: the journal answers; the PDS is not asked to delete anything.
    let again = w.s.run(&["retract", "bsky", &url, "--yes"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stderr.starts_with("already retracted from `bsky`"),
        "{again:?}"
    );
    assert_eq!(list(), vec!["This one stays".to_owned()]);
}

// ---------------------------------------------------------------------------------------------
// Exactly once, under faults, against the real PDS.

/// What the proxy does to the next `com.atproto.repo.putRecord` once armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The request is read in full, then the connection is closed without forwarding it:
    /// no post is made, and gate cannot tell.
    BeforeForward,
    /// The request goes to the PDS, its whole answer is read, then the client's connection is
    /// closed without a reply: the post is made, and gate cannot tell.
    AfterResponse,
}

/// A TCP proxy on 127.0.0.1 in front of the PDS, one HTTP request per connection (it asks the
/// PDS for `Connection: close` and relays that). Everything passes through untouched except an
/// armed `putRecord`. It stops when dropped or after [`PROXY_LIFETIME`], whichever is first.
struct Proxy {
    url: String,
    armed: std::sync::Arc<std::sync::Mutex<Option<Cut>>>,
    /// Every `putRecord` seen, in order: the cut applied to it, and the PDS's status (none when
    /// it never reached the PDS).
    puts: std::sync::Arc<std::sync::Mutex<Vec<Put>>>,
    /// Requests the proxy could not relay (malformed, chunked, PDS unreachable).
    broken: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const PROXY_LIFETIME: Duration = Duration::from_secs(600);
const PROXY_IO_TIMEOUT: Duration = Duration::from_secs(30);

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let upstream = upstream
            .strip_prefix("http://")
            .expect("the PDS is plain http on loopback")
            .trim_end_matches('/')
            .to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let proxy = Proxy {
            url,
            armed: Arc::new(Mutex::new(None)),
            puts: Arc::new(Mutex::new(Vec::new())),
            broken: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (armed, puts, broken, stop) = (
            proxy.armed.clone(),
            proxy.puts.clone(),
            proxy.broken.clone(),
            proxy.stop.clone(),
        );
        std::thread::spawn(move || {
            let deadline = Instant::now() + PROXY_LIFETIME;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (upstream, armed, puts, broken) = (
                            upstream.clone(),
                            armed.clone(),
                            puts.clone(),
                            broken.clone(),
                        );
                        std::thread::spawn(move || {
                            if let Err(e) = relay(client, &upstream, &armed, &puts) {
                                broken.lock().unwrap().push(e.to_string());
                            }
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => broken.lock().unwrap().push(format!("accept: {e}")),
                }
            }
        });
        proxy
    }

    fn arm(&self, cut: Cut) {
        *self.armed.lock().unwrap() = Some(cut);
    }

    fn puts(&self) -> Vec<Put> {
        self.puts.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Relays one request: reads it whole, applies an armed cut to a `putRecord`, else forwards it
/// with `Connection: close` and copies the PDS's answer back byte for byte.
fn relay(
    client: std::net::TcpStream,
    upstream: &str,
    armed: &std::sync::Mutex<Option<Cut>>,
    puts: &std::sync::Mutex<Vec<Put>>,
) -> std::io::Result<()> {
    use std::io::{BufRead as _, Read as _};
    let broken = |what: String| std::io::Error::other(what);
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(PROXY_IO_TIMEOUT))?;
    client.set_write_timeout(Some(PROXY_IO_TIMEOUT))?;
    let mut reader = std::io::BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            // Closed before a whole request (e.g. an idle connection): nothing to relay.
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let mut length = 0;
    for line in &head[1..] {
        let (name, value) = line.split_once(':').ok_or_else(|| broken(line.clone()))?;
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().map_err(|_| broken(line.clone()))?;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(broken(format!("unsupported request: {line}")));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let put = head[0].starts_with("POST /xrpc/com.atproto.repo.putRecord ");
    let cut = if put {
        armed.lock().unwrap().take()
    } else {
        None
    };
    if cut == Some(Cut::BeforeForward) {
        puts.lock().unwrap().push((cut, None));
        client.shutdown(std::net::Shutdown::Both)?;
        return Ok(());
    }
    let mut pds = std::net::TcpStream::connect(upstream)?;
    pds.set_read_timeout(Some(PROXY_IO_TIMEOUT))?;
    let mut request = head[0].clone().into_bytes();
    for line in &head[1..] {
        let name = line.split_once(':').map_or("", |(n, _)| n);
        if !name.eq_ignore_ascii_case("connection") {
            request.extend_from_slice(line.as_bytes());
        }
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request.extend_from_slice(&body);
    pds.write_all(&request)?;
    let mut answer = Vec::new();
    pds.read_to_end(&mut answer)?;
    let status = answer
        .strip_prefix(b"HTTP/1.1 ")
        .and_then(|rest| {
            std::str::from_utf8(rest.get(..3)?)
                .ok()?
                .parse::<u16>()
                .ok()
        })
        .ok_or_else(|| broken(format!("no HTTP answer to {}", head[0].trim())))?;
    if put {
        puts.lock().unwrap().push((cut, Some(status)));
    }
    if cut == Some(Cut::AfterResponse) {
        client.shutdown(std::net::Shutdown::Both)?;
        return Ok(());
    }
    (&client).write_all(&answer)?;
    client.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}

/// A `putRecord` the proxy saw: the cut applied, the PDS's status if it got there.
type Put = (Option<Cut>, Option<u16>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    DropBeforeCreate,
    DropAfterCreate,
    KillAfterJournal,
    KillAfterPublish,
}

const FAULT_RUNS: usize = 52;

/// Starts `gate post` with a fault point, waits until it reaches it, and SIGKILLs it there.
fn kill_at(s: &Sandbox, text: &str, point: &str) {
    use std::io::BufRead as _;
    let mut child = s
        .command(&["post", "--yes", "--account", "bsky", text])
        .env("GATE_TEST_FAULT", point)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
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

/// Every post record of `did`, page by page.
fn all_posts(pds: &Pds, did: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut params = vec![
            ("repo", did),
            ("collection", bluesky::POST),
            ("limit", "100"),
        ];
        if !cursor.is_empty() {
            params.push(("cursor", cursor.as_str()));
        }
        let page = pds
            .query("com.atproto.repo.listRecords", &params)
            .expect("listRecords");
        let batch = page["records"].as_array().expect("records").clone();
        if batch.is_empty() {
            break;
        }
        records.extend(batch);
        match page["cursor"].as_str() {
            Some(next) if next != cursor => cursor = next.to_owned(),
            _ => break,
        }
    }
    records
}

/// 52 `gate post` runs through a proxy in front of the real PDS, 13 under each fault: the
/// `putRecord` connection dropped before the PDS sees it, or after the PDS made the post but
/// before gate hears; SIGKILL between the journal and the publish, or between the publish and
/// the journal. Each post has its own text; after the faulted run `gate post` runs again. The
/// PDS must then hold each text exactly once, and every run that finished must have printed
/// that record's URL.
#[test]
fn gate_post_to_bluesky_never_duplicates_or_loses_a_post_under_faults() {
    let started = Instant::now();
    let mut w = world();
    let proxy = Proxy::start(&w.pds.url);
    w.s.write(
        "gate.toml",
        &w.s.read("gate.toml").replace(&w.pds.url, &proxy.url),
    );
    w.user = format!("bsky@{}", proxy.url.trim_start_matches("http://"));
    let login = w.login();
    assert_eq!(login.code, 0, "{login:?}");
    let session = w.stored();
    let secrets = [
        w.app_password.clone(),
        session["access_token"].as_str().unwrap().to_owned(),
        session["refresh_token"].as_str().unwrap().to_owned(),
    ];
    let post = |text: &str| {
        let run = w.s.run(&["post", "--yes", "--account", "bsky", text]);
        for secret in &secrets {
            assert_clean(&run, secret);
        }
        assert_eq!(run.code, 0, "{text}: {run:?}");
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one URL on stdout: {run:?}");
        (lines[0].to_owned(), run)
    };

    let modes = [
        Injected::DropBeforeCreate,
        Injected::DropAfterCreate,
        Injected::KillAfterJournal,
        Injected::KillAfterPublish,
    ];
    let mut per_mode = [0usize; 4];
    let mut texts = Vec::new();
    let mut unexpected = Vec::new();
    for i in 0..FAULT_RUNS {
        let mode = modes[i % modes.len()];
        per_mode[i % modes.len()] += 1;
        let text = format!("Release note {i} for Bluesky ({mode:?})");
        let mut urls = Vec::new();
        let before = proxy.puts().len();
        match mode {
            Injected::DropBeforeCreate | Injected::DropAfterCreate => {
                let cut = if mode == Injected::DropBeforeCreate {
                    Cut::BeforeForward
                } else {
                    Cut::AfterResponse
                };
                proxy.arm(cut);
                let (url, run) = post(&text);
                assert!(
                    run.stderr.contains(&format!("sent to `bsky`: {url}")),
                    "run {i}: {run:?}"
                );
                urls.push(url);
            }
            Injected::KillAfterJournal => kill_at(&w.s, &text, "after-journal"),
            Injected::KillAfterPublish => kill_at(&w.s, &text, "after-publish"),
        }
        // Run again: what the first run left is resolved, never sent twice.
        let (url, run) = post(&text);
        let how = if mode == Injected::KillAfterJournal || mode == Injected::KillAfterPublish {
            "an earlier attempt to send to `bsky` did not finish"
        } else {
            "already sent to `bsky`"
        };
        assert!(run.stderr.contains(how), "run {i}: {run:?}");
        // The fault happened as described, and nothing wrote the post twice: a dropped request
        // is sent again once; a post made but unanswered, or killed before its journal entry,
        // is found by `getRecord`, not written again.
        let want: &[Put] = match mode {
            Injected::DropBeforeCreate => &[(Some(Cut::BeforeForward), None), (None, Some(200))],
            Injected::DropAfterCreate => &[(Some(Cut::AfterResponse), Some(200))],
            Injected::KillAfterJournal | Injected::KillAfterPublish => &[(None, Some(200))],
        };
        let got = proxy.puts()[before..].to_vec();
        if got != want {
            unexpected.push(format!(
                "run {i} ({mode:?}): putRecord {got:?}, want {want:?}"
            ));
        }
        urls.push(url);
        texts.push((text, urls));
    }

    let records = all_posts(w.pds, &w.alice.did);
    let (mut duplicates, mut lost, mut wrong_url) = (0, 0, 0);
    for (text, urls) in &texts {
        let matching: Vec<&Value> = records
            .iter()
            .filter(|r| r["value"]["text"] == text.as_str())
            .collect();
        match matching.len() {
            0 => lost += 1,
            1 => {
                let uri = matching[0]["uri"].as_str().unwrap();
                let rkey = uri.rsplit('/').next().unwrap();
                let want = format!("https://bsky.app/profile/{}/post/{rkey}", w.alice.handle);
                wrong_url += urls.iter().filter(|u| **u != want).count();
            }
            _ => duplicates += 1,
        }
    }
    eprintln!(
        "bluesky (real PDS): {FAULT_RUNS} faulted runs (drop before create {}, drop after create {}, SIGKILL after journal {}, SIGKILL after publish {}): {duplicates} duplicates, {lost} lost, {wrong_url} wrong URLs; {} records on the PDS; {:.1} s",
        per_mode[0],
        per_mode[1],
        per_mode[2],
        per_mode[3],
        records.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!((duplicates, lost, wrong_url), (0, 0, 0));
    assert_eq!(records.len(), FAULT_RUNS, "no stray records");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert!(
        proxy.broken.lock().unwrap().is_empty(),
        "the proxy could not relay: {:?}",
        proxy.broken.lock().unwrap()
    );
}

/// `gate post` with `language` and `reply_to`, read back from the PDS: `langs`, and a reply's
/// `parent` and thread `root` as strong references (DID-form URI and CID), whether the parent
/// is named by its bsky.app address (a handle) or its at:// URI.
#[test]
fn gate_post_sends_language_and_replies_to_bluesky() {
    let w = world();
    assert_eq!(w.login().code, 0);
    let record = |url: &str| {
        let rkey = url.rsplit('/').next().unwrap().to_owned();
        w.pds
            .query(
                "com.atproto.repo.getRecord",
                &[
                    ("repo", w.alice.did.as_str()),
                    ("collection", "app.bsky.feed.post"),
                    ("rkey", &rkey),
                ],
            )
            .expect("getRecord")
    };
    w.s.write(
        "root.post.toml",
        "account = \"bsky\"\ntext = \"Olá, mundo\"\nlanguage = \"pt-BR\"\n",
    );
    let run = w.s.run(&["post", "--yes", "--file", "root.post.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let root_url = run.stdout.trim().to_owned();
    let root = record(&root_url);
    assert_eq!(root["value"]["langs"], serde_json::json!(["pt-BR"]));
    assert!(root["value"].get("reply").is_none(), "{root}");
    let root_ref = serde_json::json!({"uri": root["uri"], "cid": root["cid"]});
    assert!(
        root["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("at://{}/", w.alice.did))
    );

    // A reply by the address gate printed (it names the handle, not the DID).
    assert!(root_url.contains(&w.alice.handle), "{root_url}");
    w.s.write(
        "reply.post.toml",
        &format!("account = \"bsky\"\ntext = \"A reply\"\nreply_to = \"{root_url}\"\n"),
    );
    let run = w.s.run(&["post", "--yes", "--file", "reply.post.toml"]);
    assert_eq!(run.code, 0, "{run:?}");
    let reply_url = run.stdout.trim().to_owned();
    let reply = record(&reply_url);
    assert_eq!(reply["value"]["reply"]["parent"], root_ref);
    assert_eq!(reply["value"]["reply"]["root"], root_ref);
    assert!(reply["value"].get("langs").is_none(), "{reply}");

    // A reply to the reply, by its at:// URI and the flags: the root stays the thread's first
    // post, the parent is the reply.
    let reply_uri = reply["uri"].as_str().unwrap().to_owned();
    let run = w.s.run(&[
        "post",
        "--yes",
        "--account",
        "bsky",
        "--reply-to",
        &reply_uri,
        "--language",
        "en",
        "Deeper",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let deeper = record(run.stdout.trim());
    assert_eq!(
        deeper["value"]["reply"]["parent"],
        serde_json::json!({"uri": reply_uri, "cid": reply["cid"]})
    );
    assert_eq!(deeper["value"]["reply"]["root"], root_ref);
    assert_eq!(deeper["value"]["langs"], serde_json::json!(["en"]));

    // A parent that does not exist: refused by the PDS before anything is written (exit 9).
    let run = w.s.run(&[
        "post",
        "--yes",
        "--account",
        "bsky",
        "--reply-to",
        &format!("at://{}/app.bsky.feed.post/3zzzzzzzzzzzz", w.alice.did),
        "To nothing",
    ]);
    assert_eq!(run.code, 9, "{run:?}");
    let listed = w
        .pds
        .query(
            "com.atproto.repo.listRecords",
            &[
                ("repo", w.alice.did.as_str()),
                ("collection", "app.bsky.feed.post"),
            ],
        )
        .expect("listRecords");
    assert_eq!(listed["records"].as_array().unwrap().len(), 3);
}
