//! Accounts: who may log in, with which password, where their home is and
//! what they may do there.
//!
//! - [`users`]: the users file (TOML), validated at start and on SIGHUP;
//! - [`password`]: argon2id PHC hashes (`ringftp passwd`) and their check,
//!   which the session driver runs on the blocking pool, never on a shard;
//! - [`ban`]: failed logins per client address (`--login-ban N/WINDOW`);
//! - [`login`]: the login policy (anonymous names, the decoy hash, the
//!   growing delay, the attempt cap), pure, given a password verifier;
//! - [`perms`]: what an account may do;
//! - [`tls`]: who must use TLS (`--tls-required`, `--tls-data`), pure.

pub(crate) mod ban;
pub mod login;
pub mod password;
pub mod perms;
pub(crate) mod tls;
pub(crate) mod users;

pub use perms::Perms;
pub(crate) use users::UsersDb;
