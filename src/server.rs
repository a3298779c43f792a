//! `ringftp serve`: binds the control listeners, starts the shards, and
//! runs each shard's accept loops.
//!
//! Every `--listen` address is bound once per shard with SO_REUSEPORT, so
//! the kernel spreads new connections over the shards and a session lives
//! and dies on the shard that accepted it. Binding happens on the main
//! thread before the shards start, so port 0 is resolved once (the first
//! socket picks the port, the others join it) and `listening on` lines are
//! printed only for sockets that really exist.
//!
//! The accept loops are also where a server under pressure says no: a
//! connection beyond `--max-sessions` or `--max-per-ip` (see
//! [`crate::limits`]) gets 421 and is closed; when the process runs out of
//! file descriptors the shard's reserve fd is let go to accept and refuse
//! the waiting clients with 421 instead of leaving them hanging; and on
//! SIGTERM/SIGINT the loops close their listeners and the shard waits for
//! its sessions to finish (see [`crate::shutdown`]).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::auth::ban::BanList;
use crate::auth::UsersDb;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::data::announce::{self, Announcer, Reresolved};
use crate::data::passive::PortSlice;
use crate::engine::shard::{self, ShardInfo};
use crate::engine::splice::{Counters, PipePool};
use crate::engine::sys::{self, FdRef};
use crate::limits::{Limits, Permit};
use crate::proto::{codes, Reply};
use crate::session;
use crate::shutdown::{self, Phase};
use crate::xferlog::XferLog;

/// Concurrent argon2 checks per shard (each runs on the blocking pool).
const PASSWORD_CHECKS_PER_SHARD: usize = 2;

/// Connections taken with plain accepts after each ring ACCEPT completes.
const ACCEPT_BATCH: usize = 64;

/// ACCEPT ops each shard keeps in flight on each listener.
const ACCEPTS_IN_FLIGHT: usize = 4;

/// What every session of a shard shares. Lives on the shard thread only.
pub struct ShardCtx {
    pub id: usize,
    pub config: Arc<Config>,
    /// The root directory, for openat2 on the ring.
    pub root: FdRef,
    /// The same, for blocking-pool work (listings).
    pub root_fd: Arc<OwnedFd>,
    /// This shard's slice of the passive port range.
    pub ports: Rc<PortSlice>,
    pub pipes: PipePool,
    pub counters: Counters,
    /// Sessions open on this shard now, and since start.
    pub sessions_open: Cell<u64>,
    pub sessions_total: Cell<u64>,
    pub xferlog: Option<XferLog>,
    /// Accounts (shared by all shards; replaced whole on SIGHUP).
    pub users: Arc<UsersDb>,
    /// Failed logins per address (shared; touched only by logins).
    pub bans: Arc<BanList>,
    /// --max-sessions, --max-per-ip, --max-rate (shared, lock-free or
    /// striped; see [`crate::limits`]).
    pub limits: Arc<Limits>,
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
}

/// Entry point of `ringftp serve`.
pub fn main(args: ServeArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log_level)?;
    let cpus = shard::available_cpus().len();
    let config = Config::from_args(&args, cpus).map_err(anyhow::Error::msg)?;
    run(config)
}

