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
use crate::engine::shard::Tenant;
use crate::engine::splice::{BufPool, PipePool};
use crate::engine::sys::{FdRef, Refuser};
use crate::limits::{Limits, Permit};
use crate::live::Live;
use crate::logging::limit::{RefusalLog, Tally};
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
    /// Shared by all shards: notified whenever one of them meets EMFILE
    /// or ENFILE, so every shard closes its idle splice pipes at once
    /// (see [`ShardCtx::out_of_fds`]).
    pub pipes_wanted: Arc<tokio::sync::Notify>,
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

impl ShardCtx {
    /// Something on this shard failed for lack of fds (EMFILE, ENFILE):
    /// its idle splice pipes (up to 128, two fds each, kept from the last
    /// burst of disk reads) are closed, so the client's next try can have
    /// their fds, and every other shard is told to close its own (the fd
    /// limit is the process's: a pool on another core holds fds this
    /// shard's client needs). Each shard's pipe task does that as soon as
    /// its thread runs ([`ShardCtx::give_back_pipes`]); pools also go
    /// back on their own when idle (`PipePool::trim_if_idle`).
    pub(crate) fn out_of_fds(&self) {
        self.pipes.release_all();
        self.pipes_wanted.notify_waiters();
    }

    /// The shard's pipe task, for as long as the runtime runs: closes the
    /// idle pipes every [`PIPE_TRIM`](crate::engine::splice::PIPE_TRIM)
    /// if none was taken meanwhile, and at once when any shard runs out
    /// of fds. The latter is logged, at most once per
    /// [`PIPES_LOG_EVERY`] per shard (a busy shard refills its pool
    /// between the failures of a long shortage, dozens a second), with
    /// what was closed since the shard's last such line; what a quiet
    /// period held back is logged at the next trim tick after it.
    pub(crate) async fn give_back_pipes(self: Rc<Self>) {
        let mut closed = Tally::new(PIPES_LOG_EVERY);
        loop {
            let n = tokio::select! {
                _ = tokio::time::sleep(crate::engine::splice::PIPE_TRIM) => {
                    self.pipes.trim_if_idle();
                    0
                }
                _ = self.pipes_wanted.notified() => self.pipes.release_all(),
            };
            if let Some(n) = closed.add(n, Instant::now()) {
                tracing::info!(
                    shard = self.id,
                    "closed {n} idle splice pipe{} ({} fds) since this shard's last such line: the server is out of file descriptors",
                    if n == 1 { "" } else { "s" },
                    2 * n
                );
            }
        }
    }
}

/// The least time between two of a shard's "closed N idle splice pipes"
/// lines (see [`ShardCtx::give_back_pipes`]); the shortage's own error
/// line has the same period.
const PIPES_LOG_EVERY: Duration = Duration::from_secs(10);

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

/// A session counted in its shard's `sessions_open` (and as one of the
/// shard thread's [`Tenant`]s) while it lives.
struct SessionSlot(Arc<ShardMetrics>, Tenant);

