//! OAuth sign-in, refresh, status and logout.
//!
//! Against a real OAuth 2.0 server (oidc-provider, `test-peers/oauth/server.mjs`): an X
//! account whose `authorize_url`, `token_url` and `revoke_url` point at it, and whose `server`
//! is it too, so `GET /2/users/me` is answered by a route that asks the provider whether the
//! bearer token is valid. The test is the browser; the tokens land in a real gnome-keyring.
//!
//! Against local fakes of Mastodon and X: each documented request is checked field by field.

use crate::common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fake_http::{FakeServer, json};
use common::keychain::{SessionBus, assert_no_file_holds, canary};
use common::oauth::{Login, OAuthServer, free_port, query, s256, sign_in_as};
use common::{Run, Sandbox};

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

/// What gate stored for `user`, read with `secret-tool`.
fn stored(bus: &SessionBus, user: &str) -> serde_json::Value {
    bus.stored(user)
}

/// Rewrites the stored credential's expiry, as if its time had run out.
fn expire(bus: &SessionBus, user: &str) {
    let mut doc = bus.stored(user);
    doc["expires_at"] = "2001-01-01T00:00:00Z".into();
    bus.store(user, &doc);
}

fn no_secret_in_proc(pid: u32, secrets: &[&str]) {
    for what in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "/proc/{pid}/{what} holds a secret"
            );
        }
    }
}

// ---------------------------------------------------------------- the real OAuth server

struct Oidc {
    bus: SessionBus,
    server: OAuthServer,
    s: Sandbox,
    user: String,
    /// The loopback port of the policy's redirect.
    port: u16,
}

/// Signs `team` in through oidc-provider with the test as the browser.
fn signed_in() -> Oidc {
    let bus = SessionBus::with_gnome_keyring();
    let server = OAuthServer::start();
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    let issuer = &server.issuer;
    let port = free_port();
    s.write(
        "gate.toml",
        &format!(
            r#"version = 1

[accounts.team]
platform = "x"
server = "{issuer}"

[accounts.team.oauth]
client_id = "gate-test"
redirect_port = {port}
authorize_url = "{issuer}/i/oauth2/authorize"
token_url = "{issuer}/2/oauth2/token"
revoke_url = "{issuer}/2/oauth2/revoke"
"#
        ),
    );
    let user = sign_in(&s, &server, port);
    assert_eq!(
        server.count("grant.success authorization_code", 1),
        1,
        "{:?}",
        server.log()
    );
    Oidc {
        bus,
        server,
        s,
        user,
        port,
    }
}

/// `gate auth login team`, with the test as the browser; the keychain user it stored under.
fn sign_in(s: &Sandbox, server: &OAuthServer, port: u16) -> String {
    let issuer = &server.issuer;
    let login = Login::start(s, &["auth", "login", "team", "--timeout", "60"], None);
    let url = login.authorize_url();
    let q = query(&url);
    assert_eq!(
        q["redirect_uri"],
        format!("http://127.0.0.1:{port}/callback")
    );
    assert_eq!(q["code_challenge_method"], "S256");
    let page = sign_in_as(
        &url,
        "brand-team",
        &format!("http://127.0.0.1:{port}/callback"),
    );
    assert!(page.contains("Signed in."), "{page}");
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let host = issuer.strip_prefix("http://").unwrap();
    let user = format!("team@{host}");
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        format!(
            "signed in to `team` as @brand-team; the token is in the Secret Service keyring (service `gate`, user `{user}`)"
        )
    );
    user
}

