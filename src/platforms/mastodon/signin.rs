//! Signing a Mastodon account in: gate registers its own app on the instance (kept in the
//! keychain and reused while its redirect and scopes fit), then OAuth in the browser, or a
//! token made in the instance's settings (`--with-token`).

use chrono::{DateTime, Utc};

use crate::core::policy::Account;
use crate::credential::Credential;
use crate::env::Env;
use crate::error::Error;
use crate::keychain::Keychain;
use crate::platforms::oauth2;
use crate::platforms::signin::{self, How, Paste, SignIn, SignedIn, Talk};

pub struct MastodonSignIn;

impl SignIn for MastodonSignIn {
    fn check(&self, account: &Account, how: How<'_>) -> Result<(), Error> {
        match how {
            How::AppPassword => Err(signin::no_app_password(account)),
            How::Token => Ok(()),
            How::Browser { client_secret } => {
                oauth2::Endpoints::for_account(account)?;
                if client_secret.is_some() {
                    return Err(Error::usage("`--client-secret` is only for X accounts")
                        .with_hint("gate registers its own app on a Mastodon instance"));
                }
                Ok(())
            }
        }
    }

    fn sign_in(
        &self,
        talk: &dyn Talk,
        keychain: &Keychain,
        account: &Account,
        how: How<'_>,
    ) -> Result<SignedIn, Error> {
        if let How::Token = how {
            return signin::token(talk, account);
        }
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

    fn usable(&self, env: &Env, account: &Account) -> Result<Credential, Error> {
        oauth2::usable_credential(env, account)
    }

    fn online(
        &self,
        env: &Env,
        keychain: &Keychain,
        account: &Account,
        now: DateTime<Utc>,
    ) -> Result<Credential, (String, Error)> {
        oauth2::online(env, keychain, account, now)
    }

    fn revoke(
        &self,
        keychain: &Keychain,
        account: &Account,
        credential: &Credential,
    ) -> Option<Result<(), Error>> {
        Some(oauth2::revoke(keychain, account, credential))
    }
}
