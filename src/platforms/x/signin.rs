//! Signing an X account in: OAuth in the browser with the team's app (its `client_id` in the
//! policy; a client secret, if the app has one, from stdin or a hidden prompt, kept in the
//! keychain), or a token made elsewhere (`--with-token`).

use crate::core::policy::Account;
use crate::error::Error;
use crate::keychain::Keychain;
use crate::platforms::oauth2::{self, App, OAuth2SignIn, SignInClient};
use crate::platforms::signin::{Paste, SignedIn, Talk};

/// X's sign-in.
pub const SIGN_IN: OAuth2SignIn<TeamApp> = OAuth2SignIn(TeamApp);

/// The team's own app in the X developer portal.
pub struct TeamApp;

impl SignInClient for TeamApp {
    fn check_secret(&self, account: &Account, client_secret: Option<&str>) -> Result<(), Error> {
        if let Some(value) = client_secret
            && !value.is_empty()
            && value != "-"
        {
            return Err(
                Error::usage("a client secret is never taken from the command line").with_hint(
                    format!(
                        "pipe it in with `gate auth login {} --client-secret - < secret.txt`, or give `--client-secret` alone on a terminal",
                        account.name
                    ),
                ),
            );
        }
        Ok(())
    }

    fn browser(
        &self,
        talk: &dyn Talk,
        keychain: &Keychain,
        account: &Account,
        client_secret: Option<&str>,
    ) -> Result<SignedIn, Error> {
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
}