/// Runs a server with a validated config until SIGTERM/SIGINT has stopped
/// it (graceful shutdown: see [`crate::shutdown`]).
pub fn run(config: Config) -> anyhow::Result<()> {
    match sys::raise_fd_limit() {
        Ok(n) => tracing::debug!("fd limit raised to {n}"),
        Err(e) => tracing::warn!("could not raise the fd limit: {e}"),
    }
    let root_fd: Arc<OwnedFd> = Arc::new(
        std::fs::File::open(&config.root)
            .with_context(|| format!("opening --root {}", config.root.display()))?
            .into(),
    );

    // Accounts first: a bad users file must stop the server before it
    // announces a listener.
    let users = Arc::new(
        UsersDb::open(config.users.clone(), config.root.clone()).map_err(anyhow::Error::msg)?,
    );
    let bans = Arc::new(BanList::new(config.login_ban));

    // Bind every listener for every shard up front.
    let mut per_shard: Vec<Vec<Socket>> = (0..config.cores).map(|_| Vec::new()).collect();
    let mut stdout = std::io::stdout().lock();
    for want in &config.listen {
        let first = bind_control(*want).with_context(|| format!("--listen {want}"))?;
        let real = first
            .local_addr()?
            .as_socket()
            .context("listener has no inet address")?;
        per_shard[0].push(first);
        for shard_sockets in per_shard.iter_mut().skip(1) {
            shard_sockets.push(bind_control(real).with_context(|| format!("--listen {real}"))?);
        }
        writeln!(stdout, "listening on {real}")?;
    }
    stdout.flush()?;
    drop(stdout);

    let slices = config.pasv_ports.split(config.cores);
    tracing::info!(
        root = %config.root.display(),
        cores = config.cores,
        pasv_ports = %config.pasv_ports,
        accounts = users.snapshot().len(),
        anonymous = if config.anonymous { "read-only" } else { "off" },
        "ringftp serving"
    );
    for rule in config.pasv_announce.rules() {
        tracing::info!("{rule}: announcing {} in 227 replies", rule.addr);
    }
    let announce = Arc::new(Announcer::new(config.pasv_announce.clone()));
    let stop = shutdown::Shutdown::new();
    let watch = stop.watch();
    spawn_signal_thread(users.clone(), announce.clone(), stop, config.shutdown_grace)?;
    let limits = Arc::new(Limits::new(
        config.max_sessions,
        config.max_per_ip,
        config.max_rate,
    ));
    let config = Arc::new(config);
    let handoff = Arc::new(Mutex::new(
        per_shard.into_iter().map(Some).collect::<Vec<_>>(),
    ));

    shard::run_shards(
        "ringftp-shard",
        config.cores,
        true,
        move |info: ShardInfo| {
            let listeners = handoff.lock().unwrap()[info.id].take().unwrap_or_default();
            let ctx = Rc::new(ShardCtx {
                id: info.id,
                config: config.clone(),
                root: Rc::new(root_fd.clone()),
                root_fd: root_fd.clone(),
                ports: PortSlice::new(slices[info.id]),
                pipes: PipePool::default(),
                counters: Counters::default(),
                sessions_open: Cell::new(0),
                sessions_total: Cell::new(0),
                users: users.clone(),
                bans: bans.clone(),
                limits: limits.clone(),
                shutdown: watch.clone(),
                reserve: Reserve::default(),
                password_checks: Rc::new(tokio::sync::Semaphore::new(PASSWORD_CHECKS_PER_SHARD)),
                announce: announce.clone(),
                xferlog: config
                    .xferlog
                    .as_deref()
                    .and_then(|p| match XferLog::open(p) {
                        Ok(x) => Some(x),
                        Err(e) => {
                            tracing::error!(
                                "--xferlog {}: {e}; transfers will not be logged",
                                p.display()
                            );
                            None
                        }
                    }),
            });
            async move {
                tracing::debug!(shard = info.id, cpu = info.cpu, "shard started");
                let mut loops = Vec::new();
                for l in listeners {
                    let l = Rc::new(l);
                    // Several ACCEPTs in flight per listener: a burst of new
                    // connections completes in batches instead of one ring
                    // round trip each.
                    for _ in 0..ACCEPTS_IN_FLIGHT {
                        loops.push(tokio_uring::spawn(accept_loop(ctx.clone(), l.clone())));
                    }
                }
                // The loops end when a shutdown begins; then the sessions
                // finish (or are cut at the end of the grace period).
                for l in loops {
                    let _ = l.await;
                }
                drain(&ctx).await;
                tracing::debug!(shard = info.id, "shard stopped");
            }
        },
    )?;
    tracing::info!("all sessions closed; exiting");
    Ok(())
}