impl SessionSlot {
    fn new(ctx: &Rc<ShardCtx>) -> SessionSlot {
        ctx.metrics.sessions_open.inc();
        ctx.metrics.sessions_total.inc();
        SessionSlot(ctx.metrics.clone(), Tenant::new())
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

/// How often a shard in an fd shortage checks whether fds are back.
const SHORTAGE_TICK: Duration = Duration::from_secs(1);

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
    /// Shortages begun since the last line saying one began.
    unlogged: Cell<u64>,
    /// Clients refused since the last line about a shortage.
    refused: Cell<u64>,
    /// Shortages begun since start-up (tells a watcher its own is over).
    began_count: Cell<u64>,
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
        let alert = crate::tls::alert::refusal_record(crate::tls::alert::Refusal::Unavailable);
        Ok(FdShortage::with(
            shard,
            Some(Refuser::new(line, alert.to_vec())?),
        ))
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
            began_count: Cell::new(0),
        }
    }

    /// The ring that refuses clients while fds are short, if there is one.
    pub(crate) fn refuser(&self) -> Option<&Refuser> {
        self.refuser.as_ref().filter(|r| r.usable())
    }

    /// accept met EMFILE or ENFILE: a shortage begins, unless one is under
    /// way. Logged as an error, see [`FdShortage::line_due`]. True when a
    /// new one began: the caller then runs [`FdShortage::watch`] beside it.
    pub(crate) fn began(&self) -> bool {
        let new = self.since.get().is_none();
        let line = self.on_began(Instant::now());
        self.log(line);
        new
    }

    /// Keeps the log true while a shortage lasts without clients: checks
    /// every [`SHORTAGE_TICK`] whether an fd is free again (a dup of
    /// `probe`, closed at once), which ends the shortage, and logs its
    /// beginning once due. Otherwise the log would change only when a
    /// client comes, and say "out of file descriptors" (or "available
    /// again") for as long as none does. Returns when the shortage ends,
    /// or when the shard begins to drain.
    pub(crate) async fn watch(&self, probe: &impl std::os::fd::AsFd, mut stop: shutdown::Watch) {
        // One watcher per shortage: should this one end (a client
        // admitted) and another begin between two ticks, that one's
        // watcher takes over and this one leaves.
        let mine = self.began_count.get();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SHORTAGE_TICK) => {}
                _ = shutdown::reached(&mut stop, shutdown::Phase::Draining) => return,
            }
            if self.since.get().is_none() || self.began_count.get() != mine {
                return;
            }
            let free = rustix::io::fcntl_dupfd_cloexec(probe, 0).is_ok();
            let line = self.on_tick(Instant::now(), free);
            self.log(line);
            if free {
                return;
            }
        }
    }

    fn on_tick(&self, now: Instant, free: bool) -> Option<ShortageLine> {
        if free {
            self.on_accepted(now)
        } else {
            self.line_due(now)
        }
    }

    /// A client was refused with 421 for want of fds.
    pub(crate) fn refused(&self) {
        let line = self.on_refused(Instant::now());
        self.log(line);
    }

    /// A connection was accepted: fds are there again. Ends the shortage,
    /// if there was one, and says so if its beginning was logged. (A
    /// shortage with no client to accept is ended by [`FdShortage::watch`].)
    pub(crate) fn accepted(&self) {
        let line = self.on_accepted(Instant::now());
        self.log(line);
    }

    fn on_began(&self, now: Instant) -> Option<ShortageLine> {
        if self.since.get().is_none() {
            self.since.set(Some(now));
            self.unlogged.set(self.unlogged.get() + 1);
            self.began_count.set(self.began_count.get() + 1);
        }
        self.line_due(now)
    }

    fn on_refused(&self, now: Instant) -> Option<ShortageLine> {
        self.refused.set(self.refused.get() + 1);
        self.line_due(now)
    }

    fn on_accepted(&self, now: Instant) -> Option<ShortageLine> {
        let since = self.since.take()?;
        self.logged.replace(false).then(|| ShortageLine::Ended {
            after: now.duration_since(since),
            refused: self.refused.replace(0),
        })
    }

    /// The line saying a shortage is under way, when it is due: once per
    /// shortage, and no sooner than [`SHORTAGE_LOG_EVERY`] after the last
    /// such line. Fds that hover at the limit begin and end a shortage
    /// with every client admitted; one that begins in such a quiet period
    /// is logged at its first event (a refusal) once the period is over,
    /// so a shortage that lasts is never left unsaid.
    fn line_due(&self, now: Instant) -> Option<ShortageLine> {
        let since = self.since.get()?;
        if self.logged.get()
            || self
                .last_logged
                .get()
                .is_some_and(|t| now.duration_since(t) < SHORTAGE_LOG_EVERY)
        {
            return None;
        }
        self.logged.set(true);
        self.last_logged.set(Some(now));
        Some(ShortageLine::Began {
            ago: now.duration_since(since),
            earlier: self.unlogged.replace(0).saturating_sub(1),
            refused: self.refused.replace(0),
        })
    }

    fn log(&self, line: Option<ShortageLine>) {
        let shard = self.shard;
        match line {
            None => {}
            Some(ShortageLine::Began {
                ago,
                earlier,
                refused,
            }) => {
                let what = if self.refuser.is_some() {
                    "refusing new sessions (421; a TLS alert on an implicit-FTPS listener)"
                } else {
                    "new clients wait"
                };
                let mut parts = Vec::new();
                if ago >= Duration::from_secs(1) {
                    parts.push(format!("for {:.0} s already", ago.as_secs_f64()));
                }
                if refused > 0 {
                    parts.push(format!("{refused} clients refused since the last line"));
                }
                if earlier > 0 {
                    parts.push(format!("{earlier} shorter shortages since the last line"));
                }
                let also = if parts.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", parts.join("; "))
                };
                tracing::error!(
                    shard,
                    "out of file descriptors: {what} until some close (raise the fd limit, or lower --max-sessions){also}"
                );
            }
            Some(ShortageLine::Ended { after, refused }) => tracing::info!(
                shard,
                "file descriptors available again after {:.1} s; accepting sessions ({refused} refused meanwhile)",
                after.as_secs_f64()
            ),
        }
    }
}

