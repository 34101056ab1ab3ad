//! Signing an X account in: OAuth in the browser with the team's app (its `client_id` in the
//! policy; a client secret, if the app has one, from stdin or a hidden prompt, kept in the
//! keychain), or a token made elsewhere (`--with-token`).

use chrono::{DateTime, Utc};

use crate::core::policy::Account;
use crate::credential::Credential;
use crate::env::Env;
use crate::error::Error;
use crate::keychain::Keychain;
use crate::platforms::oauth2::{self, App};
use crate::platforms::signin::{self, How, Paste, SignIn, SignedIn, Talk};

pub struct XSignIn;

impl SignIn for XSignIn {
    fn check(&self, account: &Account, how: How<'_>) -> Result<(), Error> {
        match how {
            How::AppPassword => Err(signin::no_app_password(account)),
            How::Token => Ok(()),
            How::Browser { client_secret } => {
                oauth2::Endpoints::for_account(account)?;
                if let Some(value) = client_secret
                    && !value.is_empty()
                    && value != "-"
                {
                    return Err(Error::usage(
                        "a client secret is never taken from the command line",
                    )
                    .with_hint(format!(
                        "pipe it in with `gate auth login {} --client-secret - < secret.txt`, or give `--client-secret` alone on a terminal",
                        account.name
                    )));
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
        let client_secret = match how {
            How::Token => return signin::token(talk, account),
            How::AppPassword => return Err(signin::no_app_password(account)),
            How::Browser { client_secret } => client_secret,
        };
        let name = &account.name;
        // The team's app: its client id from the policy, its secret given now or kept.
        let choose = |endpoints: &oauth2::Endpoints, _redirect: &str, _listening: bool| {
            let client_id = endpoints.client_id.clone().ok_or_else(|| {
                Error::usage(format!("account `{name}` has no OAuth `client_id`"))
                    .with_hint(format!(
                        "add `client_id = \"...\"` (your team's app in the X developer portal) under `[accounts.{name}.oauth]` in the policy"
                    ))
            })?;
            let bare = |client_secret| App {
                client_id: client_id.clone(),
                client_secret,
                redirect_uris: Vec::new(),
                scopes: Vec::new(),
            };
            Ok(match client_secret {
                Some(value) => (
                    bare(Some(talk.pasted(value == "-", "Client secret")?)),
                    true,
                ),
                None => match oauth2::stored_app(keychain, account, Some(&client_id))? {
                    Some(app) => (app, false),
                    None => (bare(None), false),
                },
            })
        };
        oauth2::browser_sign_in(
            talk,
            keychain,
            account,
            &choose,
            Paste::RedirectAddress,
            true,
        )
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