#[test]
fn oidc_sign_in_stores_tokens_status_confirms_them_and_logout_revokes() {
    let Oidc {
        bus,
        server,
        s,
        user,
        ..
    } = signed_in();
    let doc = stored(&bus, &user);
    let access = doc["access_token"].as_str().unwrap().to_owned();
    let refresh = doc["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(doc["identity"], "@brand-team");
    assert_eq!(
        doc["scopes"],
        serde_json::json!([
            "tweet.read",
            "tweet.write",
            "users.read",
            "offline.access",
            "media.write"
        ])
    );
    let expires: chrono::DateTime<chrono::Utc> =
        doc["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(3500) && left <= chrono::Duration::seconds(3600),
        "{left}"
    );

    let status = s.run(&["auth", "status", "team", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let row = &status.json()["accounts"][0];
    assert_eq!(row["checked_online"], true);
    assert_eq!(row["identity"], "@brand-team");
    assert_eq!(server.count("users.me 200", 2), 2, "{:?}", server.log());
    assert_eq!(server.count("grant.success refresh_token", 0), 0);

    let logout = s.run(&["auth", "logout", "team"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    let host = user.split_once('@').unwrap().1;
    assert_eq!(
        logout.stderr,
        format!(
            "revoked the token for `team` at {host}\nremoved the token for `team` from the Secret Service keyring\n"
        )
    );
    assert_eq!(server.count("grant.revoked", 1), 1);
    let gone = bus.secret_tool(&["lookup", "service", "gate", "username", &user], "");
    assert!(!gone.status.success());
    // Revoking the refresh token ended the grant: the access token no longer works either.
    let me = reqwest::blocking::Client::new()
        .get(format!("{}/2/users/me", server.issuer))
        .bearer_auth(&access)
        .send()
        .unwrap();
    assert_eq!(me.status().as_u16(), 401);
    for run in [&status, &logout] {
        assert_clean(run, &access);
        assert_clean(run, &refresh);
    }
    assert_no_file_holds(&s, &access);
    assert_no_file_holds(&s, &refresh);
}

#[test]
fn oidc_expired_token_is_refreshed_once_even_by_16_processes_from_two_state_folders() {
    let Oidc {
        bus,
        server,
        s,
        user,
        ..
    } = signed_in();
    let first = stored(&bus, &user);

    // One process, an expired token: refreshed with rotation, stored before use.
    expire(&bus, &user);
    let status = s.run(&["auth", "status", "team"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(
        server.count("grant.success refresh_token", 1),
        1,
        "{:?}",
        server.log()
    );
    let second = stored(&bus, &user);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "the refresh token rotated"
    );
    assert_eq!(second["identity"], "@brand-team");
    assert!(
        status
            .stdout
            .contains("identity: @brand-team (confirmed by the server)"),
        "{status:?}"
    );

    // Sixteen processes start together on an expired token, half of them with another state
    // folder (another `GATE_HOME`, the same user and keychain): one refreshes, all succeed.
    // The lock is the keychain item's, not the state folder's.
    expire(&bus, &user);
    let other_home = s.path().join("state-2");
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut cmd = s.command(&["auth", "status", "team", "--json"]);
            if i % 2 == 1 {
                cmd.env("GATE_HOME", &other_home);
            }
            cmd.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &runs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["accounts"][0]["identity"], "@brand-team");
        assert_eq!(doc["accounts"][0]["checked_online"], true);
    }
    assert_eq!(
        server.count("grant.success refresh_token", 2),
        2,
        "{:?}",
        server.log()
    );
    assert!(
        !server.log().iter().any(|l| l.starts_with("grant.error")),
        "{:?}",
        server.log()
    );
    assert_eq!(server.count("users.me 200", 1 + 1 + 16), 1 + 1 + 16);
    let third = stored(&bus, &user);
    assert_ne!(third["refresh_token"], second["refresh_token"]);

    // Replaying a rotated refresh token makes the server revoke the grant: gate's next refresh
    // is rejected, and it says what to do.
    let replay = reqwest::blocking::Client::new()
        .post(format!("{}/2/oauth2/token", server.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "gate-test"),
            ("refresh_token", second["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .unwrap();
    assert_eq!(replay.status().as_u16(), 400);
    expire(&bus, &user);
    let rejected = s.run(&["auth", "status", "team"]);
    assert_eq!(rejected.code, 8, "{rejected:?}");
    assert!(
        rejected.stderr.ends_with(
            "error: the server refused to refresh the token for `team` (`invalid_grant`): the sign-in was revoked or has expired\n  hint: run `gate auth login team`\n"
        ),
        "{rejected:?}"
    );
    for secret in [&first, &second, &third] {
        for key in ["access_token", "refresh_token"] {
            let secret = secret[key].as_str().unwrap();
            assert_clean(&status, secret);
            assert_clean(&rejected, secret);
            for out in &runs {
                assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
                assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
            }
            assert_no_file_holds(&s, secret);
        }
    }
}

/// A `gate auth status team --json` that stops at `point` of its refresh (a debug-build
/// knob) until the test lets it go; returns the child and the folder of the handshake files.
fn paused_status(s: &Sandbox, point: &str) -> (std::process::Child, std::path::PathBuf) {
    let dir = s.path().join(format!("pause-{point}"));
    std::fs::create_dir_all(&dir).unwrap();
    let child = s
        .command(&["auth", "status", "team", "--json"])
        .env("GATE_DEBUG_PAUSE", format!("{point}:{}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = dir.join(format!("{point}.reached"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reached.exists() {
        assert!(
            Instant::now() < deadline,
            "gate never reached `{point}` of its refresh"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, dir)
}

fn go(dir: &std::path::Path, point: &str, child: std::process::Child) -> Run {
    std::fs::write(dir.join(format!("{point}.go")), "").unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[test]
fn a_refused_refresh_reads_the_keychain_again_and_uses_the_token_stored_meanwhile() {
    let Oidc {
        bus,
        server,
        s,
        user,
        port,
    } = signed_in();
    let first = stored(&bus, &user);
    expire(&bus, &user);

    // gate has read the expired token under the lock and is about to refresh it...
    let (child, dir) = paused_status(&s, "before-refresh");
    // ...when the user, in another terminal, signs out (the grant is revoked) and in again:
    // a new token is in the keychain and the one gate holds is dead.
    let logout = s.run(&["auth", "logout", "team"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    assert_eq!(server.count("grant.revoked", 1), 1, "{:?}", server.log());
    sign_in(&s, &server, port);
    let second = stored(&bus, &user);
    assert_ne!(second["refresh_token"], first["refresh_token"]);

    // The refresh is refused; gate reads the keychain again and uses the new token.
    let run = go(&dir, "before-refresh", child);
    assert_eq!(run.code, 0, "{run:?}");
    let row = &run.json()["accounts"][0];
    assert_eq!(row["checked_online"], true, "{run:?}");
    assert_eq!(row["identity"], "@brand-team");
    assert_eq!(
        server.count("grant.error invalid_grant", 1),
        1,
        "{:?}",
        server.log()
    );
    assert_eq!(server.count("grant.success refresh_token", 0), 0);
    // One identity check for each sign-in, one for the status.
    assert_eq!(server.count("users.me 200", 3), 3, "{:?}", server.log());
    let now = stored(&bus, &user);
    assert_eq!(now["refresh_token"], second["refresh_token"]);
    assert_eq!(now["access_token"], second["access_token"]);
    for secret in [&first, &second] {
        for key in ["access_token", "refresh_token"] {
            assert_clean(&run, secret[key].as_str().unwrap());
        }
    }
}

#[test]
fn a_rotated_token_the_keychain_will_not_take_says_to_sign_in_again() {
    let Oidc {
        bus,
        server,
        s,
        user,
        ..
    } = signed_in();
    let first = stored(&bus, &user);
    expire(&bus, &user);

    // The server has rotated the token; before gate stores it, the keyring is locked.
    let (child, dir) = paused_status(&s, "before-store");
    assert_eq!(
        server.count("grant.success refresh_token", 1),
        1,
        "{:?}",
        server.log()
    );
    bus.lock_login_keyring();
    let run = go(&dir, "before-store", child);
    assert_eq!(run.code, 8, "{run:?}");
    let row = &run.json()["accounts"][0];
    assert_eq!(row["usable"], false, "{run:?}");
    assert_eq!(
        row["problem"],
        format!(
            "the server rotated the token for `team` and it could not be stored: sign in again \
             (the Secret Service keyring holding `{user}` is locked)"
        )
    );
    assert!(
        run.stderr.ends_with(&format!(
            "error: the server rotated the token for `team` and it could not be stored: sign in again \
             (the Secret Service keyring holding `{user}` is locked)\n  \
             hint: make the keychain writable again (unlock a locked keyring), then run `gate auth login team`\n"
        )),
        "{run:?}"
    );
    // The token was not used: the only identity check is the sign-in's.
    assert_eq!(server.count("users.me 200", 1), 1, "{:?}", server.log());
    for key in ["access_token", "refresh_token"] {
        assert_clean(&run, first[key].as_str().unwrap());
    }
}

// ---------------------------------------------------------------- Mastodon, against a fake

const MASTODON_SCOPES: &str = "read:accounts write:statuses write:media";

#[test]
fn mastodon_sign_in_registers_an_app_and_sends_each_documented_request() {
    let bus = SessionBus::with_gnome_keyring();
    let token = canary();
    let app_secret = format!("{}-app", canary());
    let (t, a) = (token.clone(), app_secret.clone());
    let fake = FakeServer::start(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/v1/apps") => json(
            200,
            serde_json::json!({"id": "7", "name": "gate", "client_id": "mastodon-client", "client_secret": a}),
        ),
        ("POST", "/oauth/token") => json(
            200,
            serde_json::json!({"access_token": t, "token_type": "Bearer", "scope": MASTODON_SCOPES, "created_at": 1_700_000_000}),
        ),
        ("GET", "/api/v1/accounts/verify_credentials")
            if r.header("authorization") == Some(&format!("Bearer {t}")) =>
        {
            json(
                200,
                serde_json::json!({"id": "1", "username": "brand", "acct": "brand"}),
            )
        }
        ("POST", "/oauth/revoke") => json(200, serde_json::json!({})),
        _ => json(
            401,
            serde_json::json!({"error": "The access token is invalid"}),
        ),
    });
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    s.write(
        "gate.toml",
        &format!(
            "version = 1\n\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"{}\"\n",
            fake.url
        ),
    );
    let host = fake.url.strip_prefix("http://").unwrap().to_owned();
    let user = format!("brand@{host}");

    let login = Login::start(&s, &["auth", "login", "brand", "--timeout", "30"], None);
    let url = login.authorize_url();
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        format!("{}/oauth/authorize", fake.url)
    );
    let q = query(&url);
    let redirect = q["redirect_uri"].clone();
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"),
        "{redirect}"
    );
    assert_eq!(
        q.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    assert_eq!(
        (q["response_type"].as_str(), q["client_id"].as_str()),
        ("code", "mastodon-client")
    );
    assert_eq!(
        (q["scope"].as_str(), q["code_challenge_method"].as_str()),
        (MASTODON_SCOPES, "S256")
    );
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 16);
    // While gate waits for the browser it holds the app's secret: not in argv or environ.
    no_secret_in_proc(login.pid(), &[&app_secret]);
    let wrong = reqwest::blocking::get(format!("{redirect}?code=c&state=forged")).unwrap();
    assert_eq!(wrong.status().as_u16(), 400, "a forged state is refused");
    let run = login.finish();
    assert_eq!(run.code, 8, "{run:?}");
    assert!(run.stderr.ends_with(
        "error: the sign-in redirect carried the wrong `state`; it was ignored\n  hint: run the command again, and open only the newest sign-in link\n"
    ), "{run:?}");
    assert!(
        fake.to("/oauth/token").is_empty(),
        "nothing exchanged after a forged state"
    );

    // Again, for real: the app registered above is reused.
    let login = Login::start(&s, &["auth", "login", "brand", "--timeout", "30"], None);
    let url = login.authorize_url();
    let q = query(&url);
    let page = reqwest::blocking::get(format!(
        "{}?code=the-code&state={}",
        q["redirect_uri"], q["state"]
    ))
    .unwrap()
    .text()
    .unwrap();
    assert!(page.contains("Signed in."), "{page}");
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        format!(
            "signed in to `brand` as @brand@{host}; the token is in the Secret Service keyring (service `gate`, user `{user}`)"
        )
    );

    let apps = fake.to("/api/v1/apps");
    assert_eq!(apps.len(), 1, "one registration per instance");
    assert_eq!(apps[0].method, "POST");
    assert_eq!(
        apps[0].form(),
        [
            ("client_name", "gate"),
            (
                "redirect_uris",
                "http://127.0.0.1/callback\nurn:ietf:wg:oauth:2.0:oob"
            ),
            ("scopes", MASTODON_SCOPES),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    );
    let exchanges = fake.to("/oauth/token");
    assert_eq!(exchanges.len(), 1);
    let form = exchanges[0].form();
    assert_eq!(
        form.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "client_id",
            "client_secret",
            "code",
            "code_verifier",
            "grant_type",
            "redirect_uri"
        ]
    );
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the-code");
    assert_eq!(form["redirect_uri"], q["redirect_uri"]);
    assert_eq!(form["client_id"], "mastodon-client");
    assert_eq!(form["client_secret"], app_secret);
    assert_eq!(
        s256(&form["code_verifier"]),
        q["code_challenge"],
        "the verifier matches the S256 challenge"
    );
    let verify = fake.to("/api/v1/accounts/verify_credentials");
    assert_eq!(verify.len(), 1);
    assert_eq!(
        verify[0].header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );

    let doc = stored(&bus, &user);
    assert_eq!(doc["access_token"], token.as_str());
    assert_eq!(doc["identity"], format!("@brand@{host}"));
    assert_eq!(doc.get("expires_at"), None, "Mastodon tokens do not expire");
    let app = stored(&bus, &format!("app@{host}"));
    assert_eq!(
        (app["client_id"].as_str(), app["client_secret"].as_str()),
        (Some("mastodon-client"), Some(app_secret.as_str()))
    );

    // --no-browser: the out-of-band redirect and a pasted code, with the same app.
    let mut paste = Login::start(&s, &["auth", "login", "brand", "--no-browser"], None);
    let url = paste.authorize_url();
    let q2 = query(&url);
    assert_eq!(q2["redirect_uri"], "urn:ietf:wg:oauth:2.0:oob");
    use std::io::Write as _;
    paste
        .stdin
        .take()
        .unwrap()
        .write_all(b"pasted-code\n")
        .unwrap();
    let pasted = paste.finish();
    assert_eq!(pasted.code, 0, "{pasted:?}");
    let exchanges = fake.to("/oauth/token");
    assert_eq!(exchanges.len(), 2);
    assert_eq!(exchanges[1].form()["code"], "pasted-code");
    assert_eq!(
        exchanges[1].form()["redirect_uri"],
        "urn:ietf:wg:oauth:2.0:oob"
    );
    assert_eq!(fake.to("/api/v1/apps").len(), 1);

    let status = s.run(&["auth", "status", "brand"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(
        status.stdout,
        format!(
            "brand (mastodon, user `{user}`): stored in the Secret Service keyring\n  expires: never\n  scopes: {MASTODON_SCOPES}\n  identity: @brand@{host} (confirmed by the server)\n"
        )
    );

    let logout = s.run(&["auth", "logout", "brand"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    assert_eq!(
        logout.stderr,
        format!(
            "revoked the token for `brand` at {host}\nremoved the token for `brand` from the Secret Service keyring\n"
        )
    );
    let revokes = fake.to("/oauth/revoke");
    assert_eq!(revokes.len(), 1);
    assert_eq!(
        revokes[0].form(),
        [
            ("client_id", "mastodon-client"),
            ("client_secret", app_secret.as_str()),
            ("token", token.as_str()),
            ("token_type_hint", "access_token"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    );
    let after = s.run(&["auth", "status", "brand"]);
    assert_eq!(after.code, 8, "{after:?}");
    assert_eq!(
        after.stderr,
        "error: `brand` has no usable token: no token stored\n  hint: run `gate auth login brand`\n"
    );
    for r in [&run, &pasted, &status, &logout, &after] {
        assert_clean(r, &token);
        assert_clean(r, &app_secret);
    }
    assert_no_file_holds(&s, &token);
    assert_no_file_holds(&s, &app_secret);
}

#[test]
fn logout_deletes_the_token_even_when_revocation_fails_and_says_so() {
    let bus = SessionBus::with_gnome_keyring();
    let fake = FakeServer::start(|r| match r.path.as_str() {
        "/oauth/revoke" => json(503, serde_json::json!({"error": "unavailable"})),
        _ => json(404, serde_json::json!({})),
    });
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    s.write(
        "gate.toml",
        &format!(
            "version = 1\n\n[accounts.brand]\nplatform = \"mastodon\"\nserver = \"{}\"\n",
            fake.url
        ),
    );
    let host = fake.url.strip_prefix("http://").unwrap().to_owned();
    let app = r#"{"client_id":"mc","client_secret":"ms","redirect_uris":["urn:ietf:wg:oauth:2.0:oob"],"scopes":["read"]}"#;
    assert!(
        bus.secret_tool(
            &[
                "store",
                "--label=app",
                "service",
                "gate",
                "username",
                &format!("app@{host}")
            ],
            app
        )
        .status
        .success()
    );
    let login = s.run_with_stdin(&["auth", "login", "brand", "--with-token"], "tok-1");
    assert_eq!(login.code, 0, "{login:?}");
    let logout = s.run(&["auth", "logout", "brand"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    assert_eq!(
        logout.stderr,
        "could not revoke the token for `brand` at the server: the server refused the revocation (503, `unavailable`)\n\
         removed the token for `brand` from the Secret Service keyring\n  \
         note: the token was not revoked at the server; revoke it in the account's settings\n"
    );
    assert_eq!(fake.to("/oauth/revoke").len(), 1);
    let gone = bus.secret_tool(
        &[
            "lookup",
            "service",
            "gate",
            "username",
            &format!("brand@{host}"),
        ],
        "",
    );
    assert!(
        !gone.status.success(),
        "deleted even though revocation failed"
    );
}

// ---------------------------------------------------------------- X, against a fake

const X_SCOPES: &str = "tweet.read tweet.write users.read offline.access media.write";

struct FakeX {
    fake: FakeServer,
    reject_refresh: Arc<AtomicBool>,
    revoked: Arc<AtomicBool>,
}

/// X's token, users/me and revoke endpoints. Tokens are `{prefix}-access-N` / `-refresh-N`.
fn fake_x(prefix: &str) -> FakeX {
    let reject_refresh = Arc::new(AtomicBool::new(false));
    let revoked = Arc::new(AtomicBool::new(false));
    let (reject, gone, p) = (reject_refresh.clone(), revoked.clone(), prefix.to_owned());
    let issued = std::sync::Mutex::new(0);
    let fake = FakeServer::start(move |r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/2/oauth2/token") => {
            if r.form()["grant_type"] == "refresh_token" && reject.load(Ordering::Relaxed) {
                return json(
                    400,
                    serde_json::json!({"error": "invalid_grant", "error_description": "Value passed for the token was invalid."}),
                );
            }
            let mut n = issued.lock().unwrap();
            *n += 1;
            json(
                200,
                serde_json::json!({
                "token_type": "bearer", "expires_in": 7200, "scope": X_SCOPES,
                "access_token": format!("{p}-access-{n}"), "refresh_token": format!("{p}-refresh-{n}")}),
            )
        }
        ("GET", "/2/users/me")
            if !gone.load(Ordering::Relaxed)
                && r.header("authorization")
                    .is_some_and(|a| a.starts_with(&format!("Bearer {p}-access-"))) =>
        {
            json(
                200,
                serde_json::json!({"data": {"id": "2244994945", "name": "Brand", "username": "brandx"}}),
            )
        }
        ("POST", "/2/oauth2/revoke") => json(200, serde_json::json!({"revoked": true})),
        _ => json(
            401,
            serde_json::json!({"title": "Unauthorized", "status": 401}),
        ),
    });
    FakeX {
        fake,
        reject_refresh,
        revoked,
    }
}

fn x_policy(fake: &FakeServer, port: u16) -> String {
    let u = &fake.url;
    format!(
        r#"version = 1

[accounts.brand-x]
platform = "x"
server = "{u}"

[accounts.brand-x.oauth]
client_id = "x-team-app"
redirect_port = {port}
authorize_url = "{u}/i/oauth2/authorize"
token_url = "{u}/2/oauth2/token"
revoke_url = "{u}/2/oauth2/revoke"
"#
    )
}

fn form(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn x_confidential_client_signs_in_refreshes_and_is_told_when_revoked() {
    use base64::Engine as _;
    let bus = SessionBus::with_gnome_keyring();
    let prefix = canary();
    let FakeX {
        fake,
        reject_refresh,
        revoked,
    } = fake_x(&prefix);
    let port = free_port();
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    s.write("gate.toml", &x_policy(&fake, port));
    let host = fake.url.strip_prefix("http://").unwrap().to_owned();
    let user = format!("brand-x@{host}");
    let secret = format!("{prefix}-client-secret");

    let login = Login::start(
        &s,
        &[
            "auth",
            "login",
            "brand-x",
            "--client-secret",
            "-",
            "--timeout",
            "30",
        ],
        Some(&format!("{secret}\n")),
    );
    let url = login.authorize_url();
    assert_eq!(
        url.as_str().split('?').next().unwrap(),
        format!("{}/i/oauth2/authorize", fake.url)
    );
    let q = query(&url);
    assert_eq!(
        q.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "response_type",
            "scope",
            "state"
        ]
    );
    assert_eq!(q["client_id"], "x-team-app");
    assert_eq!(
        q["redirect_uri"],
        format!("http://127.0.0.1:{port}/callback"),
        "the fixed port"
    );
    assert_eq!(
        (
            q["scope"].as_str(),
            q["response_type"].as_str(),
            q["code_challenge_method"].as_str()
        ),
        (X_SCOPES, "code", "S256")
    );
    no_secret_in_proc(login.pid(), &[&secret]);
    let page = reqwest::blocking::get(format!(
        "{}?code=x-code&state={}",
        q["redirect_uri"], q["state"]
    ))
    .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stderr.lines().last().unwrap(),
        format!(
            "signed in to `brand-x` as @brandx; the token is in the Secret Service keyring (service `gate`, user `{user}`)"
        )
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-team-app:{secret}"))
    );
    let tokens = fake.to("/2/oauth2/token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0].header("authorization"),
        Some(basic.as_str()),
        "a confidential client uses HTTP Basic"
    );
    let f = tokens[0].form();
    assert_eq!(s256(&f["code_verifier"]), q["code_challenge"]);
    assert_eq!(
        f,
        form(&[
            ("grant_type", "authorization_code"),
            ("code", "x-code"),
            ("redirect_uri", &q["redirect_uri"]),
            ("code_verifier", &f["code_verifier"]),
        ])
    );
    let me = fake.to("/2/users/me");
    assert_eq!(
        me[0].header("authorization"),
        Some(format!("Bearer {prefix}-access-1").as_str())
    );
    let doc = stored(&bus, &user);
    assert_eq!(doc["access_token"], format!("{prefix}-access-1"));
    assert_eq!(doc["refresh_token"], format!("{prefix}-refresh-1"));
    assert_eq!(doc["identity"], "@brandx");
    let expires: chrono::DateTime<chrono::Utc> =
        doc["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(7100) && left <= chrono::Duration::seconds(7200),
        "{left}"
    );
    let app = stored(&bus, &format!("app@{host}"));
    assert_eq!(
        (app["client_id"].as_str(), app["client_secret"].as_str()),
        (Some("x-team-app"), Some(secret.as_str()))
    );

    // Expired: refreshed with the stored client secret, the new tokens stored.
    expire(&bus, &user);
    let status = s.run(&["auth", "status", "brand-x", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let tokens = fake.to("/2/oauth2/token");
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[1].header("authorization"), Some(basic.as_str()));
    assert_eq!(
        tokens[1].form(),
        form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &format!("{prefix}-refresh-1"))
        ])
    );
    assert_eq!(
        stored(&bus, &user)["access_token"],
        format!("{prefix}-access-2")
    );
    assert_eq!(status.json()["accounts"][0]["checked_online"], true);

    // A refresh the server rejects: exit 8, and what to do.
    reject_refresh.store(true, Ordering::Relaxed);
    expire(&bus, &user);
    let rejected = s.run(&["auth", "status", "brand-x"]);
    assert_eq!(rejected.code, 8, "{rejected:?}");
    assert_eq!(
        rejected.stderr,
        "error: the server refused to refresh the token for `brand-x` (`invalid_grant`): the sign-in was revoked or has expired\n  hint: run `gate auth login brand-x`\n"
    );
    assert!(
        rejected
            .stdout
            .contains("but the server refused to refresh the token"),
        "{rejected:?}"
    );

    // A token the server no longer accepts (401): revoked or expired, exit 8.
    reject_refresh.store(false, Ordering::Relaxed);
    expire(&bus, &user);
    revoked.store(true, Ordering::Relaxed);
    let dead = s.run(&["auth", "status", "brand-x"]);
    assert_eq!(dead.code, 8, "{dead:?}");
    assert_eq!(
        dead.stderr,
        "error: the token for `brand-x` was revoked or expired (the server answered 401)\n  hint: run `gate auth login brand-x`\n"
    );
    assert!(
        dead.stdout
            .contains("but revoked or expired (the server answered 401)"),
        "{dead:?}"
    );

    let logout = s.run(&["auth", "logout", "brand-x"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    let revokes = fake.to("/2/oauth2/revoke");
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].header("authorization"), Some(basic.as_str()));
    assert_eq!(
        revokes[0].form(),
        form(&[
            ("token", &format!("{prefix}-refresh-3")),
            ("token_type_hint", "refresh_token")
        ])
    );
    for r in [&run, &status, &rejected, &dead, &logout] {
        assert_clean(r, &secret);
        for n in 1..=3 {
            assert_clean(r, &format!("{prefix}-access-{n}"));
            assert_clean(r, &format!("{prefix}-refresh-{n}"));
        }
    }
    assert_no_file_holds(&s, &prefix);
}

#[test]
fn x_public_client_no_browser_takes_the_pasted_redirect_address() {
    let bus = SessionBus::with_gnome_keyring();
    let prefix = canary();
    let x = fake_x(&prefix);
    let port = free_port();
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    s.write("gate.toml", &x_policy(&x.fake, port));

    // A pasted address with another sign-in's state is refused.
    let mut login = Login::start(&s, &["auth", "login", "brand-x", "--no-browser"], None);
    let url = login.authorize_url();
    let q = query(&url);
    assert_eq!(
        q["redirect_uri"],
        format!("http://127.0.0.1:{port}/callback")
    );
    use std::io::Write as _;
    let forged = format!(
        "http://127.0.0.1:{port}/callback?code=c&state=not-{}\n",
        q["state"]
    );
    login
        .stdin
        .take()
        .unwrap()
        .write_all(forged.as_bytes())
        .unwrap();
    let run = login.finish();
    assert_eq!(run.code, 8, "{run:?}");
    assert!(run.stderr.ends_with("error: the sign-in redirect carried the wrong `state`; it was ignored\n  hint: run the command again, and open only the newest sign-in link\n"), "{run:?}");

    let mut login = Login::start(
        &s,
        &["auth", "login", "brand-x", "--no-browser", "--json"],
        None,
    );
    let q = query(&login.authorize_url());
    let pasted = format!(
        "{}?state={}&code=pasted-code\n",
        q["redirect_uri"], q["state"]
    );
    login
        .stdin
        .take()
        .unwrap()
        .write_all(pasted.as_bytes())
        .unwrap();
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["identity"], "@brandx");
    assert_eq!(doc["refresh_token"], true);
    let tokens = x.fake.to("/2/oauth2/token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0].header("authorization"),
        None,
        "a public client sends no secret"
    );
    let f = tokens[0].form();
    assert_eq!(
        f,
        form(&[
            ("grant_type", "authorization_code"),
            ("code", "pasted-code"),
            ("redirect_uri", &q["redirect_uri"]),
            ("code_verifier", &f["code_verifier"]),
            ("client_id", "x-team-app"),
        ])
    );
    assert_eq!(s256(&f["code_verifier"]), q["code_challenge"]);
    assert_clean(&run, &prefix);
}

#[test]
fn sign_in_settings_are_checked_and_a_secret_is_never_an_argument() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        "version = 1\n\n[accounts.brand-x]\nplatform = \"x\"\n\n[accounts.m]\nplatform = \"mastodon\"\nserver = \"https://m.example\"\n",
    );
    let run = s.run(&["auth", "login", "brand-x", "--client-secret", "hunter2"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: a client secret is never taken from the command line\n  hint: pipe it in with `gate auth login brand-x --client-secret - < secret.txt`, or give `--client-secret` alone on a terminal\n"
    );
    let run = s.run(&["auth", "login", "m", "--client-secret", "-"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: `--client-secret` is only for X accounts\n  hint: gate registers its own app on a Mastodon instance\n"
    );
}

#[test]
fn the_listener_gives_up_after_its_time_limit() {
    let bus = SessionBus::with_gnome_keyring();
    let x = fake_x(&canary());
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    s.write("gate.toml", &x_policy(&x.fake, free_port()));
    let started = Instant::now();
    let run = s.run(&["auth", "login", "brand-x", "--timeout", "1"]);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.ends_with(
        "error: no sign-in redirect arrived within 1 s\n  hint: run the command again and finish signing in in the browser, or use `--no-browser` to paste the answer\n"
    ), "{run:?}");
    assert!(x.fake.to("/2/oauth2/token").is_empty());
}

#[test]
fn policy_oauth_tables_are_checked_with_positions() {
    let s = Sandbox::new();
    s.write(
        "gate.toml",
        r#"version = 1

[accounts.m]
platform = "mastodon"
server = "https://m.example"

[accounts.m.oauth]
client_id = "mine"
redirect_prot = 8765

[accounts.x]
platform = "x"

[accounts.x.oauth]
client_id = "team"
redirect_port = 70000
scopes = ["tweet.read", "two words"]
token_url = "http://api.example/token"
client_metadata_url = "https://gate.example/client.json"

[accounts.b]
platform = "bluesky"
handle = "brand.example"

[accounts.b.oauth]
client_id = "mine"
authorize_url = "https://bsky.social/oauth/authorize"
client_metadata_url = "https://gate.example/client.json"
redirect_port = 8766
"#,
    );
    let run = s.run(&["policy", "check"]);
    assert_eq!(run.code, 3, "{run:?}");
    let expected = r#"error: `client_id` is not used for mastodon accounts
 --> gate.toml:8:13
  |
8 | client_id = "mine"
  |             ^^^^^^
  = hint: gate registers its own app on each Mastodon instance: remove the key

error: unknown key `redirect_prot` in `[accounts.m.oauth]`
 --> gate.toml:9:1
  |
9 | redirect_prot = 8765
  | ^^^^^^^^^^^^^
  = hint: did you mean `redirect_port`?

error: `redirect_port` must be a port from 1 to 65535
  --> gate.toml:16:17
   |
16 | redirect_port = 70000
   |                 ^^^^^

error: invalid scope `two words`: a scope is one word
  --> gate.toml:17:25
   |
17 | scopes = ["tweet.read", "two words"]
   |                         ^^^^^^^^^^^

error: invalid `token_url` URL `http://api.example/token`: plain `http://` is only allowed for loopback test servers
  --> gate.toml:18:13
   |
18 | token_url = "http://api.example/token"
   |             ^^^^^^^^^^^^^^^^^^^^^^^^^^
   = hint: write the full endpoint URL, e.g. `https://x.com/i/oauth2/authorize`

error: `client_metadata_url` is only for bluesky accounts
  --> gate.toml:19:23
   |
19 | client_metadata_url = "https://gate.example/client.json"
   |                       ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

error: `client_id` is not used for bluesky accounts
  --> gate.toml:26:13
   |
26 | client_id = "mine"
   |             ^^^^^^
   = hint: a Bluesky client is named by its metadata document: set `client_metadata_url`, or remove the key to use gate's loopback client

error: `authorize_url` is not used for bluesky accounts
  --> gate.toml:27:17
   |
27 | authorize_url = "https://bsky.social/oauth/authorize"
   |                 ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
   = hint: gate finds the OAuth endpoints from the PDS (`server`): remove the key

invalid: 8 errors
"#;
    assert_eq!(run.stderr, expected);
    let example = s.run(&[
        "policy",
        "check",
        common::repo().join("policy.example.toml").to_str().unwrap(),
    ]);
    assert_eq!(example.code, 0, "{example:?}");
}

/// A token endpoint that answers a refresh with more than gate reads of any answer (8 MiB):
/// the refresh fails with exit 9 and says why, the stored token is left as it was, and the
/// body was never read whole.
#[test]
fn a_token_endpoint_answering_without_end_is_cut_off() {
    let fake = FakeServer::start(|r| match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/2/oauth2/token") => common::fake_http::Reply {
            status: 200,
            body: format!(
                "{{\"token_type\":\"bearer\",\"access_token\":\"{}\"}}",
                "a".repeat(9 << 20)
            ),
            headers: vec![("content-type".into(), "application/json".into())],
        },
        _ => json(404, serde_json::json!({})),
    });
    let bus = SessionBus::with_gnome_keyring();
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    s.write("gate.toml", &x_policy(&fake, free_port()));
    let token = canary();
    let login = s.run_with_stdin(&["auth", "login", "brand-x", "--with-token"], &token);
    assert_eq!(login.code, 0, "{login:?}");
    let user = format!("brand-x@{}", fake.url.trim_start_matches("http://"));
    let mut doc = stored(&bus, &user);
    doc["refresh_token"] = canary().into();
    bus.store(&user, &doc);
    expire(&bus, &user);
    let before = stored(&bus, &user);

    let status = s.run(&["auth", "status", "brand-x"]);
    assert_eq!(status.code, 9, "{status:?}");
    assert!(
        status
            .stderr
            .contains("could not refresh the token for `brand-x`: the answer is larger than 8 MiB"),
        "{status:?}"
    );
    assert_eq!(stored(&bus, &user), before, "the stored token changed");
}
