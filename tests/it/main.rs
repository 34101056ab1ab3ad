//! The integration tests: one crate (so the library is linked once), a module per area, and
//! one shared toolbox: `common` (the sandbox that runs the built `gate`, the setup most areas
//! start from, the keychain, the OAuth server, the Bluesky PDS, PostgreSQL, the fault proxy,
//! the one HTTP fake) and `fake` (the Mastodon and X fakes, handlers on that HTTP fake).

mod common;
mod fake;

mod audit;
mod bluesky;
mod campaign;
mod ci;
mod cli;
mod keychain;
mod oauth;
mod post;
mod retract;
mod review;
mod schedule;
mod schema;
mod state;
mod team;
mod thread;
