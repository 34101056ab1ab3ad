//! The OS keychain: the only place gate keeps tokens.
//!
//! Secret Service first (GNOME Keyring, KeePassXC, KWallet's bridge) over the session D-Bus,
//! through `keyring-core` and its zbus store; the kernel's keyutils session keyring when no
//! Secret Service is present. Items are service `gate` + a user naming the account and the
//! network's host, so `secret-tool lookup service gate username brand@mastodon.social` finds
//! what gate stored, and gate finds what `secret-tool store` stored.
//!
//! Rules: every call runs on a worker thread bounded by a timeout; gate never shows an unlock
//! prompt (a locked keyring is an error with its fix); there is no plaintext fallback. Nothing
//! here is touched before a command asks for the keychain, so `gate check` never pays for it.

use std::sync::mpsc;
use std::time::Duration;

use secrecy::SecretString;

use crate::env::Env;

/// The service every gate item is stored under.
pub const SERVICE: &str = "gate";
/// How long opening the keychain (connecting to the bus, finding the provider) may take, and
/// then each read, write or delete: long enough for a keyring daemon on a busy machine (16
/// gate processes starting at once), short enough that a stuck one fails a cron job soon.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// [`TIMEOUT`], or in debug builds `GATE_TEST_KEYCHAIN_WAIT` seconds, so a test of a stuck
/// keyring need not wait the whole time.
fn timeout(env: &Env) -> Duration {
    #[cfg(debug_assertions)]
    if let Some(secs) = env
        .var("GATE_TEST_KEYCHAIN_WAIT")
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Duration::from_secs(secs);
    }
    let _ = env;
    TIMEOUT
}

/// Where a secret is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The freedesktop Secret Service on the session bus (`org.freedesktop.secrets`).
    SecretService,
    /// The Linux kernel's keyutils session keyring (forgotten at reboot).
    KeyUtils,
}

impl Backend {
    /// The name `GATE_KEYCHAIN` and `--json` use.
    pub fn id(self) -> &'static str {
        match self {
            Backend::SecretService => "secret-service",
            Backend::KeyUtils => "keyutils",
        }
    }

    /// The name people read.
    pub fn name(self) -> &'static str {
        match self {
            Backend::SecretService => "Secret Service",
            Backend::KeyUtils => "kernel keyutils",
        }
    }

    /// "stored in …"
    pub fn place(self) -> &'static str {
        match self {
            Backend::SecretService => "the Secret Service keyring",
            Backend::KeyUtils => "the kernel keyutils session keyring",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One backend that was tried and is not there, with the fix.
#[derive(Debug, Clone)]
pub struct Tried {
    pub backend: Backend,
    pub why: String,
    pub fix: String,
}

/// Why the keychain cannot be used. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    /// No backend is present (no bus, no provider, no session keyring).
    #[error("no keychain is reachable: {}", tried.iter().map(|t| format!("{}: {}", t.backend, t.why)).collect::<Vec<_>>().join("; "))]
    Unavailable { tried: Vec<Tried> },
    /// The Secret Service is there but its keyring is locked (or an unlock prompt was dismissed).
    #[error("{0}")]
    Locked(String),
    /// The Secret Service has no default keyring to keep items in.
    #[error("the Secret Service has no default keyring to store into")]
    NoDefaultKeyring,
    /// A backend did not answer in time.
    #[error("{} did not answer within {} s", .0.place(), .1.as_secs())]
    Timeout(Backend, Duration),
    /// `GATE_KEYCHAIN` names no backend.
    #[error("`GATE_KEYCHAIN` is `{0}`; it must be `secret-service` or `keyutils`")]
    Setting(String),
    /// Anything else the backend reported.
    #[error("{0}")]
    Other(String),
}

impl KeychainError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            KeychainError::Unavailable { tried } => {
                let mut fixes: Vec<&str> = Vec::new();
                for t in tried {
                    if !fixes.contains(&t.fix.as_str()) {
                        fixes.push(&t.fix);
                    }
                }
                format!("{}; gate never keeps tokens in a file", fixes.join(", or "))
            }
            KeychainError::Locked(_) => "unlock the keyring (log in to your desktop session, or `printf %s \"$PASSWORD\" | \
                 gnome-keyring-daemon --unlock`) and run gate again; gate never shows an unlock prompt"
                .to_owned(),
            KeychainError::NoDefaultKeyring => "create the default (login) keyring in your keyring manager; with gnome-keyring, \
                 `printf %s \"$PASSWORD\" | gnome-keyring-daemon --unlock` creates and unlocks it"
                .to_owned(),
            KeychainError::Timeout(Backend::SecretService, _) => "check that the keyring daemon is running and not stuck \
                 waiting for a prompt; `GATE_KEYCHAIN=keyutils` under `keyctl session -` uses the kernel keyring instead"
                .to_owned(),
            KeychainError::Timeout(Backend::KeyUtils, _) => "try again; the kernel keyring should answer at once".to_owned(),
            KeychainError::Setting(_) => "unset `GATE_KEYCHAIN` to let gate choose, or set it to `secret-service` or `keyutils`".to_owned(),
            KeychainError::Other(_) => "check the keyring daemon's log; gate never keeps tokens in a file".to_owned(),
        }
    }
}

