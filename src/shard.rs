//! What one shard's sessions share, and what an admitted session holds.
//!
//! [`ShardCtx`] is built once per shard thread by `server::run` and handed
//! (as an `Rc`) to the shard's accept loops and every session they start:
//! the validated config, the root, the shard's slice of the passive range,
//! its pipe pool and counters, and handles on the few things shared with
//! other shards (accounts, the ban table, limits, the 227 address table,
//! the shutdown phase). [`Places`] is what an admitted session occupies in
//! the shard's count and the server-wide limits; dropping it gives both
//! back. Neither the accept loop nor the session driver owns these types,
//! so neither imports the other.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::ban::BanList;
use crate::auth::UsersDb;
use crate::config::Config;
use crate::data::announce::Announcer;
use crate::data::passive::PortSlice;
use crate::engine::pool::WorkerPool;
use crate::engine::splice::{BufPool, PipePool};
use crate::engine::sys::{FdRef, Refuser};
use crate::limits::{Limits, Permit};
use crate::live::Live;
use crate::logging::limit::RefusalLog;
use crate::metrics::sessions::LiveTable;
use crate::metrics::ShardMetrics;
use crate::proto::{codes, Reply};
use crate::shutdown;
use crate::xferlog::ShardXferLog;

/// What every session of a shard shares. Lives on the shard thread only.
pub(crate) struct ShardCtx {
    pub id: usize,
    pub config: Arc<Config>,
    /// The root directory, for openat2 on the ring.
    pub root: FdRef,
    /// The same, for blocking-pool work (listings).
    pub root_fd: Arc<OwnedFd>,
    /// This shard's slice of the passive port range.
    pub ports: Rc<PortSlice>,
    pub pipes: PipePool,
    /// FTPS transfer buffers (userspace encryption).
    pub tls_buffers: BufPool,
    /// Worker threads for listings (directory reads and rendering).
    pub workers: WorkerPool,
    /// What the shard counts (sessions, commands, bytes, ...); written only
    /// here, read by the scrape thread and STAT.
    pub metrics: Arc<ShardMetrics>,
    /// The shard's open sessions, for `/sessions`.
    pub session_table: Rc<LiveTable>,
    /// Per-client budgets for refusal log lines.
    pub refusal_log: RefusalLog,
    pub xferlog: Option<ShardXferLog>,
    /// Accounts (shared by all shards; replaced whole on SIGHUP).
    pub users: Arc<UsersDb>,
    /// Failed logins per address (shared; touched only by logins).
    pub bans: Arc<BanList>,
    /// --max-sessions, --max-per-ip, --max-rate (shared, lock-free or
    /// striped; see [`crate::limits`]).
    pub limits: Arc<Limits>,
    /// The banner and the access list (shared; replaced whole on SIGHUP).
    pub live: Arc<Live>,
    /// Where a graceful shutdown stands.
    pub shutdown: shutdown::Watch,
    /// What the shard does when the process runs out of fds.
    pub fd_shortage: FdShortage,
    /// Password checks this shard runs at once. Each argon2 check holds
    /// about 19 MiB for tens of milliseconds; unbounded, a login storm
    /// (or anyone guessing names) could make the server hold gigabytes.
    pub password_checks: Rc<tokio::sync::Semaphore>,
    /// The addresses 227 replies announce, by client network (shared;
    /// read once per PASV, replaced whole when SIGHUP re-resolves names).
    pub announce: Arc<Announcer>,
    /// FTPS (shared by all shards), when a certificate is configured.
    pub tls: Option<Arc<crate::tls::Tls>>,
}

/// What an admitted session occupies: its place in the shard's count and
/// in the server-wide limits. Dropping it gives both back.
pub(crate) struct Places {
    _slot: SessionSlot,
    _permit: Permit,
}

impl Places {
    /// Counts a session in `ctx`'s `sessions_open` from now on, and holds
    /// its server-wide `permit`, until dropped.
    pub(crate) fn new(ctx: &Rc<ShardCtx>, permit: Permit) -> Places {
        Places {
            _slot: SessionSlot::new(ctx),
            _permit: permit,
        }
    }
}

/// A session counted in its shard's `sessions_open` while it lives.
struct SessionSlot(Arc<ShardMetrics>);