/// A line [`FdShortage`] logs.
#[derive(Debug, PartialEq)]
enum ShortageLine {
    /// A shortage is under way (since `ago`); `earlier` shortages began
    /// and ended unlogged, and `refused` clients were refused, since the
    /// last line.
    Began {
        ago: Duration,
        earlier: u64,
        refused: u64,
    },
    /// The shortage whose beginning was logged ended after `after`, with
    /// `refused` clients refused since that line.
    Ended { after: Duration, refused: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn began(ago: Duration, earlier: u64, refused: u64) -> Option<ShortageLine> {
        Some(ShortageLine::Began {
            ago,
            earlier,
            refused,
        })
    }

    /// One line when a shortage begins and one when it ends; nothing in
    /// between however many clients are refused.
    #[test]
    fn a_shortage_is_logged_when_it_begins_and_ends() {
        let f = FdShortage::without_refuser(0);
        let t = Instant::now();
        assert_eq!(f.on_began(t), began(Duration::ZERO, 0, 0));
        for i in 1..=5 {
            assert_eq!(f.on_refused(t + i * S), None);
            assert_eq!(f.on_began(t + i * S), None);
        }
        assert_eq!(
            f.on_accepted(t + 20 * S),
            Some(ShortageLine::Ended {
                after: 20 * S,
                refused: 5
            })
        );
        assert_eq!(f.on_accepted(t + 21 * S), None);
    }

    /// With no client coming, the watcher's ticks keep the log true: a
    /// shortage that began unlogged is logged once due, and ends when a
    /// probe finds an fd free, with its real length (the second fresh-user
    /// check saw "out of file descriptors" stay the last word 15 s after
    /// the fds came back, and a 21 s shortage reported as 36 s).
    #[test]
    fn ticks_log_a_shortage_and_its_end_without_clients() {
        let f = FdShortage::without_refuser(0);
        let t = Instant::now();
        assert!(f.on_began(t).is_some());
        assert!(f.on_accepted(t + S / 2).is_some());
        assert_eq!(f.on_began(t + S), None);
        for i in 2..10 {
            assert_eq!(f.on_tick(t + i * S, false), None);
        }
        assert_eq!(f.on_tick(t + 10 * S, false), began(9 * S, 0, 0));
        assert_eq!(f.on_tick(t + 11 * S, false), None);
        assert_eq!(
            f.on_tick(t + 22 * S, true),
            Some(ShortageLine::Ended {
                after: 21 * S,
                refused: 0
            })
        );
        // Over: a later tick (a watcher that has not noticed yet) and a
        // later client say nothing more.
        assert_eq!(f.on_tick(t + 23 * S, true), None);
        assert_eq!(f.on_accepted(t + 24 * S), None);
    }

    /// Fds hovering at the limit begin and end a shortage with every
    /// client: at most one beginning per SHORTAGE_LOG_EVERY, and a
    /// shortage that began unlogged in that period is logged once it is
    /// over (the fresh-user check found one that lasted 25 s, refusing
    /// every client, after a line saying fds were available again).
    #[test]
    fn flapping_is_logged_once_per_period_and_a_lasting_shortage_is_not_lost() {
        let f = FdShortage::without_refuser(0);
        let t = Instant::now();
        assert!(f.on_began(t).is_some());
        assert!(f.on_accepted(t + S / 10).is_some());
        // Flapping: four more shortages within the period, unlogged.
        let mut now = t;
        for _ in 0..4 {
            now += S;
            assert_eq!(f.on_began(now), None);
            assert_eq!(f.on_refused(now), None);
            assert_eq!(f.on_accepted(now + S / 10), None);
        }
        // One that lasts: logged at its first refusal past the period,
        // counting what went unlogged.
        let last = t + 6 * S;
        assert_eq!(f.on_began(last), None);
        assert_eq!(f.on_refused(t + 8 * S), None);
        assert_eq!(f.on_refused(t + 11 * S), began(5 * S, 4, 6));
        assert_eq!(f.on_refused(t + 12 * S), None);
        assert_eq!(
            f.on_accepted(t + 31 * S),
            Some(ShortageLine::Ended {
                after: 25 * S,
                refused: 1
            })
        );
    }
}
