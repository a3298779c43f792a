//! Accounts: who may log in, with which password, where their home is and
//! what they may do there.
//!
//! - [`users`]: the users file (TOML), validated at start and on SIGHUP;
//! - [`password`]: argon2id PHC hashes (`ringftp passwd`) and their check,
//!   which the session driver runs on the blocking pool, never on a shard;
//! - [`ban`]: failed logins per client address (`--login-ban N/WINDOW`).

pub mod ban;
pub mod password;
pub mod users;

pub use users::{Perms, User, Users, UsersDb};