impl SessionSlot {
    fn new(ctx: &Rc<ShardCtx>) -> SessionSlot {
        ctx.metrics.sessions_open.inc();
        ctx.metrics.sessions_total.inc();
        SessionSlot(ctx.metrics.clone())
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions_open.dec();
    }
}

/// How long after a logged fd shortage another one is only counted: fds
/// that hover at the limit start and end a shortage with every client
/// admitted, and would otherwise log two lines each.
const SHORTAGE_LOG_EVERY: Duration = Duration::from_secs(10);

/// A shard's view of the process running out of file descriptors: the
/// [`Refuser`] that answers new clients 421 meanwhile (accept itself would
/// need an fd), and the log lines that say when it began and ended.
pub(crate) struct FdShortage {
    /// The shard's id, for the log.
    shard: usize,
    /// None when the ring could not be made (logged at start-up): then new
    /// clients wait in the backlog until fds free up.
    refuser: Option<Refuser>,
    /// When the shortage being lived through began (None: no shortage).
    since: Cell<Option<Instant>>,
    /// Whether its beginning was logged (its end is logged only then).
    logged: Cell<bool>,
    /// When a beginning was last logged.
    last_logged: Cell<Option<Instant>>,
    /// Shortages begun and not logged since the last logged one.
    unlogged: Cell<u64>,
    /// Clients refused since the last line about the shortage.
    refused: Cell<u64>,
}

impl FdShortage {
    /// Makes the shard's refusal ring (one fd, taken now); see
    /// [`Refuser::new`] for its errors.
    pub(crate) fn new(shard: usize) -> std::io::Result<FdShortage> {
        let line = Reply::new(
            codes::SERVICE_NOT_AVAILABLE,
            "Server out of resources, try again later.",
        )
        .to_bytes();
        Ok(FdShortage::with(shard, Some(Refuser::new(line)?)))
    }

    /// One with no refuser: clients wait in the backlog in a shortage.
    pub(crate) fn without_refuser(shard: usize) -> FdShortage {
        FdShortage::with(shard, None)
    }

    fn with(shard: usize, refuser: Option<Refuser>) -> FdShortage {
        FdShortage {
            shard,
            refuser,
            since: Cell::new(None),
            logged: Cell::new(false),
            last_logged: Cell::new(None),
            unlogged: Cell::new(0),
            refused: Cell::new(0),
        }
    }

    /// The ring that refuses clients while fds are short, if there is one.
    pub(crate) fn refuser(&self) -> Option<&Refuser> {
        self.refuser.as_ref().filter(|r| r.usable())
    }

    /// accept met EMFILE or ENFILE: a shortage begins, unless one is under
    /// way. Logged as an error, at most once per [`SHORTAGE_LOG_EVERY`].
    pub(crate) fn began(&self) {
        if self.since.get().is_some() {
            return;
        }
        let now = Instant::now();
        self.since.set(Some(now));
        let quiet = self
            .last_logged
            .get()
            .is_some_and(|t| now.duration_since(t) < SHORTAGE_LOG_EVERY);
        self.logged.set(!quiet);
        if quiet {
            self.unlogged.set(self.unlogged.get() + 1);
            return;
        }
        self.last_logged.set(Some(now));
        let more = match self.unlogged.replace(0) {
            0 => String::new(),
            n => format!(
                " ({n} more shortages since the last line, {} clients refused in them)",
                self.refused.replace(0)
            ),
        };
        match self.refuser {
            Some(_) => tracing::error!(
                shard = self.shard,
                "out of file descriptors: refusing new sessions with 421 until some close (raise the fd limit, or lower --max-sessions){more}"
            ),
            None => tracing::error!(
                shard = self.shard,
                "out of file descriptors: new clients wait until some close (raise the fd limit, or lower --max-sessions){more}"
            ),
        }
    }

    /// A client was refused with 421 for want of fds.
    pub(crate) fn refused(&self) {
        self.refused.set(self.refused.get() + 1);
    }

    /// A connection was accepted: fds are there again. Ends the shortage,
    /// if there was one, and says so if its beginning was logged.
    pub(crate) fn accepted(&self) {
        let Some(since) = self.since.take() else {
            return;
        };
        if self.logged.replace(false) {
            tracing::info!(
                shard = self.shard,
                "file descriptors available again after {:.1} s; accepting sessions ({} refused meanwhile)",
                since.elapsed().as_secs_f64(),
                self.refused.replace(0)
            );
        }
    }
}
