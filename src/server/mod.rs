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
//! - `accept`: the accept loops, admission and 421 refusals;
//! - `signals`: SIGHUP reloads and the SIGTERM/SIGINT shutdown phases.
//!
//! On SIGTERM/SIGINT the accept loops close their listeners and each shard
//! waits for its sessions to finish (see [`crate::shutdown`]).

mod accept;
mod signals;

use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use crate::auth::ban::BanList;
use crate::auth::UsersDb;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::data::announce::Announcer;
use crate::data::passive::PortSlice;
use crate::engine::pool::{WorkerPool, WORKERS_PER_SHARD};
use crate::engine::shard::{self, ShardInfo};
use crate::engine::splice::PipePool;
use crate::engine::sys;
use crate::limits::Limits;
use crate::logging::limit::RefusalLog;
use crate::metrics::live::{self, LiveTable};
use crate::metrics::{self, Monitor, ShardMetrics};
use crate::shard::{Reserve, ShardCtx};
use crate::shutdown::{self, Phase};
use crate::xferlog::{ShardXferLog, XferLog};

/// Concurrent argon2 checks per shard (each runs on the blocking pool).
const PASSWORD_CHECKS_PER_SHARD: usize = 2;

/// ACCEPT ops each shard keeps in flight on each listener.
const ACCEPTS_IN_FLIGHT: usize = 4;

/// Entry point of `ringftp serve`.
pub fn main(args: ServeArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log_level, args.log_format)?;
    let cpus = shard::available_cpus().len();
    let config = Config::from_args(&args, cpus).map_err(anyhow::Error::msg)?;
    run(config)
}

/// Runs a server with a validated config until SIGTERM/SIGINT has stopped
/// it (graceful shutdown: see [`crate::shutdown`]).
pub fn run(config: Config) -> anyhow::Result<()> {
    crate::vfs::names::set_legacy_charset(&config.legacy_charset).map_err(anyhow::Error::msg)?;
    match sys::raise_fd_limit() {
        Ok(n) => tracing::debug!("fd limit raised to {n}"),
        Err(e) => tracing::warn!("could not raise the fd limit: {e}"),
    }
    let root_fd: Arc<std::os::fd::OwnedFd> = Arc::new(
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
    // The transfer log too: a path that cannot be opened is a start-up
    // error, not a server that silently records nothing.
    let xferlog = match &config.xferlog {
        Some(p) => Some(Arc::new(
            XferLog::open(p, config.xferlog_utc)
                .with_context(|| format!("--xferlog {}", p.display()))?,
        )),
        None => None,
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            std::net::TcpListener::bind(addr)
                .with_context(|| format!("--metrics-listen {addr}"))?,
        ),
        None => None,
    };

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
    if let Some(l) = &metrics_listener {
        writeln!(stdout, "metrics on {}", l.local_addr()?)?;
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
    // Built before the shards start, so a scrape in the meantime sees
    // every shard (and its passive slice) already.
    let shard_metrics: Vec<Arc<ShardMetrics>> = (0..config.cores)
        .map(|i| {
            let m = ShardMetrics::new(i);
            m.pasv_ports.set(slices[i].len() as u64);
            Arc::new(m)
        })
        .collect();
    let (inspectors, inspections): (Vec<_>, Vec<_>) =
        (0..config.cores).map(|_| live::inspector()).unzip();
    if let Some(l) = metrics_listener {
        let monitor = Arc::new(Monitor::new(
            shard_metrics.clone(),
            inspectors,
            watch.clone(),
        ));
        metrics::http::spawn(l, monitor).context("starting the --metrics-listen thread")?;
    }
    signals::spawn_signal_thread(
        users.clone(),
        announce.clone(),
        xferlog.clone(),
        stop,
        config.shutdown_grace,
    )?;
    let limits = Arc::new(Limits::new(
        config.max_sessions,
        config.max_per_ip,
        config.max_rate,
    ));
    let config = Arc::new(config);
    // Each shard's listing workers, started here so a failure stops
    // start-up, handed over with its listeners and its end of /sessions.
    let mut handed = Vec::with_capacity(config.cores);
    for (id, (listeners, inspections)) in per_shard.into_iter().zip(inspections).enumerate() {
        let workers = WorkerPool::new(&format!("ringftp-list{id}"), WORKERS_PER_SHARD)
            .context("starting listing workers")?;
        handed.push(Some((listeners, workers, inspections)));
    }
    let handoff = Arc::new(Mutex::new(handed));

    shard::run_shards(
        "ringftp-shard",
        config.cores,
        true,
        move |info: ShardInfo| {
            let (listeners, workers, inspections) = handoff.lock().unwrap()[info.id]
                .take()
                .expect("each shard starts once");
            let metrics = shard_metrics[info.id].clone();
            let ctx = Rc::new(ShardCtx {
                id: info.id,
                config: config.clone(),
                root: Rc::new(root_fd.clone()),
                root_fd: root_fd.clone(),
                ports: PortSlice::new(slices[info.id], metrics.clone()),
                pipes: PipePool::default(),
                workers,
                metrics,
                live: Rc::new(LiveTable::default()),
                refusal_log: RefusalLog::default(),
                users: users.clone(),
                bans: bans.clone(),
                limits: limits.clone(),
                shutdown: watch.clone(),
                reserve: Reserve::default(),
                password_checks: Rc::new(tokio::sync::Semaphore::new(PASSWORD_CHECKS_PER_SHARD)),
                announce: announce.clone(),
                xferlog: xferlog.clone().map(ShardXferLog::new),
            });
            async move {
                tracing::debug!(shard = info.id, cpu = info.cpu, "shard started");
                // Answers /sessions for this shard; dropped with the runtime.
                tokio_uring::spawn(live::answer(ctx.live.clone(), info.id, inspections));
                let mut loops = Vec::new();
                for l in listeners {
                    let l = Rc::new(l);
                    // Several ACCEPTs in flight per listener: a burst of new
                    // connections completes in batches instead of one ring
                    // round trip each.
                    for _ in 0..ACCEPTS_IN_FLIGHT {
                        loops.push(tokio_uring::spawn(accept::accept_loop(
                            ctx.clone(),
                            l.clone(),
                        )));
                    }
                }
                ctx.metrics.accepting.store(true, Ordering::Relaxed);
                // The loops end when a shutdown begins; then the sessions
                // finish (or are cut at the end of the grace period).
                for l in loops {
                    let _ = l.await;
                }
                ctx.metrics.accepting.store(false, Ordering::Relaxed);
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
        if ctx.metrics.sessions_open.get() == 0 {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown::reached(&mut watch, Phase::Closing) => break,
        }
    }
    let deadline = Instant::now() + LAST_REPLIES;
    while ctx.metrics.sessions_open.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    let left = ctx.metrics.sessions_open.get();
    if left > 0 {
        tracing::warn!(
            shard = ctx.id,
            "{left} session(s) still open after the grace period; closing them"
        );
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
