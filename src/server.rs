//! `ringftp serve`: binds the control listeners, starts the shards, and
//! runs each shard's accept loops.
//!
//! Every `--listen` address is bound once per shard with SO_REUSEPORT, so
//! the kernel spreads new connections over the shards and a session lives
//! and dies on the shard that accepted it. Binding happens on the main
//! thread before the shards start, so port 0 is resolved once (the first
//! socket picks the port, the others join it) and `listening on` lines are
//! printed only for sockets that really exist.

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use crate::session;
use crate::xferlog::XferLog;

/// Concurrent argon2 checks per shard (each runs on the blocking pool).
const PASSWORD_CHECKS_PER_SHARD: usize = 2;

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

/// Runs a server with a validated config until the process is killed.
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
    spawn_signal_thread(users.clone(), announce.clone())?;
    let config = Arc::new(config);
    let handoff = Arc::new(Mutex::new(
        per_shard.into_iter().map(Some).collect::<Vec<_>>(),
    ));

    shard::run_shards("ringftp-shard", config.cores, move |info: ShardInfo| {
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
            for l in loops {
                let _ = l.await;
            }
        }
    })?;
    Ok(())
}

/// A thread that waits for SIGHUP, re-reads the users file (a bad new file
/// keeps the old accounts, and the log says why) and re-resolves the
/// host names given to --pasv-address / --pasv-address-map (a name that
/// fails keeps its old address). Lookups block, so they happen here and
/// never on a shard.
fn spawn_signal_thread(users: Arc<UsersDb>, announce: Arc<Announcer>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registering here, before the thread starts, means a SIGHUP that
    // arrives right after start-up is already caught (not fatal).
    let mut hup = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    })?;
    std::thread::Builder::new()
        .name("ringftp-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                while hup.recv().await.is_some() {
                    match users.reload() {
                        Ok(n) => tracing::info!("SIGHUP: users file reloaded ({n} accounts)"),
                        Err(e) => tracing::error!(
                            "SIGHUP: users file not reloaded, keeping the old accounts: {e}"
                        ),
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
            })
        })?;
    Ok(())
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
    Ok(sock)
}

async fn accept_loop(ctx: Rc<ShardCtx>, listener: Rc<Socket>) {
    loop {
        match sys::accept(listener.clone() as FdRef).await {
            Ok(fd) => {
                let sock = Socket::from(fd);
                let (Some(peer), Some(local)) = (
                    sock.peer_addr().ok().and_then(|a| a.as_socket()),
                    sock.local_addr().ok().and_then(|a| a.as_socket()),
                ) else {
                    continue;
                };
                // Replies are small and latency-bound.
                let _ = sock.set_nodelay(true);
                // Clients send ABOR with the Telnet Synch as TCP urgent data
                // (Python's ftplib sends the whole line with MSG_OOB); inline
                // it so no byte of the command is lost.
                let _ = sock.set_out_of_band_inline(true);
                tokio_uring::spawn(session::conn::run(ctx.clone(), sock, peer, local));
            }
            Err(e) => {
                // EMFILE/ENFILE: out of fds. Back off instead of spinning;
                // the connection waits in the backlog until fds free up.
                tracing::warn!(shard = ctx.id, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