/// After the accept loops stopped: waits until the shard's sessions are
/// gone. Once the grace period is over they cut their transfers and close;
/// they get a moment to send their last replies, then the shard ends
/// regardless (dropping the runtime cancels whatever is left).
async fn drain(ctx: &ShardCtx) {
    const POLL: Duration = Duration::from_millis(20);
    const LAST_REPLIES: Duration = Duration::from_secs(2);
    let mut watch = ctx.shutdown.clone();
    loop {
        if ctx.sessions_open.get() == 0 {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown::reached(&mut watch, Phase::Closing) => break,
        }
    }
    let deadline = Instant::now() + LAST_REPLIES;
    while ctx.sessions_open.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let left = ctx.sessions_open.get();
    if left > 0 {
        tracing::warn!(
            shard = ctx.id,
            "{left} session(s) still open after the grace period; closing them"
        );
    }
}

/// A thread that handles signals:
/// - SIGHUP re-reads the users file (a bad new file keeps the old
///   accounts, and the log says why) and re-resolves the host names given
///   to --pasv-address / --pasv-address-map (a name that fails keeps its
///   old address); lookups block, so they happen here, never on a shard;
/// - the first SIGTERM or SIGINT starts a graceful shutdown
///   ([`Phase::Draining`]), and `grace` later cuts what is still running
///   ([`Phase::Closing`]); should the shards still not have ended a few
///   seconds after that, the process exits anyway;
/// - a second SIGTERM or SIGINT exits at once, with 128 + the signal
///   number.
fn spawn_signal_thread(
    users: Arc<UsersDb>,
    announce: Arc<Announcer>,
    stop: shutdown::Shutdown,
    grace: Duration,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    /// How long the shards get to end after the grace period, before the
    /// process exits without them.
    const BACKSTOP: Duration = Duration::from_secs(5);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registering here, before the thread starts, means a signal that
    // arrives right after start-up is already caught (not fatal).
    let (mut hup, mut term, mut int) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::hangup())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("ringftp-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                // When the current phase ends, if a shutdown is under way.
                let mut next_deadline: Option<tokio::time::Instant> = None;
                loop {
                    let deadline = async {
                        match next_deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    let signo = tokio::select! {
                        _ = hup.recv() => {
                            on_sighup(&users, &announce);
                            continue;
                        }
                        _ = deadline => {
                            match stop.phase() {
                                Phase::Draining => {
                                    tracing::warn!(
                                        "shutdown: the grace period ({}s) is over; cutting the transfers still running",
                                        grace.as_secs()
                                    );
                                    stop.advance(Phase::Closing);
                                    next_deadline = Some(tokio::time::Instant::now() + BACKSTOP);
                                }
                                _ => {
                                    tracing::error!("shutdown: shards did not stop in time; exiting anyway");
                                    std::process::exit(0);
                                }
                            }
                            continue;
                        }
                        _ = term.recv() => libc::SIGTERM,
                        _ = int.recv() => libc::SIGINT,
                    };
                    let name = if signo == libc::SIGTERM { "SIGTERM" } else { "SIGINT" };
                    if stop.phase() != Phase::Running {
                        tracing::warn!("{name} again: exiting now");
                        std::process::exit(128 + signo);
                    }
                    tracing::info!(
                        "{name}: shutting down: no new sessions, idle sessions get 421, running transfers have {}s to finish (a second signal exits at once)",
                        grace.as_secs()
                    );
                    stop.advance(Phase::Draining);
                    next_deadline = Some(tokio::time::Instant::now() + grace);
                }
            })
        })?;
    Ok(())
}

