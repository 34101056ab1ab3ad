//! Bluesky against a real PDS on loopback (`test-peers/pds`) and the real Secret Service on a
//! private bus: app-password sign-in, online status, refresh, logout, and the adapter
//! publishing posts with facets and images exactly once.

use crate::common;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fault_proxy::{Dialect, Fault, FaultProxy};
use common::keychain::{SessionBus, assert_no_file_holds};
use common::pds::{self, Account as PdsAccount, Pds};
use common::setup::{Builder, Keychain, Policy};
use common::{Run, Sandbox};
use gate::platforms::bluesky::{self, Bluesky};
use gate::platforms::{Lookup, Media, Outgoing, Publisher, SendError};
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
    let (s, bus) = Builder::new(
        Policy::new("bsky", "bluesky", &pds.url)
            .timezone("Europe/London")
            .handle(&alice.handle)
            .text(),
    )
    .keychain(Keychain::Own)
    .build();
    let bus = bus.unwrap();
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

    fn account(&self) -> gate::core::policy::Account {
        gate::core::policy::Account {
            name: "bsky".into(),
            platform: gate::core::policy::Platform::Bluesky,
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

/// `gate auth login` for a Bluesky account without `--app-password`: atproto OAuth through
/// gate's loopback listener, the test acting as the browser on the PDS's sign-in page.
fn oauth_login(w: &World, browser: &mut pds::Browser) -> Run {
    let login = common::oauth::Login::start(&w.s, &["--json", "auth", "login", "bsky"], None);
    let authorize = login.authorize_url();
    // PAR: the authorize URL carries only the client and the pushed request's handle.
    let q = common::oauth::query(&authorize);
    assert_eq!(
        q.keys().collect::<Vec<_>>(),
        ["client_id", "request_uri"],
        "{authorize}"
    );
    assert_eq!(
        q["client_id"],
        "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&scope=atproto+transition%3Ageneric"
    );
    assert!(
        q["request_uri"].starts_with("urn:ietf:params:oauth:request_uri:"),
        "{q:?}"
    );
    let back = browser.authorize(&authorize, &w.alice);
    assert_eq!(back.host_str(), Some("127.0.0.1"), "{back}");
    assert_eq!(back.path(), "/callback");
    let iss = common::oauth::query(&back).get("iss").cloned();
    assert_eq!(iss.as_deref(), Some(w.pds.url.as_str()), "{back}");
    let page = reqwest::blocking::get(back.as_str()).expect("gate's listener answers");
    assert_eq!(page.status(), 200);
    login.finish()
}

/// `n` gate processes with the same arguments, started together; their outputs.
fn together(s: &Sandbox, n: usize, args: &[&str]) -> Vec<std::process::Output> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            s.command(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn atproto_oauth_sign_in_posts_refreshes_once_and_logout_revokes() {
    let w = world();
    let mut browser = pds::Browser::new(w.pds);
    let login = oauth_login(&w, &mut browser);
    assert_eq!(login.code, 0, "{login:?}");
    let out = login.json();
    assert_eq!(out["handle"], w.alice.handle.as_str(), "{login:?}");
    assert_eq!(out["did"], w.alice.did.as_str());
    assert_eq!(out["issuer"], w.pds.url.as_str());
    assert_eq!(out["refresh_token"], true);

    // The keychain holds DPoP-bound tokens and the key they are bound to.
    let stored = w.stored();
    assert_eq!(stored["token_type"], "DPoP", "{stored}");
    assert_eq!(stored["extra"]["auth"], "oauth");
    assert_eq!(stored["extra"]["did"], w.alice.did.as_str());
    assert_eq!(stored["extra"]["dpop_key"]["crv"], "P-256");
    assert!(stored["extra"]["dpop_key"]["d"].is_string());
    assert_eq!(
        stored["scopes"],
        serde_json::json!(["atproto", "transition:generic"])
    );
    let access = stored["access_token"].as_str().unwrap().to_owned();
    let refresh = stored["refresh_token"].as_str().unwrap().to_owned();
    let key = stored["extra"]["dpop_key"]["d"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_clean(&login, &access);
    assert_clean(&login, &refresh);
    // A token bound to a key is useless without it: the PDS refuses it as a bearer token.
    let bearer = reqwest::blocking::Client::new()
        .get(format!("{}/xrpc/com.atproto.server.getSession", w.pds.url))
        .bearer_auth(&access)
        .send()
        .unwrap();
    assert!(
        bearer.status().is_client_error(),
        "a DPoP-bound token worked as a bearer token: {}",
        bearer.status()
    );

    // Authenticated calls from another process: the identity, then a post read back.
    let status = w.s.run(&["--json", "auth", "status", "bsky"]);
    assert_eq!(status.code, 0, "{status:?}");
    let row = &status.json()["accounts"][0];
    assert_eq!(row["checked_online"], true, "{status:?}");
    assert_eq!(row["identity"], w.alice.handle.as_str());
    let text = "Signed in with atproto OAuth #gate";
    let sent = w.s.run(&["post", "--yes", "--account", "bsky", text]);
    assert_eq!(sent.code, 0, "{sent:?}");
    let posts = all_posts(w.pds, &w.alice.did);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["value"]["text"], text);

    // An expired access token is refreshed once by 8 processes at once (refresh tokens are
    // single-use here: a second refresh with the same one would fail and end the session).
    let mut expired = w.stored();
    expired["expires_at"] = "2000-01-01T00:00:00Z".into();
    w.store(&expired);
    for out in together(&w.s, 8, &["--json", "auth", "status", "bsky"]) {
        assert!(
            out.status.success(),
            "a racing status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let fresh = w.stored();
    let new_refresh = fresh["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh, "the refresh token was not rotated");
    assert_eq!(
        fresh["extra"]["dpop_key"]["d"],
        key.as_str(),
        "the DPoP key changed"
    );
    let expires: chrono::DateTime<chrono::Utc> =
        fresh["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > chrono::Utc::now(), "{fresh}");

    // Replaying the used refresh token (an old copy of the keychain) is refused: exit 8.
    let mut replay = expired.clone();
    replay["refresh_token"] = refresh.clone().into();
    w.store(&replay);
    let refused = w.s.run(&["auth", "status", "bsky"]);
    assert_eq!(refused.code, 8, "{refused:?}");
    assert!(
        refused.stderr.contains("gate auth login bsky"),
        "{refused:?}"
    );
    assert_clean(&refused, &refresh);

    // Log in again, then logout revokes the grant: the PDS lists no session for gate.
    let again = oauth_login(&w, &mut browser);
    assert_eq!(again.code, 0, "{again:?}");
    let clients = browser.oauth_sessions(&w.alice.did);
    assert!(
        clients.iter().any(|c| c.starts_with("http://localhost?")),
        "the PDS lists no session for gate: {clients:?}"
    );
    let logout = w.s.run(&["--json", "auth", "logout", "bsky"]);
    assert_eq!(logout.code, 0, "{logout:?}");
    assert_eq!(logout.json()["revoked"], true, "{logout:?}");
    let clients = browser.oauth_sessions(&w.alice.did);
    assert!(
        !clients.iter().any(|c| c.starts_with("http://localhost?")),
        "gate's session outlived the logout: {clients:?}"
    );
    for secret in [&access, &refresh, &new_refresh, &key] {
        assert_no_file_holds(&w.s, secret);
    }
}

/// `gate auth login bsky --no-browser`: the sign-in in the browser, then the address it was
/// sent to pasted on stdin after `edit` has had its way with it.
fn paste_login(w: &World, browser: &mut pds::Browser, edit: impl Fn(String) -> String) -> Run {
    let mut login =
        common::oauth::Login::start(&w.s, &["auth", "login", "bsky", "--no-browser"], None);
    let authorize = login.authorize_url();
    let back = browser.authorize(&authorize, &w.alice);
    // Nothing listens: the redirect is the registered one, without a port.
    assert_eq!(back.port(), None, "{back}");
    let mut stdin = login.stdin.take().unwrap();
    writeln!(stdin, "{}", edit(back.to_string())).unwrap();
    drop(stdin);
    login.finish()
}

#[test]
fn atproto_oauth_without_a_browser_takes_the_pasted_address_and_checks_issuer_and_handle() {
    let w = world();
    let mut browser = pds::Browser::new(w.pds);
    let user = w.user.clone();
    let nothing_stored = || {
        let out = w
            .bus
            .secret_tool(&["lookup", "service", "gate", "username", &user], "");
        assert!(!out.status.success(), "a session was stored: {out:?}");
    };

    // A code that claims another issuer is refused before it is exchanged.
    let issuer = url::form_urlencoded::byte_serialize(w.pds.url.as_bytes()).collect::<String>();
    let forged = paste_login(&w, &mut browser, |back| {
        back.replace(&issuer, "https%3A%2F%2Fevil.example")
    });
    assert_eq!(forged.code, 8, "{forged:?}");
    assert!(
        forged
            .stderr
            .contains("the sign-in redirect came from `https://evil.example`"),
        "{forged:?}"
    );
    nothing_stored();

    // Signed in as someone other than the policy's handle: refused, nothing stored.
    let bob = w.pds.create_account("bob");
    w.s.write(
        "gate.toml",
        &format!(
            "version = 1\ntimezone = \"Europe/London\"\n\n[accounts.bsky]\nplatform = \"bluesky\"\nserver = \"{}\"\nhandle = \"{}\"\n",
            w.pds.url, bob.handle
        ),
    );
    let wrong = paste_login(&w, &mut browser, |back| back);
    assert_eq!(wrong.code, 8, "{wrong:?}");
    assert!(
        wrong.stderr.contains(&format!(
            "signed in as `{}` ({}), but the policy says `bsky` is `{}`; nothing was stored",
            w.alice.handle, w.alice.did, bob.handle
        )),
        "{wrong:?}"
    );
    nothing_stored();

    // The right account: signed in from the pasted address.
    w.s.write(
        "gate.toml",
        &format!(
            "version = 1\ntimezone = \"Europe/London\"\n\n[accounts.bsky]\nplatform = \"bluesky\"\nserver = \"{}\"\nhandle = \"{}\"\n",
            w.pds.url, w.alice.handle
        ),
    );
    let ok = paste_login(&w, &mut browser, |back| back);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(
        ok.stderr.contains(&format!(
            "as `{}` ({}) with OAuth",
            w.alice.handle, w.alice.did
        )),
        "{ok:?}"
    );
    assert_eq!(w.stored()["extra"]["auth"], "oauth");
}

/// A stand-in for a PDS and its authorization server, for the parts of the contract the real
/// PDS cannot show here: a team's client metadata document (the real one is only fetched over
/// https) and every request's exact form.
fn fake_authorization_server(callback_port: u16) -> common::fake_http::FakeServer {
    use common::fake_http::{FakeServer, json};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pars = AtomicUsize::new(0);
    FakeServer::start(move |req| {
        let me = format!("http://{}", req.header("host").unwrap());
        match req.path.as_str() {
            "/client.json" => json(
                200,
                serde_json::json!({
                    "client_id": format!("{me}/client.json"),
                    "application_type": "native",
                    "token_endpoint_auth_method": "none",
                    "dpop_bound_access_tokens": true,
                    "grant_types": ["authorization_code", "refresh_token"],
                    "redirect_uris": [format!("http://127.0.0.1:{callback_port}/callback")],
                    "scope": "atproto transition:generic",
                }),
            ),
            "/.well-known/oauth-protected-resource" => json(
                200,
                serde_json::json!({"resource": me, "authorization_servers": [me]}),
            ),
            "/.well-known/oauth-authorization-server" => json(
                200,
                serde_json::json!({
                    "issuer": me,
                    "pushed_authorization_request_endpoint": format!("{me}/oauth/par"),
                    "authorization_endpoint": format!("{me}/oauth/authorize"),
                    "token_endpoint": format!("{me}/oauth/token"),
                    "revocation_endpoint": format!("{me}/oauth/revoke"),
                    "dpop_signing_alg_values_supported": ["ES256"],
                    "code_challenge_methods_supported": ["S256"],
                }),
            ),
            // The first PAR is refused for want of a nonce, as atproto servers do.
            "/oauth/par" if pars.fetch_add(1, Ordering::SeqCst) == 0 => {
                json(400, serde_json::json!({"error": "use_dpop_nonce"}))
                    .header("DPoP-Nonce", "as-1")
            }
            "/oauth/par" => json(
                201,
                serde_json::json!({"request_uri": "urn:ietf:params:oauth:request_uri:req-1", "expires_in": 60}),
            ),
            "/oauth/token" => json(
                200,
                serde_json::json!({
                    "access_token": "at-fake", "token_type": "DPoP", "refresh_token": "rt-fake",
                    "expires_in": 3600, "scope": "atproto transition:generic", "sub": "did:plc:fake",
                }),
            ),
            "/xrpc/com.atproto.server.getSession" => json(
                200,
                serde_json::json!({"did": "did:plc:fake", "handle": "brand.test"}),
            ),
            _ => json(404, serde_json::json!({"error": "NotFound"})),
        }
    })
}

#[test]
fn atproto_oauth_with_a_team_client_sends_each_documented_request() {
    let port = common::oauth::free_port();
    let server = fake_authorization_server(port);
    let bus = SessionBus::with_gnome_keyring();
    let mut s = Sandbox::new();
    bus.attach(&mut s);
    let metadata_url = format!("{}/client.json", server.url);
    s.write(
        "gate.toml",
        &format!(
            "version = 1\n\n[accounts.bsky]\nplatform = \"bluesky\"\nserver = \"{}\"\nhandle = \"brand.test\"\n\n[accounts.bsky.oauth]\nclient_metadata_url = \"{metadata_url}\"\n",
            server.url
        ),
    );
    let login = common::oauth::Login::start(&s, &["--json", "auth", "login", "bsky"], None);
    let authorize = login.authorize_url();
    assert_eq!(authorize.path(), "/oauth/authorize");
    let q = common::oauth::query(&authorize);
    assert_eq!(q["client_id"], metadata_url);
    assert_eq!(q["request_uri"], "urn:ietf:params:oauth:request_uri:req-1");

    let pars = server.to("/oauth/par");
    assert_eq!(
        pars.len(),
        2,
        "one PAR refused for a nonce, then sent again"
    );
    let par = pars[1].form();
    assert_eq!(par["client_id"], metadata_url);
    assert_eq!(par["response_type"], "code");
    assert_eq!(
        par["redirect_uri"],
        format!("http://127.0.0.1:{port}/callback")
    );
    assert_eq!(par["scope"], "atproto transition:generic");
    assert_eq!(par["code_challenge_method"], "S256");
    assert_eq!(par["login_hint"], "brand.test");
    assert_eq!(pars[0].form(), par, "the retry is the same request");
    let first = jwt_payload(pars[0].header("dpop").unwrap());
    let second = jwt_payload(pars[1].header("dpop").unwrap());
    assert_eq!(first["nonce"], Value::Null);
    assert_eq!(second["nonce"], "as-1");
    assert_eq!(second["htu"], format!("{}/oauth/par", server.url));
    assert_ne!(first["jti"], second["jti"], "a proof is never reused");

    // The browser comes back to the port the team registered.
    let back = format!(
        "http://127.0.0.1:{port}/callback?state={}&iss={}&code=code-1",
        par["state"],
        url::form_urlencoded::byte_serialize(server.url.as_bytes()).collect::<String>()
    );
    assert_eq!(reqwest::blocking::get(&back).unwrap().status(), 200);
    let run = login.finish();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["did"], "did:plc:fake");
    assert_clean(&run, "at-fake");
    assert_clean(&run, "rt-fake");

    let token = server.to("/oauth/token");
    assert_eq!(token.len(), 1);
    let form = token[0].form();
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "code-1");
    assert_eq!(form["client_id"], metadata_url);
    assert_eq!(form["redirect_uri"], par["redirect_uri"]);
    assert_eq!(
        common::oauth::s256(&form["code_verifier"]),
        par["code_challenge"]
    );
    let proof = jwt_payload(token[0].header("dpop").unwrap());
    assert_eq!(proof["nonce"], "as-1", "the nonce is kept between requests");
    assert_eq!(
        jwt_part(token[0].header("dpop").unwrap(), 0)["jwk"],
        jwt_part(pars[1].header("dpop").unwrap(), 0)["jwk"],
        "the code is redeemed with the key the request was pushed with"
    );
    let session = server.to("/xrpc/com.atproto.server.getSession");
    assert_eq!(session.len(), 1);
    assert_eq!(session[0].header("authorization"), Some("DPoP at-fake"));
    assert!(jwt_payload(session[0].header("dpop").unwrap())["ath"].is_string());
}

/// Part `i` of a compact JWT (0: header, 1: payload), as JSON.
fn jwt_part(jwt: &str, i: usize) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(i).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn jwt_payload(jwt: &str) -> Value {
    jwt_part(jwt, 1)
}

#[test]
fn dpop_calls_send_the_nonce_a_server_asks_for_once() {
    use common::fake_http::{FakeServer, json};
    use gate::platforms::bluesky::{dpop::Dpop, xrpc::Xrpc};
    // A resource server that wants a nonce: 401 `use_dpop_nonce` until the proof carries it.
    let server = FakeServer::start(|req| {
        let proof = jwt_payload(req.header("dpop").unwrap_or("a.e30.c"));
        if proof["nonce"] == "n-1" {
            json(
                200,
                serde_json::json!({"did": "did:plc:x", "handle": "x.test"}),
            )
            .header("DPoP-Nonce", "n-2")
        } else {
            json(401, serde_json::json!({"error": "use_dpop_nonce"}))
                .header("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\"")
                .header("DPoP-Nonce", "n-1")
        }
    });
    let xrpc = Xrpc::with_dpop(&server.url, Some(Dpop::generate().unwrap())).unwrap();
    let token = secrecy::SecretString::from("at-canary");
    let v = xrpc
        .query("com.atproto.server.getSession", Some(&token), &[("a", "b")])
        .expect("the second try succeeds");
    assert_eq!(v["handle"], "x.test");
    let seen = server.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (req, nonce) in seen.iter().zip([Value::Null, "n-1".into()]) {
        assert_eq!(req.header("authorization"), Some("DPoP at-canary"));
        let proof = jwt_payload(req.header("dpop").unwrap());
        assert_eq!(proof["htm"], "GET");
        assert_eq!(
            proof["htu"],
            format!("{}/xrpc/com.atproto.server.getSession", server.url)
        );
        assert_eq!(proof["nonce"], nonce);
        assert!(proof["ath"].is_string());
    }
    // The newest nonce is kept for the next call; a server that keeps asking is an error.
    assert_eq!(xrpc.dpop.as_ref().unwrap().nonce().as_deref(), Some("n-2"));
    let stubborn = FakeServer::start(|_| {
        json(401, serde_json::json!({"error": "use_dpop_nonce"}))
            .header("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\"")
            .header("DPoP-Nonce", "again")
    });
    let xrpc = Xrpc::with_dpop(&stubborn.url, Some(Dpop::generate().unwrap())).unwrap();
    assert!(xrpc.query("x.y.z", Some(&token), &[]).is_err());
    assert_eq!(stubborn.requests().len(), 2, "asked at most twice");
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
            .join("runtime/gate/locks")
            .read_dir()
            .unwrap()
            .next()
            .is_some(),
        "the refresh took the keychain item's lock"
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
             hint: sign in again with `gate auth login bsky` (or with `--app-password`, made under Settings → Privacy and security → App passwords)\n",
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
    let key = adapter.new_key("d/alice");
    let since = chrono::Utc::now();
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
    assert_eq!(
        adapter.find(&post, since).unwrap(),
        Lookup::Found(published.clone())
    );
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
    let reply_key = adapter.new_key("d/alice");
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
        key: &adapter.new_key("d/alice"),
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
    assert_eq!(adapter.find(&post, since).unwrap(), Lookup::Absent);
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
    let key = adapter.new_key("d/alice");
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

/// A `putRecord` the proxy saw: the fault applied, the PDS's status if it got there.
type Put = (Option<Fault>, Option<u16>);

/// The fault proxy in front of the PDS, faulting `putRecord` only.
fn proxy(pds: &Pds) -> FaultProxy {
    FaultProxy::start(&pds.url, Dialect::Bluesky)
}

fn puts(proxy: &FaultProxy) -> Vec<Put> {
    proxy
        .creates()
        .into_iter()
        .map(|r| (r.fault, r.upstream))
        .collect()
}

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
    s.kill_at(&["post", "--yes", "--account", "bsky", text], point);
}

/// Every post record of `did`, page by page.
fn all_posts(pds: &Pds, did: &str) -> Vec<Value> {
    pds.posts(did)
}

#[test]
fn twenty_concurrent_gate_posts_to_bluesky_make_one_record() {
    let w = world();
    let mut browser = pds::Browser::new(w.pds);
    // Through OAuth: 20 processes, each with its own DPoP nonce, on one DPoP-bound session.
    let login = oauth_login(&w, &mut browser);
    assert_eq!(login.code, 0, "{login:?}");
    let text = "One launch, announced once, however many cron jobs fire";
    let mut urls = std::collections::BTreeSet::new();
    for out in together(&w.s, 20, &["post", "--yes", "--account", "bsky", text]) {
        assert!(
            out.status.success(),
            "a concurrent post failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        urls.insert(String::from_utf8(out.stdout).unwrap().trim().to_owned());
    }
    assert_eq!(urls.len(), 1, "every process prints the one URL: {urls:?}");
    let posts = all_posts(w.pds, &w.alice.did);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["value"]["text"], text);
    let url = urls.into_iter().next().unwrap();
    let rkey = url.rsplit('/').next().unwrap();
    assert!(posts[0]["uri"].as_str().unwrap().ends_with(rkey), "{url}");
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
    let proxy = proxy(w.pds);
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
        let before = puts(&proxy).len();
        match mode {
            Injected::DropBeforeCreate | Injected::DropAfterCreate => {
                let fault = if mode == Injected::DropBeforeCreate {
                    Fault::DropBeforeServer
                } else {
                    Fault::DropAfterServer
                };
                proxy.push(&[fault]);
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
            Injected::DropBeforeCreate => {
                &[(Some(Fault::DropBeforeServer), None), (None, Some(200))]
            }
            Injected::DropAfterCreate => &[(Some(Fault::DropAfterServer), Some(200))],
            Injected::KillAfterJournal | Injected::KillAfterPublish => &[(None, Some(200))],
        };
        let got = puts(&proxy)[before..].to_vec();
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
        proxy.errors().is_empty(),
        "the proxy could not relay: {:?}",
        proxy.errors()
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
    assert_eq!(all_posts(w.pds, &w.alice.did).len(), 3);
}

/// An atproto OAuth session's refresh token is single-use and a replay ends the session, so
/// processes of one user with two state folders (two `GATE_HOME`s, one keychain) must still
/// refresh one at a time: the lock is the keychain item's.
#[test]
fn an_oauth_session_is_refreshed_once_by_processes_from_two_state_folders() {
    let w = world();
    let mut browser = pds::Browser::new(w.pds);
    let login = oauth_login(&w, &mut browser);
    assert_eq!(login.code, 0, "{login:?}");
    let first = w.stored();
    let mut expired = first.clone();
    expired["expires_at"] = "2000-01-01T00:00:00Z".into();
    w.store(&expired);

    let other_home = w.s.path().join("state-2");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut cmd = w.s.command(&["--json", "auth", "status", "bsky"]);
            if i % 2 == 1 {
                cmd.env("GATE_HOME", &other_home);
            }
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a racing status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["accounts"][0]["checked_online"], true, "{doc}");
    }
    let second = w.stored();
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "the refresh token rotated"
    );
    // The session the keychain holds still works: no process replayed a spent token.
    let after = w.s.run(&["--json", "auth", "status", "bsky"]);
    assert_eq!(after.code, 0, "{after:?}");
    assert_eq!(after.json()["accounts"][0]["checked_online"], true);
    assert_eq!(w.stored()["refresh_token"], second["refresh_token"]);
}

/// The account's main password, given where an app password belongs: the real PDS's
/// session scope shows it (`com.atproto.access`, not `com.atproto.appPass`); gate refuses it,
/// ends that session and stores nothing.
#[test]
fn the_main_password_is_refused_for_app_password_sign_in() {
    let w = world();
    let run = w.s.run_with_stdin(
        &["auth", "login", "bsky", "--app-password"],
        &format!("{}\n", w.alice.password),
    );
    assert_clean(&run, &w.alice.password);
    assert_eq!(run.code, 8, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "error: `{}` signed in with the account's main password, not an app password; nothing was stored\n  \
             hint: make an app password (Bluesky: Settings → Privacy and security → App passwords) and sign in with it; never give gate the main password\n",
            w.alice.handle
        )
    );
    let out = w
        .bus
        .secret_tool(&["lookup", "service", "gate", "username", &w.user], "");
    assert!(
        !out.status.success() || out.stdout.is_empty(),
        "stored: {out:?}"
    );
    let status = w.s.run(&["auth", "status", "bsky"]);
    assert_eq!(status.code, 8, "{status:?}");
    // An app password still signs in.
    let run = w.login();
    assert_eq!(run.code, 0, "{run:?}");
}

/// `--with-token` cannot make a Bluesky session: it is refused, nothing is stored, so
/// `gate auth status` and `gate post` agree that there is no credential.
#[test]
fn with_token_is_refused_for_a_bluesky_account() {
    let w = world();
    let run = w.s.run_with_stdin(
        &["auth", "login", "bsky", "--with-token"],
        "any-string-at-all\n",
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "error: `--with-token` does not work for bluesky account `bsky`: a Bluesky session is made by signing in\n  \
         hint: run `gate auth login bsky --app-password` (with an app password) or `gate auth login bsky` (atproto OAuth in the browser)\n"
    );
    let status = w.s.run(&["auth", "status", "bsky"]);
    assert_eq!(status.code, 8, "{status:?}");
    let post = w.s.run(&["post", "--yes", "Nothing to post with"]);
    assert_eq!(post.code, 8, "{post:?}");
}
