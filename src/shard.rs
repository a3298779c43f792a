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

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;

use crate::auth::ban::BanList;
use crate::auth::UsersDb;
use crate::config::Config;
use crate::data::announce::Announcer;
use crate::data::passive::PortSlice;
use crate::engine::pool::WorkerPool;
use crate::engine::splice::{BufPool, PipePool};
use crate::engine::sys::FdRef;
use crate::limits::{Limits, Permit};
use crate::live::Live;
use crate::logging::limit::RefusalLog;
use crate::metrics::sessions::LiveTable;
use crate::metrics::ShardMetrics;
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
    /// The fd held back to refuse clients with when fds run out.
    pub reserve: Reserve,
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

/// One file descriptor a shard holds back for the moment the process runs
/// out of them (the trick nginx and others use): giving it up makes room
/// to accept a waiting client just long enough to answer it 421.
pub(crate) struct Reserve {
    fd: RefCell<Option<std::fs::File>>,
    /// In an fd shortage: logged once when it starts and once when it ends.
    short: Cell<bool>,
    refused: Cell<u64>,
}

impl Default for Reserve {
    fn default() -> Self {
        Reserve {
            fd: RefCell::new(std::fs::File::open("/dev/null").ok()),
            short: Cell::new(false),
            refused: Cell::new(0),
        }
    }
}

impl Reserve {
    /// Holds the reserve fd again if it is not held; returns whether it is.
    pub(crate) fn refill(&self) -> bool {
        let mut fd = self.fd.borrow_mut();
        if fd.is_none() {
            *fd = std::fs::File::open("/dev/null").ok();
        }
        fd.is_some()
    }

    /// A connection was accepted and admitted: if that ends a shortage
    /// (the reserve is held again), say so.
    pub(crate) fn admitted(&self) {
        if self.refill() && self.short.replace(false) {
            tracing::info!(
                "file descriptors available again; accepting sessions ({} refused meanwhile)",
                self.refused.replace(0)
            );
        }
    }

    /// Closes the reserve fd to free its slot; false if it was not held.
    pub(crate) fn release(&self) -> bool {
        if !self.short.replace(true) {
            tracing::error!(
                "out of file descriptors: refusing new sessions with 421 until some close (raise the fd limit, or lower --max-sessions)"
            );
        }
        self.fd.borrow_mut().take().is_some()
    }

    pub(crate) fn refused(&self) {
        self.refused.set(self.refused.get() + 1);
    }
}