/// SIGHUP: reload the users file, re-resolve the 227 address names.
fn on_sighup(users: &UsersDb, announce: &Announcer) {
    match users.reload() {
        Ok(n) => tracing::info!("SIGHUP: users file reloaded ({n} accounts)"),
        Err(e) => {
            tracing::error!("SIGHUP: users file not reloaded, keeping the old accounts: {e}")
        }
    }
    if announce.snapshot().has_names() {
        for r in announce.reresolve(&announce::resolve_name) {
            match r {
                Reresolved::Failed { .. } => tracing::error!("SIGHUP: {r}"),
                _ => tracing::info!("SIGHUP: {r}"),
            }
        }
    }
}

/// A control listener socket: SO_REUSEPORT so every shard can bind the
/// same address, SO_REUSEADDR so a restart does not wait out TIME_WAIT,
/// IPV6_V6ONLY so `0.0.0.0:P` and `[::]:P` can both be given.
fn bind_control(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    // The kernel caps this at net.core.somaxconn.
    sock.listen(4096)?;
    // Non-blocking for the accept batches; io_uring's ACCEPT handles a
    // non-blocking listener by waiting for readiness itself.
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Accepts control connections on one listener until a shutdown begins
/// (several of these run per listener; see ACCEPTS_IN_FLIGHT).
async fn accept_loop(ctx: Rc<ShardCtx>, listener: Rc<Socket>) {
    let mut watch = ctx.shutdown.clone();
    loop {
        let res = match accept_or_stop(&ctx, &listener, &mut watch).await {
            Some(r) => r,
            None => return,
        };
        match res {
            Ok(fd) => {
                take(&ctx, Socket::from(fd));
                // A burst (a login storm) leaves more connections queued:
                // take them now with plain non-blocking accepts (the
                // listener is O_NONBLOCK) instead of one ring round trip
                // each. The ring's ACCEPT waits only when the queue is empty.
                for _ in 0..ACCEPT_BATCH {
                    match listener.accept() {
                        Ok((sock, _)) => take(&ctx, sock),
                        Err(_) => break,
                    }
                }
            }
            Err(e) if is_out_of_fds(&e) => {
                // The connection stays in the backlog (the kernel looks for
                // a free fd before it dequeues one). Let the reserve fd go:
                // the next ACCEPT (this loop's or another's) takes the
                // client with its slot and, fds still short, answers 421
                // instead of leaving it waiting until fds free up.
                if !ctx.reserve.release() {
                    // No reserve to give: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ctx.reserve.refill();
                }
            }
            // Another of this listener's accept loops saw the shutdown
            // first and shut the listener down under our ACCEPT.
            Err(_) if *watch.borrow() >= Phase::Draining => return,
            Err(e) => {
                tracing::warn!(shard = ctx.id, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Starts a session for an accepted connection, or refuses it when the
/// process is short of fds.
fn take(ctx: &Rc<ShardCtx>, sock: Socket) {
    // Taking the reserve back tells whether a session could have an fd to
    // work with (a file, a data connection).
    if ctx.reserve.refill() {
        ctx.reserve.admitted();
        admit(ctx, sock);
    } else {
        refuse(sock, "Server out of resources, try again later.");
        ctx.reserve.refused();
        ctx.reserve.refill();
    }
}

/// One io_uring ACCEPT, or `None` once a shutdown has begun: then the
/// listener is shut down, which wakes the pending ACCEPT (EINVAL), takes
/// the socket out of the SO_REUSEPORT group and resets connections still in
/// its backlog. A connection accepted in that instant is refused, not
/// leaked.
async fn accept_or_stop(
    ctx: &ShardCtx,
    listener: &Rc<Socket>,
    watch: &mut shutdown::Watch,
) -> Option<std::io::Result<OwnedFd>> {
    let accept = sys::accept(listener.clone() as FdRef);
    tokio::pin!(accept);
    tokio::select! {
        r = &mut accept => Some(r),
        _ = shutdown::reached(watch, Phase::Draining) => {
            let _ = listener.shutdown(Shutdown::Both);
            if let Ok(fd) = accept.await {
                refuse(Socket::from(fd), "Server shutting down.");
            }
            tracing::debug!(shard = ctx.id, "accept loop stopped");
            None
        }
    }
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Admits a new connection under the limits and starts its session, or
/// answers 421 and closes it.
fn admit(ctx: &Rc<ShardCtx>, sock: Socket) {
    let (Some(peer), Some(local)) = (
        sock.peer_addr().ok().and_then(|a| a.as_socket()),
        sock.local_addr().ok().and_then(|a| a.as_socket()),
    ) else {
        return;
    };
    let permit = match ctx.limits.admit(peer.ip()) {
        Ok(p) => p,
        Err(why) => {
            tracing::info!(%peer, shard = ctx.id, "refused: {}", why.reply_text());
            refuse(sock, &why.reply_text());
            return;
        }
    };
    // Replies are small and latency-bound.
    let _ = sock.set_nodelay(true);
    // Clients send ABOR with the Telnet Synch as TCP urgent data
    // (Python's ftplib sends the whole line with MSG_OOB); inline
    // it so no byte of the command is lost.
    let _ = sock.set_out_of_band_inline(true);
    // Counted from here, not from when the task first runs, so a shard
    // that starts draining right after this spawn still waits for it. The
    // session holds its places (shard count, limits permit) in its own
    // state, so the task's future holds them once and gives them back
    // when the session ends.
    let places = Places {
        _slot: SessionSlot::new(ctx),
        _permit: permit,
    };
    tokio_uring::spawn(session::conn::run(ctx.clone(), sock, peer, local, places));
}

/// Answers 421 and closes. The socket is new, so its send buffer is empty
/// and the non-blocking send never waits (a client that is already gone
/// costs nothing); the FIN follows the reply.
fn refuse(sock: Socket, text: &str) {
    let line = Reply::new(codes::SERVICE_NOT_AVAILABLE, text).to_bytes();
    let _ = sock.send_with_flags(&line, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    let _ = sock.shutdown(Shutdown::Write);
}

/// What an admitted session occupies: its place in the shard's count and
/// in the server-wide limits. Dropping it gives both back.
pub struct Places {
    _slot: SessionSlot,
    _permit: Permit,
}

/// A session counted in its shard's `sessions_open` while it lives.
struct SessionSlot(Rc<ShardCtx>);

impl SessionSlot {
    fn new(ctx: &Rc<ShardCtx>) -> SessionSlot {
        ctx.sessions_open.set(ctx.sessions_open.get() + 1);
        ctx.sessions_total.set(ctx.sessions_total.get() + 1);
        SessionSlot(ctx.clone())
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.sessions_open.set(self.0.sessions_open.get() - 1);
    }
}

/// One file descriptor a shard holds back for the moment the process runs
/// out of them (the trick nginx and others use): giving it up makes room
/// to accept a waiting client just long enough to answer it 421.
pub struct Reserve {
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
    fn refill(&self) -> bool {
        let mut fd = self.fd.borrow_mut();
        if fd.is_none() {
            *fd = std::fs::File::open("/dev/null").ok();
        }
        fd.is_some()
    }

    /// A connection was accepted and admitted: if that ends a shortage
    /// (the reserve is held again), say so.
    fn admitted(&self) {
        if self.refill() && self.short.replace(false) {
            tracing::info!(
                "file descriptors available again; accepting sessions ({} refused meanwhile)",
                self.refused.replace(0)
            );
        }
    }

    /// Closes the reserve fd to free its slot; false if it was not held.
    fn release(&self) -> bool {
        if !self.short.replace(true) {
            tracing::error!(
                "out of file descriptors: refusing new sessions with 421 until some close (raise the fd limit, or lower --max-sessions)"
            );
        }
        self.fd.borrow_mut().take().is_some()
    }

    fn refused(&self) {
        self.refused.set(self.refused.get() + 1);
    }
}
