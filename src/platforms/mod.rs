//! One trait for every network; one adapter per network behind it.
use std::time::Duration;

pub use crate::core::post::Visibility;

/// An attachment as it will be uploaded.
pub struct Media {
    pub name: String,
    pub bytes: Vec<u8>,
    pub mime: String,
    pub alt: Option<String>,
}

/// What is sent: the exact text, media, and the idempotency key chosen when the delivery
/// was journaled, before any network call.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub text: &'a str,
    pub media: &'a [Media],
    /// The parent in the adapter's form (`core::target::reply_target`): Mastodon a status id, X a
    /// post id, Bluesky an `at://` URI.
    pub reply_to: Option<&'a str>,
    /// A BCP 47 tag. Mastodon `language`, Bluesky `langs`; X has no such field and ignores it.
    pub language: Option<&'a str>,
    /// Mastodon only; Bluesky and X refuse anything but `public` before sending anything.
    pub visibility: Option<Visibility>,
    pub key: &'a str,
    /// How media uploads are shown; [`Progress::HIDDEN`] shows nothing.
    pub progress: &'a Progress,
}

/// A spinner on stderr per media upload, or nothing.
pub struct Progress {
    /// Who the uploads are for (`brand`), when they are shown at all.
    label: Option<String>,
}

impl Progress {
    pub const HIDDEN: Progress = Progress { label: None };

    /// Spinners for `account`'s uploads when `show` (stderr a terminal, not `-q`, not `--json`).
    pub fn new(show: bool, account: &str) -> Progress {
        Progress {
            label: show.then(|| account.to_owned()),
        }
    }

    fn start(&self, media: &Media, number: usize, total: usize) -> Option<indicatif::ProgressBar> {
        let label = self.label.as_ref()?;
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(format!(
            "`{label}`: uploading {} ({}) [{number}/{total}]",
            media.name,
            indicatif::HumanBytes(media.bytes.len() as u64)
        ));
        bar.enable_steady_tick(Duration::from_millis(100));
        Some(bar)
    }
}

/// Uploads each attachment in order with `upload`, showing a spinner per file; stops at the
/// first failure. The adapters' one upload loop.
pub(crate) fn upload_each<T>(
    post: &Outgoing<'_>,
    mut upload: impl FnMut(&Media) -> Result<T, SendError>,
) -> Result<Vec<T>, SendError> {
    let total = post.media.len();
    let mut done = Vec::with_capacity(total);
    for (i, m) in post.media.iter().enumerate() {
        let bar = post.progress.start(m, i + 1, total);
        let result = upload(m);
        if let Some(bar) = bar {
            let label = post.progress.label.as_deref().unwrap_or_default();
            let size = indicatif::HumanBytes(m.bytes.len() as u64);
            if result.is_ok() {
                bar.set_style(
                    indicatif::ProgressStyle::with_template("  {msg}")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(format!("`{label}`: uploaded {} ({size})", m.name));
            } else {
                bar.abandon_with_message(format!("`{label}`: upload of {} failed", m.name));
            }
        }
        done.push(result?);
    }
    Ok(done)
}

/// Bluesky and X show every post to everyone: anything else is refused before any upload.
pub(crate) fn public_only(network: &str, post: &Outgoing<'_>) -> Result<(), SendError> {
    match post.visibility {
        Some(v) if v != Visibility::Public => Err(SendError::Refused {
            status: 0,
            message: format!("{network} has no visibility `{v}`; nothing was sent"),
        }),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub id: String,
    pub url: String,
}

/// The `status` of a `SendError::Refused` for a server gate could not connect to: no HTTP
/// status, and nothing left this machine.
pub const NOT_CONNECTED: u16 = 1;

#[derive(Debug)]
pub enum SendError {
    /// Definitely not sent (the server refused it: 4xx other than 429, validation errors).
    Refused { status: u16, message: String },
    /// May or may not have been sent (timeout after the request went out, connection dropped): resolve with `find` before sending again.
    Unknown { message: String },
    /// Not sent: too many requests; retry after this long if known.
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// The credential was rejected (401): exit 8.
    Credentials { message: String },
}

impl SendError {
    /// What the server or the connection said.
    pub fn message(&self) -> &str {
        match self {
            SendError::Refused { message, .. }
            | SendError::Unknown { message }
            | SendError::RateLimited { message, .. }
            | SendError::Credentials { message } => message,
        }
    }
}

/// What a lookup established about a delivery whose earlier try may have gone out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// It went out: this is the post.
    Found(Published),
    /// It is not there, and the lookup cannot have missed it: sending is safe.
    Absent,
    /// The network cannot say for sure (no candidate matched, but not every candidate could
    /// be seen, or a match could no longer be told apart): gate must not guess.
    Undetermined { reason: String },
}

impl Lookup {
    /// The post, when the lookup found it.
    pub fn found(self) -> Option<Published> {
        match self {
            Lookup::Found(p) => Some(p),
            _ => None,
        }
    }
}

/// How far a server's clock may run behind gate's: a lookup's candidates are the posts made at
/// or after the delivery was first claimed, less this.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

pub trait Publisher {
    /// The idempotency key for a new delivery. `delivery` names it stably (the post's digest
    /// and the account), so that a network that honours keys (Mastodon) sees the same key
    /// from every journal; Bluesky's is a fresh TID usable as the record key.
    fn new_key(&self, delivery: &str) -> String;
    fn publish(&self, post: &Outgoing<'_>) -> Result<Published, SendError>;
    /// After an unknown outcome: whether the post sent with this key went out. `since` is when
    /// the delivery was first claimed: only posts made at or after `since - CLOCK_SKEW` are
    /// candidates, so an older post with the same words is never taken for this one.
    fn find(
        &self,
        post: &Outgoing<'_>,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Lookup, SendError>;
    fn delete(&self, id: &str) -> Result<(), SendError>;
    fn whoami(&self) -> Result<String, SendError>;
}

pub mod bluesky;
pub mod mastodon;
pub mod oauth2;
mod response;
pub mod signin;
pub mod x;

/// The adapter for `account`'s network, speaking to its `server` with `credential`.
pub fn connect(
    account: &crate::core::policy::Account,
    credential: crate::credential::Credential,
    client: reqwest::blocking::Client,
) -> Result<Box<dyn Publisher>, crate::error::Error> {
    use crate::core::policy::Platform as Network;
    Ok(match account.platform {
        Network::Mastodon => Box::new(mastodon::Mastodon::new(&account.server, credential, client)),
        Network::X => Box::new(x::X::new(&account.server, credential, client)),
        Network::Bluesky => Box::new(bluesky::Bluesky::new(account, &credential)?),
    })
}

/// The sign-in of an account's network.
pub fn sign_in_of(platform: crate::core::policy::Platform) -> &'static dyn signin::SignIn {
    use crate::core::policy::Platform as Network;
    match platform {
        Network::Mastodon => &mastodon::signin::SIGN_IN,
        Network::X => &x::signin::SIGN_IN,
        Network::Bluesky => &bluesky::signin::BlueskySignIn,
    }
}

/// The account's credential from the keychain, refreshed first when it is about to expire
/// (under the account's lock); missing, expired beyond refresh or refused is exit 8.
pub fn credential_for(
    env: &crate::env::Env,
    account: &crate::core::policy::Account,
) -> Result<crate::credential::Credential, crate::error::Error> {
    sign_in_of(account.platform).usable(env, account)
}
