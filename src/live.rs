//! Settings that SIGHUP changes while the server runs and that every new
//! connection reads: the 220 banner and the `--allow`/`--deny` list.
//! (Other live settings live with what they govern: accounts in
//! [`crate::auth::UsersDb`], 227 addresses in
//! [`crate::data::announce::Announcer`], session limits in
//! [`crate::limits::Limits`], bans in [`crate::auth::ban::BanList`].)
//!
//! A connection takes one snapshot (one uncontended read lock and an `Arc`
//! clone); a reload swaps in a new set whole, so a connection never sees
//! half of one.

use std::sync::{Arc, RwLock};

use crate::access::AccessList;
use crate::config::Config;

/// The settings in force for new connections.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The 220 greeting (lines separated by `\n`).
    pub banner: Vec<u8>,
    pub access: AccessList,
}

impl Settings {
    pub(crate) fn from_config(c: &Config) -> Settings {
        Settings {
            banner: c.banner.clone(),
            access: c.access.clone(),
        }
    }
}

/// Shared by all shards; replaced whole on SIGHUP.
#[derive(Debug)]
pub(crate) struct Live {
    current: RwLock<Arc<Settings>>,
}

impl Live {
    pub(crate) fn new(s: Settings) -> Live {
        Live {
            current: RwLock::new(Arc::new(s)),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Settings> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn replace(&self, s: Settings) {
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(s),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(s),
        }
    }
}