/// The keychain gate uses for this run: one backend, chosen by [`Keychain::open`].
pub struct Keychain {
    backend: Backend,
    /// How long one call may take ([`timeout`]).
    wait: Duration,
    #[cfg(target_os = "linux")]
    inner: std::sync::Arc<platform::Inner>,
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keychain")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Keychain {
    /// Secret Service first (bounded by [`TIMEOUT`]), then keyutils.
    /// `GATE_KEYCHAIN=secret-service|keyutils` forces one.
    ///
    /// Only an absent Secret Service (no bus, no provider) falls through to keyutils; a locked
    /// or unresponsive one is an error, so tokens never silently split across two keychains.
    pub fn open(env: &Env) -> Result<Keychain, KeychainError> {
        let forced = match env.var("GATE_KEYCHAIN").filter(|v| !v.is_empty()) {
            None => None,
            Some("secret-service") => Some(Backend::SecretService),
            Some("keyutils") => Some(Backend::KeyUtils),
            Some(other) => return Err(KeychainError::Setting(other.to_owned())),
        };
        Self::open_platform(env, forced)
    }

    #[cfg(target_os = "linux")]
    fn open_platform(env: &Env, forced: Option<Backend>) -> Result<Keychain, KeychainError> {
        let mut tried = Vec::new();
        if forced != Some(Backend::KeyUtils) {
            match platform::open_secret_service(env, timeout(env)) {
                Ok(inner) => return Ok(Keychain::new(env, Backend::SecretService, inner)),
                Err(platform::OpenError::Absent(t)) => tried.push(t),
                Err(platform::OpenError::Fatal(e)) => return Err(e),
            }
        }
        if forced != Some(Backend::SecretService) {
            match platform::open_keyutils(timeout(env)) {
                Ok(inner) => return Ok(Keychain::new(env, Backend::KeyUtils, inner)),
                Err(platform::OpenError::Absent(t)) => tried.push(t),
                Err(platform::OpenError::Fatal(e)) => return Err(e),
            }
        }
        Err(KeychainError::Unavailable { tried })
    }

    #[cfg(not(target_os = "linux"))]
    fn open_platform(_env: &Env, forced: Option<Backend>) -> Result<Keychain, KeychainError> {
        let backends = match forced {
            Some(b) => vec![b],
            None => vec![Backend::SecretService, Backend::KeyUtils],
        };
        Err(KeychainError::Unavailable {
            tried: backends
                .into_iter()
                .map(|backend| Tried {
                    backend,
                    why: "not built for this operating system".to_owned(),
                    fix: "run gate on Linux; other keychains are not supported yet".to_owned(),
                })
                .collect(),
        })
    }

    #[cfg(target_os = "linux")]
    fn new(env: &Env, backend: Backend, inner: platform::Inner) -> Keychain {
        Keychain {
            backend,
            wait: timeout(env),
            inner: std::sync::Arc::new(inner),
        }
    }

    /// Which backend holds the secrets (for `gate auth status`).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The secret stored for `user` under service `gate`, if any.
    pub fn get(&self, user: &str) -> Result<Option<SecretString>, KeychainError> {
        #[cfg(target_os = "linux")]
        {
            let inner = self.inner.clone();
            let user = user.to_owned();
            bounded(self.backend, self.wait, move || inner.get(&user))?
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = user;
            unreachable!("no keychain opens on this operating system")
        }
    }

    /// Stores (or replaces) the secret for `user` under service `gate`.
    pub fn set(&self, user: &str, secret: &SecretString) -> Result<(), KeychainError> {
        #[cfg(target_os = "linux")]
        {
            use secrecy::ExposeSecret as _;
            let inner = self.inner.clone();
            let user = user.to_owned();
            let bytes = zeroize::Zeroizing::new(secret.expose_secret().as_bytes().to_vec());
            bounded(self.backend, self.wait, move || inner.set(&user, &bytes))?
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (user, secret);
            unreachable!("no keychain opens on this operating system")
        }
    }

