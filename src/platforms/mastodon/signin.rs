//! Signing a Mastodon account in: gate registers its own app on the instance (kept in the
//! keychain and reused while its redirect and scopes fit), then OAuth in the browser, or a
//! token made in the instance's settings (`--with-token`).

use crate::core::policy::Account;
use crate::error::Error;
use crate::keychain::Keychain;
use crate::platforms::oauth2::{self, OAuth2SignIn, SignInClient};
use crate::platforms::signin::{Paste, SignedIn, Talk};

/// Mastodon's sign-in.
pub const SIGN_IN: OAuth2SignIn<MastodonApp> = OAuth2SignIn(MastodonApp);

/// The app gate registers on each instance.
pub struct MastodonApp;

impl SignInClient for MastodonApp {
    fn check_secret(&self, _account: &Account, client_secret: Option<&str>) -> Result<(), Error> {
        if client_secret.is_some() {
            return Err(Error::usage("`--client-secret` is only for X accounts")
                .with_hint("gate registers its own app on a Mastodon instance"));
        }
        Ok(())
    }

    fn browser(
        &self,
        talk: &dyn Talk,
        keychain: &Keychain,
        account: &Account,
        _client_secret: Option<&str>,
    ) -> Result<SignedIn, Error> {
        // The app registered on the instance, reused while its redirect and scopes fit.
        let choose = |endpoints: &oauth2::Endpoints, redirect: &str, listening: bool| {
            let wanted = if !listening {
                oauth2::OOB.to_owned()
            } else if endpoints.redirect_port == 0 {
                "http://127.0.0.1/callback".to_owned()
            } else {
                redirect.to_owned()
            };
            Ok(
                match oauth2::stored_app(keychain, account, None)?
                    .filter(|a| a.redirect_uris.contains(&wanted) && a.scopes == endpoints.scopes)
                {
                    Some(app) => (app, false),
                    None => (oauth2::register_mastodon_app(account, endpoints)?, true),
                },
            )
        };
        oauth2::browser_sign_in(talk, keychain, account, &choose, Paste::Code, false)
    }
}
