//! SIGHUP: re-read the command line's `--config` file (and `--banner
//! @FILE`, the users file, the FTPS certificate and key), put in force
//! what can change while the server runs, and say which changes need a
//! restart.
//!
//! Live: the accounts (the users file is re-read), `--banner`, `--allow`,
//! `--deny`, `--max-sessions`, `--max-per-ip`, `--ipv6-prefix`,
//! `--login-ban`, and the 227 addresses (`--pasv-address`,
//! `--pasv-address-map`; host names are resolved again). Everything else
//! (listeners, root, shards, ports, user, sandbox, timeouts, ...) is logged
//! as changed-but-not-applied until the next start. A configuration that
//! does not validate changes nothing, and the log says why.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::auth::ban::BanList;
use crate::auth::UsersDb;
use crate::config::Config;
use crate::config_file::{self, Setting};
use crate::data::announce::{self, Announcer, Reresolved};
use crate::limits::Limits;
use crate::live::{Live, Settings};
use crate::tls::certs::Reloadable;
use crate::xferlog::XferLog;

/// The keys SIGHUP applies at once.
pub const LIVE_KEYS: &[&str] = &[
    "banner",
    "allow",
    "deny",
    "max-sessions",
    "max-per-ip",
    "ipv6-prefix",
    "login-ban",
    "pasv-address",
    "pasv-address-map",
];

const ANNOUNCE_KEYS: &[&str] = &["pasv-address", "pasv-address-map"];

/// What a reload reads and what it changes.
pub(super) struct Reloader {
    /// The command line the server started with (re-merged with the file).
    pub argv: Vec<OsString>,
    /// The settings in force: the live ones as last applied, the others as
    /// at start-up.
    pub effective: Vec<Setting>,
    pub cpus: usize,
    pub users: Arc<UsersDb>,
    pub announce: Arc<Announcer>,
    pub live: Arc<Live>,
    pub limits: Arc<Limits>,
    pub bans: Arc<BanList>,
    /// The FTPS certificate and key, re-read on SIGHUP (a bad new pair
    /// keeps the old one).
    pub certs: Option<Arc<Reloadable>>,
    /// The transfer log, reopened on SIGHUP (logrotate moved it away; a
    /// reopen that fails keeps writing to the old file).
    pub xferlog: Option<Arc<XferLog>>,
}

impl Reloader {
    /// Handles one SIGHUP (blocking: name lookups; runs on the signal
    /// thread, never on a shard).
    pub(super) fn on_sighup(&mut self) {
        if let Some(certs) = &self.certs {
            match certs.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Err(e) => {
                    tracing::error!(
                        "SIGHUP: TLS certificate not reloaded, keeping the old one: {e}"
                    )
                }
            }
        }
        match self.users.reload() {
            Ok(Some(1)) => tracing::info!("SIGHUP: users file reloaded (1 account)"),
            Ok(Some(n)) => tracing::info!("SIGHUP: users file reloaded ({n} accounts)"),
            // No --users: nothing to reload, nothing to say.
            Ok(None) => {}
            Err(e) => {
                tracing::error!("SIGHUP: users file not reloaded, keeping the old accounts: {e}")
            }
        }
        if let Some(log) = &self.xferlog {
            match log.reopen() {
                Ok(true) => tracing::info!("SIGHUP: xferlog {} reopened", log.path().display()),
                Ok(false) => tracing::debug!(
                    "SIGHUP: xferlog {} still names the open file; kept as it is",
                    log.path().display()
                ),
                Err(e) => tracing::error!(
                    "SIGHUP: xferlog {} not reopened, still writing to the old file: {e}",
                    log.path().display()
                ),
            }
        }
        let loaded = match config_file::load(&self.argv) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("SIGHUP: configuration not reloaded, nothing changed: {e}");
                return self.reresolve();
            }
        };
        let changed = config_file::changed(&self.effective, &loaded.effective);
        let announce_changed = changed.iter().any(|k| ANNOUNCE_KEYS.contains(&k.as_str()));
        // Names are looked up again only when the flags changed; otherwise
        // re-resolving the table in force keeps a failed lookup's old
        // address (see `reresolve`).
        let placeholder = |_: &str| Ok(Ipv4Addr::UNSPECIFIED);
        let resolve: announce::Resolver = if announce_changed {
            &announce::resolve_name
        } else {
            &placeholder
        };
        let config = match Config::from_args_with(&loaded.args, self.cpus, resolve) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("SIGHUP: configuration not reloaded, nothing changed: {e}");
                return self.reresolve();
            }
        };
        self.live.replace(Settings::from_config(&config));
        self.limits
            .set(config.max_sessions, config.max_per_ip, config.ipv6_prefix);
        if changed.iter().any(|k| k == "max-sessions") {
            super::fd_budget(
                config.max_sessions as u64,
                super::chosen(&loaded.effective, "max-sessions"),
            );
        }
        self.bans.set(config.login_ban, config.ipv6_prefix);
        if announce_changed {
            for rule in config.pasv_announce.rules() {
                tracing::info!("SIGHUP: {rule}: announcing {} in 227 replies", rule.addr);
            }
            self.announce.replace(config.pasv_announce.clone());
        } else {
            self.reresolve();
        }
        for key in &changed {
            let new = loaded.effective.iter().find(|s| &s.key == key);
            let shown = new
                .and_then(|s| s.value.as_ref())
                .map(|v| v.to_string())
                .unwrap_or_else(|| "(not set)".into());
            if LIVE_KEYS.contains(&key.as_str()) {
                tracing::info!("SIGHUP: {key} = {shown}: in force for new connections");
                if let (Some(new), Some(old)) =
                    (new, self.effective.iter_mut().find(|s| &s.key == key))
                {
                    *old = new.clone();
                }
            } else {
                tracing::warn!("SIGHUP: {key} = {shown}: takes effect only after a restart");
            }
        }
        tracing::info!(
            allow_deny_rules = config.access.len(),
            max_sessions = config.max_sessions,
            max_per_ip = config.max_per_ip,
            "SIGHUP: configuration reloaded"
        );
    }

    /// Re-resolves the host names of the 227 table in force.
    fn reresolve(&self) {
        if self.announce.snapshot().has_names() {
            for r in self.announce.reresolve(&announce::resolve_name) {
                match r {
                    Reresolved::Failed { .. } => tracing::error!("SIGHUP: {r}"),
                    _ => tracing::info!("SIGHUP: {r}"),
                }
            }
        }
    }
}
