//! OAuth sign-in, refresh, status and logout.
//!
//! Against a real OAuth 2.0 server (oidc-provider, `test-peers/oauth/server.mjs`): an X
//! account whose `authorize_url`, `token_url` and `revoke_url` point at it, and whose `server`
//! is it too, so `GET /2/users/me` is answered by a route that asks the provider whether the
//! bearer token is valid. The test is the browser; the tokens land in a real gnome-keyring.
//!
//! Against local fakes of Mastodon and X: each documented request is checked field by field.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fake_http::{FakeServer, Reply, json};
use common::keychain::{SessionBus, assert_no_file_holds, canary};
use common::oauth::{Login, OAuthServer, free_port, query, s256, sign_in_as};
use common::{Run, Sandbox};

fn assert_clean(run: &Run, secret: &str) {
    assert!(!run.stdout.contains(secret), "stdout shows a secret: {run:?}");
    assert!(!run.stderr.contains(secret), "stderr shows a secret: {run:?}");
}

/// What gate stored for `user`, read with `secret-tool`.
fn stored(bus: &SessionBus, user: &str) -> serde_json::Value {
    let out = bus.secret_tool(&["lookup", "service", "gate", "username", user], "");
    assert!(out.status.success(), "nothing stored for {user}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rewrites the stored credential's expiry, as if its time had run out.
fn expire(bus: &SessionBus, user: &str) {
    let mut doc = stored(bus, user);
    doc["expires_at"] = "2001-01-01T00:00:00Z".into();
    let out = bus.secret_tool(
        &["store", "--label=gate test", "service", "gate", "username", user],
        &doc.to_string(),
    );
    assert!(out.status.success(), "{out:?}");
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
    let login = Login::start(&s, &["auth", "login", "team", "--timeout", "60"], None);
    let url = login.authorize_url();
    let q = query(&url);
    assert_eq!(q["redirect_uri"], format!("http://127.0.0.1:{port}/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    let page = sign_in_as(&url, "brand-team", &format!("http://127.0.0.1:{port}/callback"));
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
    assert_eq!(server.count("grant.success authorization_code"), 1, "{:?}", server.log());
    Oidc { bus, server, s, user }
}

#[test]
fn oidc_sign_in_stores_tokens_status_confirms_them_and_logout_revokes() {
    let Oidc { bus, server, s, user } = signed_in();
    let doc = stored(&bus, &user);
    let access = doc["access_token"].as_str().unwrap().to_owned();
    let refresh = doc["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(doc["identity"], "@brand-team");
    assert_eq!(
        doc["scopes"],
        serde_json::json!(["tweet.read", "tweet.write", "users.read", "offline.access", "media.write"])
    );
    let expires: chrono::DateTime<chrono::Utc> = doc["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(3500) && left <= chrono::Duration::seconds(3600), "{left}");

    let status = s.run(&["auth", "status", "team", "--json"]);
    assert_eq!(status.code, 0, "{status:?}");
    let row = &status.json()["accounts"][0];
    assert_eq!(row["checked_online"], true);
    assert_eq!(row["identity"], "@brand-team");
    assert_eq!(server.count("users.me 200"), 2, "{:?}", server.log());
    assert_eq!(server.count("grant.success refresh_token"), 0);

    let logout = s.run(&["auth", "logout", "team"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    let host = user.split_once('@').unwrap().1;
    assert_eq!(
        logout.stderr,
        format!(
            "revoked the token for `team` at {host}\nremoved the token for `team` from the Secret Service keyring\n"
        )
    );
    assert_eq!(server.count("grant.revoked"), 1);
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
fn oidc_expired_token_is_refreshed_once_even_by_16_processes_at_once() {
    let Oidc { bus, server, s, user } = signed_in();
    let first = stored(&bus, &user);

    // One process, an expired token: refreshed with rotation, stored before use.
    expire(&bus, &user);
    let status = s.run(&["auth", "status", "team"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(server.count("grant.success refresh_token"), 1, "{:?}", server.log());
    let second = stored(&bus, &user);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"], "the refresh token rotated");
    assert_eq!(second["identity"], "@brand-team");
    assert!(status.stdout.contains("identity: @brand-team (confirmed by the server)"), "{status:?}");

    // Sixteen processes start together on an expired token: one refreshes, all succeed.
    expire(&bus, &user);
    let children: Vec<_> = (0..16)
        .map(|_| {
            s.command(&["auth", "status", "team", "--json"])
                .stdout(Stdio::piped())
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
    assert_eq!(server.count("grant.success refresh_token"), 2, "{:?}", server.log());
    assert!(
        !server.log().iter().any(|l| l.starts_with("grant.error")),
        "{:?}",
        server.log()
    );
    assert_eq!(server.count("users.me 200"), 1 + 1 + 16);
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