    /// Removes the secret for `user`; `false` when there was none.
    pub fn delete(&self, user: &str) -> Result<bool, KeychainError> {
        #[cfg(target_os = "linux")]
        {
            let inner = self.inner.clone();
            let user = user.to_owned();
            bounded(self.backend, self.wait, move || inner.delete(&user))?
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = user;
            unreachable!("no keychain opens on this operating system")
        }
    }
}

/// Runs `work` on a worker thread and waits at most `timeout` for it. A call that does not
/// come back is abandoned (the process ends soon after); its thread holds no lock gate needs.
fn bounded<T: Send + 'static>(
    backend: Backend,
    timeout: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KeychainError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("gate-keychain".to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| KeychainError::Other(format!("cannot start a keychain worker thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(value) => Ok(value),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(KeychainError::Timeout(backend, timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(KeychainError::Other(format!(
            "the {} worker stopped without an answer",
            backend.name()
        ))),
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use keyring_core::api::CredentialStore;
    use secrecy::SecretString;
    use zbus::blocking::Connection;
    use zbus::zvariant::OwnedObjectPath;
    use zeroize::Zeroizing;

    use super::{Backend, Duration, KeychainError, SERVICE, Tried, bounded};
    use crate::env::Env;

    const SECRETS: &str = "org.freedesktop.secrets";
    const SECRETS_PATH: &str = "/org/freedesktop/secrets";
    const SERVICE_IFACE: &str = "org.freedesktop.Secret.Service";
    const COLLECTION_IFACE: &str = "org.freedesktop.Secret.Collection";

    pub(super) enum OpenError {
        /// The backend is not there: try the next one.
        Absent(Tried),
        /// The backend is there but unusable: stop.
        Fatal(KeychainError),
    }

    pub(super) struct Inner {
        store: Arc<CredentialStore>,
        /// For the Secret Service: a plain connection for the lock checks that keep the store
        /// from ever asking the provider to show an unlock prompt.
        bus: Option<Connection>,
        backend: Backend,
    }

    fn absent(backend: Backend, why: impl Into<String>, fix: impl Into<String>) -> OpenError {
        OpenError::Absent(Tried {
            backend,
            why: why.into(),
            fix: fix.into(),
        })
    }

    const START_PROVIDER: &str =
        "start gnome-keyring-daemon (or KeePassXC's Secret Service) in your session";

    pub(super) fn open_secret_service(env: &Env, wait: Duration) -> Result<Inner, OpenError> {
        let backend = Backend::SecretService;
        // zbus reads DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus; say which is missing.
        let address = match env
            .var("DBUS_SESSION_BUS_ADDRESS")
            .filter(|v| !v.is_empty())
        {
            Some(a) => a.to_owned(),
            None => {
                let runtime = env
                    .var("XDG_RUNTIME_DIR")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        effective_uid().map(|uid| PathBuf::from(format!("/run/user/{uid}")))
                    });
                let socket = runtime.map(|r| r.join("bus"));
                match socket {
                    Some(s) if s.exists() => format!("unix:path={}", s.display()),
                    other => {
                        let tail = other
                            .map(|s| format!(" and there is no `{}`", s.display()))
                            .unwrap_or_default();
                        return Err(absent(
                            backend,
                            format!(
                                "no D-Bus session bus (`DBUS_SESSION_BUS_ADDRESS` is not set{tail})"
                            ),
                            "run gate in your desktop session, or start a session bus with a Secret Service in it \
                             (`dbus-run-session`, then `gnome-keyring-daemon --unlock`)",
                        ));
                    }
                }
            }
        };
        let probe = move || -> Result<Inner, OpenError> {
            let bus = zbus::blocking::connection::Builder::address(address.as_str())
                .and_then(|b| b.build())
                .map_err(|e| {
                    absent(
                        backend,
                        format!(
                            "cannot connect to the session bus at `{address}`: {}",
                            bus_reason(&e)
                        ),
                        "check `DBUS_SESSION_BUS_ADDRESS`, or run gate in your desktop session",
                    )
                })?;
            let fail = |what: &str, e: zbus::Error| {
                OpenError::Fatal(KeychainError::Other(format!(
                    "the Secret Service {what}: {}",
                    bus_reason(&e)
                )))
            };
            let dbus = zbus::blocking::fdo::DBusProxy::new(&bus)
                .map_err(|e| fail("bus refused a call", e))?;
            let name = zbus::names::BusName::try_from(SECRETS)
                .map_err(|e| fail("name is invalid", e.into()))?;
            let owned = dbus
                .name_has_owner(name)
                .map_err(|e| fail("bus refused a call", e.into()))?;
            if !owned {
                // A provider the bus can start on demand is as good as a running one.
                let activatable = dbus
                    .list_activatable_names()
                    .map(|names| names.iter().any(|n| n.as_str() == SECRETS))
                    .unwrap_or(false);
                if !activatable {
                    return Err(absent(
                        backend,
                        format!("no provider owns {SECRETS} on the session bus"),
                        START_PROVIDER,
                    ));
                }
            }
            default_keyring_unlocked(&bus).map_err(OpenError::Fatal)?;
            let store = zbus_secret_service_keyring_store::Store::new()
                .map_err(|e| OpenError::Fatal(map_error(backend, e)))?;
            Ok(Inner {
                store,
                bus: Some(bus),
                backend,
            })
        };
        match bounded(backend, wait, probe) {
            Ok(result) => result,
            Err(e) => Err(OpenError::Fatal(e)),
        }
    }

    pub(super) fn open_keyutils(wait: Duration) -> Result<Inner, OpenError> {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        let backend = Backend::KeyUtils;
        let fix = "run gate under `keyctl session -` to use the kernel keyring";
        let probe = move || -> Result<Inner, OpenError> {
            let ring = KeyRing::from_special_id(KeyRingIdentifier::Session, false)
                .map_err(|e| absent(backend, format!("no session keyring ({e})"), fix))?;
            let meta = ring.metadata().map_err(|e| {
                absent(
                    backend,
                    format!("the session keyring cannot be read ({e})"),
                    fix,
                )
            })?;
            // Without a session keyring of its own, a process gets the user-default one
            // (`_uid_ses.UID`), whose keys it may add but not read back.
            if meta.get_description().starts_with("_uid_ses.") {
                return Err(absent(
                    backend,
                    "this process has no session keyring of its own (only the user default, which cannot read keys back)",
                    fix,
                ));
            }
            let store = linux_keyutils_keyring_store::Store::new()
                .map_err(|e| OpenError::Fatal(map_error(backend, e)))?;
            Ok(Inner {
                store,
                bus: None,
                backend,
            })
        };
        match bounded(backend, wait, probe) {
            Ok(result) => result,
            Err(e) => Err(OpenError::Fatal(e)),
        }
    }

    impl Inner {
        pub(super) fn get(&self, user: &str) -> Result<Option<SecretString>, KeychainError> {
            self.refuse_locked_items(user)?;
            let entry = self
                .store
                .build(SERVICE, user, None)
                .map_err(|e| map_error(self.backend, e))?;
            match entry.get_secret() {
                Ok(bytes) => {
                    let bytes = Zeroizing::new(bytes);
                    let text = std::str::from_utf8(&bytes).map_err(|_| {
                        KeychainError::Other(format!(
                            "the secret stored for `{user}` is not UTF-8 text"
                        ))
                    })?;
                    Ok(Some(SecretString::from(text)))
                }
                Err(keyring_core::Error::NoEntry) => Ok(None),
                Err(e) => Err(map_error(self.backend, e)),
            }
        }

        pub(super) fn set(&self, user: &str, secret: &[u8]) -> Result<(), KeychainError> {
            self.refuse_locked_items(user)?;
            if let Some(bus) = &self.bus {
                default_keyring_unlocked(bus)?;
            }
            let entry = self
                .store
                .build(SERVICE, user, None)
                .map_err(|e| map_error(self.backend, e))?;
            entry
                .set_secret(secret)
                .map_err(|e| map_error(self.backend, e))
        }

        pub(super) fn delete(&self, user: &str) -> Result<bool, KeychainError> {
            self.refuse_locked_items(user)?;
            let entry = self
                .store
                .build(SERVICE, user, None)
                .map_err(|e| map_error(self.backend, e))?;
            match entry.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring_core::Error::NoEntry) => Ok(false),
                Err(e) => Err(map_error(self.backend, e)),
            }
        }

        /// The zbus store unlocks locked matches, which shows a prompt on a desktop. gate never
        /// does: a locked match is an error before the store sees it.
        fn refuse_locked_items(&self, user: &str) -> Result<(), KeychainError> {
            let Some(bus) = &self.bus else {
                return Ok(());
            };
            let attributes: HashMap<&str, &str> =
                HashMap::from([("service", SERVICE), ("username", user)]);
            let reply = bus
                .call_method(
                    Some(SECRETS),
                    SECRETS_PATH,
                    Some(SERVICE_IFACE),
                    "SearchItems",
                    &(attributes,),
                )
                .map_err(|e| {
                    KeychainError::Other(format!(
                        "the Secret Service refused a search: {}",
                        bus_reason(&e)
                    ))
                })?;
            let (_unlocked, locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) =
                reply.body().deserialize().map_err(|e| {
                    KeychainError::Other(format!("the Secret Service answered a search oddly: {e}"))
                })?;
            if locked.is_empty() {
                Ok(())
            } else {
                Err(KeychainError::Locked(format!(
                    "the Secret Service keyring holding `{user}` is locked"
                )))
            }
        }
    }

    /// Fails when the default collection is missing or locked; never asks to unlock it.
    fn default_keyring_unlocked(bus: &Connection) -> Result<(), KeychainError> {
        let odd = |e: zbus::Error| {
            KeychainError::Other(format!(
                "the Secret Service refused a call: {}",
                bus_reason(&e)
            ))
        };
        let reply = bus
            .call_method(
                Some(SECRETS),
                SECRETS_PATH,
                Some(SERVICE_IFACE),
                "ReadAlias",
                &("default",),
            )
            .map_err(odd)?;
        let path: OwnedObjectPath = reply.body().deserialize().map_err(odd)?;
        if path.as_str() == "/" {
            return Err(KeychainError::NoDefaultKeyring);
        }
        let properties = zbus::blocking::fdo::PropertiesProxy::builder(bus)
            .destination(SECRETS)
            .and_then(|b| b.path(path.clone()))
            .and_then(|b| b.build())
            .map_err(odd)?;
        let interface = zbus::names::InterfaceName::from_static_str_unchecked(COLLECTION_IFACE);
        let locked = properties
            .get(interface.clone(), "Locked")
            .map_err(|e| odd(e.into()))
            .and_then(|v| bool::try_from(v).map_err(|e| odd(e.into())))?;
        if locked {
            let label = properties
                .get(interface, "Label")
                .ok()
                .and_then(|v| String::try_from(v).ok())
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "default".to_owned());
            return Err(KeychainError::Locked(format!(
                "the Secret Service keyring `{label}` is locked"
            )));
        }
        Ok(())
    }

    /// keyring-core's errors in gate's words. Never `{:?}`: some variants carry the secret's bytes.
    fn map_error(backend: Backend, e: keyring_core::Error) -> KeychainError {
        use keyring_core::Error as E;
        match e {
            E::NoStorageAccess(why) => match backend {
                Backend::SecretService => KeychainError::Locked(format!(
                    "the Secret Service refused access ({why}): the keyring is locked or an unlock prompt was dismissed"
                )),
                Backend::KeyUtils => {
                    KeychainError::Other(format!("the kernel keyring refused access ({why})"))
                }
            },
            E::PlatformFailure(why) => KeychainError::Other(format!("{}: {why}", backend.name())),
            E::Ambiguous(items) => KeychainError::Other(format!(
                "{} items in {} match this account; remove the extra ones (e.g. with `secret-tool clear`)",
                items.len(),
                backend.place()
            )),
            E::BadEncoding(_) | E::BadDataFormat(..) => {
                KeychainError::Other("the stored secret is not in a readable format".to_owned())
            }
            other => KeychainError::Other(format!("{}: {other}", backend.name())),
        }
    }

    /// A bus error without zbus's wrapping noise.
    fn bus_reason(e: &zbus::Error) -> String {
        match e {
            zbus::Error::InputOutput(io) => crate::error::io_reason(io),
            zbus::Error::MethodError(name, Some(text), _) => format!("{text} ({})", name.as_str()),
            other => other.to_string(),
        }
    }

    fn effective_uid() -> Option<u32> {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
}

/// A keychain that cannot be used is exit 8 with its fix; a bad `GATE_KEYCHAIN` is a usage error.
impl From<KeychainError> for crate::error::Error {
    fn from(e: KeychainError) -> crate::error::Error {
        let hint = e.hint();
        match e {
            KeychainError::Setting(_) => crate::error::Error::usage(e.to_string()).with_hint(hint),
            _ => crate::error::Error::credentials(e.to_string()).with_hint(hint),
        }
    }
}
