//! `ringftp serve`: binds the control listeners, gives up root, confines
//! the process, starts the shards, and runs each shard's accept loops.
//!
//! Start-up order matters, and is the same every time:
//! 1. validate flags and `--config` ([`crate::config`],
//!    [`crate::config_file`]);
//! 2. open what needs root: the root directory, the users file, the
//!    listeners (`listen`: one SO_REUSEPORT socket per shard per address,
//!    and no other process on the address), the xferlog, systemd's notify
//!    socket;
//! 3. drop privileges ([`crate::privileges`]) and apply the Landlock
//!    sandbox ([`crate::sandbox`]) — both act on the calling thread and the
//!    threads it starts later, so both happen while the main thread is
//!    still the only one;
//! 4. start the signal thread and the shards; systemd hears `READY=1` once
//!    every shard accepts (`notify`).
//!
//! - `accept`: the accept loops, admission (`--allow`/`--deny`, bans,
//!   limits) and 421 refusals;
//! - `signals`: SIGHUP reloads (`reload`) and the SIGTERM/SIGINT shutdown
//!   phases.
//!
//! On SIGTERM/SIGINT the accept loops close their listeners and each shard
//! waits for its sessions to finish (see [`crate::shutdown`]).

mod accept;
mod listen;
mod notify;
mod reload;
mod signals;

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::auth::ban::BanList;
use crate::auth::UsersDb;
use crate::config::Config;
use crate::config_file::{self, Loaded};
use crate::data::announce::Announcer;
use crate::data::passive::PortSlice;
use crate::engine::pool::{WorkerPool, WORKERS_PER_SHARD};
use crate::engine::shard::{self, ShardInfo};
use crate::engine::splice::{BufPool, PipePool};
use crate::engine::sys;
use crate::limits::Limits;
use crate::live::{Live, Settings};
use crate::logging::limit::RefusalLog;
use crate::metrics::sessions::{self, LiveTable};
use crate::metrics::{self, Monitor, ShardMetrics};
use crate::privileges::{self, Plan};
use crate::sandbox::{self, Policy};
use crate::shard::{FdShortage, ShardCtx};
use crate::shutdown::{self, Phase};
use crate::vfs::world;
use crate::xferlog::{ShardXferLog, XferLog};

pub use reload::LIVE_KEYS;

/// Concurrent argon2 checks per shard (each runs on the blocking pool).
const PASSWORD_CHECKS_PER_SHARD: usize = 2;

/// ACCEPT ops each shard keeps in flight on each listener.
const ACCEPTS_IN_FLIGHT: usize = 4;

/// The fewest file descriptors `serve` starts with. Idle, one shard holds
/// about 20 (listeners, the root, the log, its rings, the signal pipe)
/// and each further shard a few more; below this the start fails inside a
/// dependency (tokio's signal set-up panics) rather than with a reason.
const MIN_FD_LIMIT: u64 = 32;

/// The fewest fds the server must have free once started (see
/// [`fd_room`]): what one session holds at most while it downloads (its
/// control connection, its passive listener, the data connection and
/// the file, the previous download's connection not yet closed, an
/// account's home directory) and a pipe pair for a read from the disk.
const MIN_FREE_FDS: u64 = 8;

/// The fds one session holds while it transfers, commonly: its control
/// connection, passive listener, data connection and file. Start-up warns
/// when the fd limit holds fewer such sessions than `--max-sessions`.
const FDS_PER_TRANSFER: u64 = 4;

/// Entry point of `ringftp serve`: `argv` is the whole command line
/// (`ringftp serve ...`), merged with its `--config` file.
pub fn main(argv: Vec<OsString>) -> anyhow::Result<()> {
    let loaded = config_file::load(&argv).map_err(anyhow::Error::msg)?;
    let cpus = shard::available_cpus().len();
    if loaded.args.check_config {
        return check_config(&loaded, cpus);
    }
    crate::logging::init(&loaded.args.log_level, loaded.args.log_format)?;
    let config = Config::from_args(&loaded.args, cpus).map_err(anyhow::Error::msg)?;
    run(
        config,
        Start {
            argv,
            effective: loaded.effective,
            cpus,
            extra_readable: Vec::new(),
        },
    )
}

/// `serve --check-config`: everything start-up checks short of binding
/// and dropping privileges (what the service user may do with `--root` is
/// tried on a thread switched to that user); prints the effective
/// configuration (a TOML file `--config` reads back) to stdout.
fn check_config(loaded: &Loaded, cpus: usize) -> anyhow::Result<()> {
    let config = Config::from_args(&loaded.args, cpus).map_err(anyhow::Error::msg)?;
    // What start-up would install: RUST_LOG wins over --log-level.
    crate::logging::filter_in_force(&loaded.args.log_level)?;
    let users = UsersDb::open(config.users.clone(), config.root.clone())
        .map_err(anyhow::Error::msg)?
        .snapshot();
    let plan = privileges::plan(config.user.as_deref(), rustix::process::geteuid().as_raw())
        .map_err(anyhow::Error::msg)?;
    // What start-up reads or opens before it serves, without binding the
    // ports (a running server may hold them) or creating the xferlog.
    if let Some(settings) = &config.tls {
        crate::tls::Tls::new(settings).map_err(anyhow::Error::msg)?;
    }
    if let Some(p) = &config.xferlog {
        xferlog_openable(p).with_context(|| format!("--xferlog {}", p.display()))?;
    }
    for addr in config.listen.iter().chain(&config.listen_implicit) {
        listen::address_is_local(*addr).map_err(anyhow::Error::msg)?;
    }
    // The root, the homes and the files SIGHUP re-reads, as the user
    // start-up drops to will use them: the same warnings start-up logs.
    let root_fd = open_root(&config.root)?;
    let (root, anonymous) = (config.root.clone(), config.anonymous);
    let mut readable = Vec::new();
    if let Some(settings) = &config.tls {
        readable.extend([settings.cert.clone(), settings.key.clone()]);
    }
    let reread = sandbox::reread_files(&config, &readable);
    let mut warnings: Vec<String> = users
        .warnings()
        .iter()
        .map(|w| format!("users file {w}"))
        .collect();
    let as_served = move || -> anyhow::Result<Vec<String>> {
        let mut found = root_access(&root, &root_fd, anonymous)?;
        found.extend(
            users
                .unenterable_homes(&root)
                .into_iter()
                .map(|w| format!("users file {w}")),
        );
        for f in reread {
            if let Err(e) = std::fs::File::open(&f) {
                found.push(unreadable_after_start(&f, &e));
            }
        }
        Ok(found)
    };
    warnings.extend(match &plan {
        Plan::Drop { target, .. } => {
            privileges::as_user(target, as_served).map_err(anyhow::Error::msg)??
        }
        Plan::Keep | Plan::StayRoot => as_served()?,
    });
    print!(
        "{}",
        config_file::render(&loaded.effective, config.config_file.as_deref())
    );
    let who = match plan {
        Plan::Keep => "as the current user".to_string(),
        Plan::StayRoot => "as root (--user root)".to_string(),
        Plan::Drop { target, .. } => format!(
            "as {} (uid {}, gid {})",
            target.name, target.uid, target.gid
        ),
    };
    for warning in warnings {
        eprintln!("ringftp: warning: {warning}");
    }
    eprintln!(
        "ringftp: configuration OK: would serve {} {who}",
        config.root.display()
    );
    if let Some(v) = crate::logging::rust_log() {
        eprintln!("ringftp: RUST_LOG={v:?} is set: it, not log-level, decides what is logged");
    }
    Ok(())
}

/// The warning for a file SIGHUP re-reads that the service user cannot
/// open (start-up and `--check-config` say the same).
fn unreadable_after_start(f: &std::path::Path, e: &std::io::Error) -> String {
    format!(
        "{}: cannot be read after start-up ({e}): SIGHUP will not reload it; make it readable by the service user",
        f.display()
    )
}

/// `--check-config`: whether start-up could open the xferlog at `path`
/// (an existing file for appending, or a new one in an existing
/// directory), without creating it.
fn xferlog_openable(path: &std::path::Path) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(std::io::Error::from_raw_os_error(libc::EISDIR)),
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => std::path::Path::new("."),
            };
            if std::fs::metadata(dir)?.is_dir() {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(libc::ENOTDIR))
            }
        }
        Err(e) => Err(e),
    }
}

/// What [`run`] needs besides the validated config.
pub struct Start {
    /// The command line, for SIGHUP to merge with `--config` again.
    pub argv: Vec<OsString>,
    /// The settings in force at start (see [`crate::config_file`]).
    pub effective: Vec<config_file::Setting>,
    /// CPUs available to the process (bounds `--cores` on reload too).
    pub cpus: usize,
    /// More files the sandbox lets the process read after start-up (TLS
    /// certificates and keys: see [`Policy::readable_files`]).
    pub extra_readable: Vec<std::path::PathBuf>,
}

/// Runs a server with a validated config until SIGTERM/SIGINT has stopped
/// it (graceful shutdown: see [`crate::shutdown`]).
pub fn run(config: Config, start: Start) -> anyhow::Result<()> {
    crate::vfs::names::set_legacy_charset(&config.legacy_charset).map_err(anyhow::Error::msg)?;
    let limit = match sys::raise_fd_limit() {
        Ok(n) => {
            tracing::debug!("fd limit raised to {n}");
            n
        }
        Err(e) => {
            tracing::warn!("could not raise the fd limit: {e}");
            // None is RLIM_INFINITY.
            rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX)
        }
    };
    if limit < MIN_FD_LIMIT {
        anyhow::bail!(
            "the fd limit (RLIMIT_NOFILE) is {limit}; ringftp needs at least {MIN_FD_LIMIT} to start (raise it: ulimit -n, LimitNOFILE=)"
        );
    }
    let root_fd: Arc<OwnedFd> = Arc::new(open_root(&config.root)?);

    // Accounts first: a bad users file must stop the server before it
    // announces a listener.
    let users = Arc::new(
        UsersDb::open(config.users.clone(), config.root.clone()).map_err(anyhow::Error::msg)?,
    );
    let bans = Arc::new(BanList::new(config.login_ban));
    bans.set(config.login_ban, config.ipv6_prefix);

    // The certificate too, read while still root: a bad pair stops the
    // server with the reason.
    let tls = match &config.tls {
        Some(settings) => {
            let tls = crate::tls::Tls::new(settings).map_err(anyhow::Error::msg)?;
            tracing::info!(
                cert = %settings.cert.display(),
                "FTPS on: AUTH TLS offered, {} for downloads",
                if settings.ktls { tls.ktls.to_string() } else { "kTLS off (--ktls off)".to_string() }
            );
            if settings.ktls && tls.ktls.pairs.is_empty() {
                tracing::info!(
                    "FTPS downloads are encrypted in userspace (in place, 16 KiB records)"
                );
            }
            Some(Arc::new(tls))
        }
        None => None,
    };

    // Bind every listener for every shard up front (implicit FTPS ones
    // flagged).
    let wanted: Vec<_> = config
        .listen
        .iter()
        .map(|a| (*a, false))
        .chain(config.listen_implicit.iter().map(|a| (*a, true)))
        .collect();
    let bound =
        listen::bind_all(&wanted, config.cores, config.reuse_port).map_err(anyhow::Error::msg)?;
    if config.reuse_port && listen::migrates_requests() == Some(false) {
        tracing::warn!(
            "--reuse-port: net.ipv4.tcp_migrate_req is 0, so connections queued on a listener that closes (the old server's, when it stops) are reset instead of handed to this one; set it to 1 for a hand-over without refusals (docs/operations.md)"
        );
    }
    // Opened while still root. A path that cannot be opened is a start-up
    // error, not a server that silently records nothing. SIGHUP reopens it
    // as the user the server then runs as (see crate::xferlog).
    let xferlog = match &config.xferlog {
        Some(p) => {
            let log = XferLog::open(p, config.xferlog_utc)
                .with_context(|| format!("--xferlog {}", p.display()))?;
            tracing::info!(
                "xferlog {}: one line per file transfer, times in {}",
                p.display(),
                log.zone_name()
            );
            Some(Arc::new(log))
        }
        None => None,
    };
    // Bound while still root too (a port below 1024 needs it).
    // Its lock, like the control listeners', lives as long as the server.
    let (metrics_listener, _metrics_lock) = match config.metrics_listen {
        Some(addr) => {
            let (l, lock) =
                listen::bind_metrics(addr, config.reuse_port).map_err(anyhow::Error::msg)?;
            (Some(l), lock)
        }
        None => (None, None),
    };
    let notifier = Arc::new(notify::Notifier::from_env(config.cores));

    drop_privileges(&config)?;
    for warning in root_access(&config.root, &root_fd, config.anonymous)? {
        tracing::warn!("{warning}");
    }
    for warning in users.snapshot().unenterable_homes(&config.root) {
        tracing::warn!("users file {warning}");
    }
    // The sandbox keeps the certificate and key readable for SIGHUP.
    let mut readable = start.extra_readable.clone();
    if let Some(settings) = &config.tls {
        readable.extend([settings.cert.clone(), settings.key.clone()]);
    }
    confine(&config, &root_fd, &readable)?;
    // What SIGHUP re-reads, tried now as the service user inside the
    // sandbox: a file only root may read (a 0600 key) would fail every
    // reload, and the operator hears it at start rather than at renewal.
    for f in sandbox::reread_files(&config, &readable) {
        if let Err(e) = std::fs::File::open(&f) {
            tracing::warn!("{}", unreadable_after_start(&f, &e));
        }
    }
    // Threads may start now: the first is the log writer's.
    crate::logging::start_writer();
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };

    let slices = config.pasv_ports.split(config.cores);
    tracing::info!(
        root = %config.root.display(),
        cores = config.cores,
        pasv_ports = %config.pasv_ports,
        accounts = users.snapshot().len(),
        anonymous = if config.anonymous { "read-only, world-readable files only" } else { "off" },
        allow_deny_rules = config.access.len(),
        "ringftp serving"
    );
    if let Some(proxy) = &config.proxy {
        let nets: Vec<String> = proxy.nets().iter().map(|n| n.to_string()).collect();
        tracing::info!(
            "--proxy-protocol: every control and passive data connection must come from {} and start with a PROXY header",
            nets.join(", ")
        );
    }
    for rule in config.pasv_announce.rules() {
        tracing::info!("{rule}: announcing {} in 227 replies", rule.addr);
    }
    let announce = Arc::new(Announcer::new(config.pasv_announce.clone()));
    let live = Arc::new(Live::new(Settings::from_config(&config)));
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
        (0..config.cores).map(|_| sessions::inspector()).unzip();
    if let Some(l) = metrics_listener {
        let monitor = Arc::new(Monitor::new(
            shard_metrics.clone(),
            inspectors,
            watch.clone(),
        ));
        metrics::http::spawn(l, monitor).context("starting the --metrics-listen thread")?;
    }
    let limits = Arc::new(Limits::new(
        config.max_sessions,
        config.max_per_ip,
        config.max_rate,
    ));
    limits.set(config.max_sessions, config.max_per_ip, config.ipv6_prefix);
    let sessions_chosen = chosen(&start.effective, "max-sessions");
    let reloader = reload::Reloader {
        argv: start.argv,
        effective: start.effective,
        cpus: start.cpus,
        users: users.clone(),
        announce: announce.clone(),
        live: live.clone(),
        limits: limits.clone(),
        bans: bans.clone(),
        certs: tls.as_ref().map(|t| t.certs.clone()),
        xferlog: xferlog.clone(),
    };
    signals::spawn_signal_thread(reloader, notifier.clone(), stop, config.shutdown_grace)?;
    let config = Arc::new(config);
    let _locks = bound.locks;
    // Each shard's listing workers, started here (after the privilege drop
    // and the sandbox: they are threads) so a failure stops start-up,
    // handed over with its listeners and its end of /sessions.
    let mut handed = Vec::with_capacity(config.cores);
    for (id, (listeners, inspections)) in bound.per_shard.into_iter().zip(inspections).enumerate() {
        let workers = WorkerPool::new(&format!("ringftp-list{id}"), WORKERS_PER_SHARD)
            .context("starting listing workers")?;
        handed.push(Some((listeners, workers, inspections)));
    }
    let handoff = Arc::new(Mutex::new(handed));
    let pipes_wanted = Arc::new(tokio::sync::Notify::new());
    let cores = config.cores;
    // Announced once every shard has its runtime and the process is what
    // it will serve as (the listeners already queue connections), and only
    // if the fd limit leaves room for clients.
    let max_sessions = config.max_sessions as u64;
    let announce_ready = move || -> std::io::Result<()> {
        fd_room(limit, cores)?;
        fd_budget(max_sessions, sessions_chosen);
        let mut stdout = std::io::stdout().lock();
        for (real, implicit) in &bound.addrs {
            if *implicit {
                writeln!(stdout, "listening on {real} (implicit FTPS)")?;
            } else {
                writeln!(stdout, "listening on {real}")?;
            }
        }
        if let Some(addr) = metrics_addr {
            writeln!(stdout, "metrics on {addr}")?;
        }
        stdout.flush()
    };

    shard::run_shards(
        "ringftp-shard",
        config.cores,
        true,
        announce_ready,
        move |info: ShardInfo| {
            let (listeners, workers, inspections) = handoff.lock().unwrap()[info.id]
                .take()
                .expect("each shard starts once");
            let metrics = shard_metrics[info.id].clone();
            // The refusal ring is made here, on the shard's own thread,
            // which is the only one that uses it.
            let fd_shortage = FdShortage::new(info.id).unwrap_or_else(|e| {
                tracing::error!(
                    shard = info.id,
                    "cannot make the ring that refuses clients when fds run out ({e}): then new clients will wait instead of getting 421"
                );
                FdShortage::without_refuser(info.id)
            });
            let ctx = Rc::new(ShardCtx {
                id: info.id,
                config: config.clone(),
                root: Rc::new(root_fd.clone()),
                root_fd: root_fd.clone(),
                ports: PortSlice::new(slices[info.id], metrics.clone()),
                pipes: PipePool::default(),
                tls_buffers: BufPool::default(),
                tls: tls.clone(),
                workers,
                metrics,
                session_table: Rc::new(LiveTable::default()),
                refusal_log: RefusalLog::default(),
                users: users.clone(),
                bans: bans.clone(),
                limits: limits.clone(),
                live: live.clone(),
                shutdown: watch.clone(),
                fd_shortage,
                pipes_wanted: pipes_wanted.clone(),
                password_checks: Rc::new(tokio::sync::Semaphore::new(PASSWORD_CHECKS_PER_SHARD)),
                announce: announce.clone(),
                xferlog: xferlog.clone().map(ShardXferLog::new),
            });
            let notifier = notifier.clone();
            async move {
                tracing::debug!(shard = info.id, cpu = info.cpu, "shard started");
                // Gives idle splice pipes' fds back once the shard stops
                // reading from disk, or when any shard runs out of fds;
                // dropped with the runtime.
                tokio_uring::spawn(ctx.clone().give_back_pipes());
                // Answers /sessions for this shard; dropped with the runtime.
                tokio_uring::spawn(sessions::answer(
                    ctx.session_table.clone(),
                    info.id,
                    inspections,
                ));
                let mut loops = Vec::new();
                for (l, implicit) in listeners {
                    let l = Rc::new(l);
                    // Several ACCEPTs in flight per listener: a burst of new
                    // connections completes in batches instead of one ring
                    // round trip each.
                    for _ in 0..ACCEPTS_IN_FLIGHT {
                        loops.push(tokio_uring::spawn(accept::accept_loop(
                            ctx.clone(),
                            l.clone(),
                            implicit,
                        )));
                    }
                }
                ctx.metrics.accepting.store(true, Ordering::Relaxed);
                notifier.shard_ready(|| {
                    format!(
                        "serving {} on {} shard(s)",
                        ctx.config.root.display(),
                        ctx.config.cores
                    )
                });
                // The loops end when a shutdown begins; then the sessions
                // finish (or are cut at the end of the grace period).
                for l in loops {
                    let _ = l.await;
                }
                tracing::debug!(shard = info.id, "listeners closed; no new sessions");
                ctx.metrics.accepting.store(false, Ordering::Relaxed);
                drain(&ctx).await;
                tracing::debug!(shard = info.id, "shard stopped");
            }
        },
    )?;
    tracing::info!("all sessions closed; exiting");
    Ok(())
}

/// The fd limit and the fds it leaves for clients once the server is up
/// (the limit less what start-up holds, counted by [`fd_room`]; the whole
/// limit when it is too large to count): what `--max-sessions` is
/// weighed against, at start-up and on SIGHUP.
static CLIENT_FDS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Says how many sessions the fds left for clients ([`CLIENT_FDS`]) hold
/// against `max_sessions`: when fewer than that many idle sessions (one
/// fd each) fit, a warning if the operator chose the number (`chosen`:
/// not `--max-sessions`' default, which no machine is asked to fit) and
/// an INFO line if not; an INFO line when fewer than that many can
/// transfer at once ([`FDS_PER_TRANSFER`] each). Past the limit, commands
/// get 451 and new connections 421 (the accept loop's refusal ring)
/// until fds are free. At start-up and when SIGHUP changes
/// `--max-sessions`; nothing before start-up has counted.
fn fd_budget(max_sessions: u64, chosen: bool) {
    let Some(&(limit, free)) = CLIENT_FDS.get() else {
        return;
    };
    let busy = free / FDS_PER_TRANSFER;
    let what = if chosen { "" } else { "the default " };
    // 0 is no limit: more than any fd limit holds.
    let (want, max_sessions) = match max_sessions {
        0 => (u64::MAX, "0 (no limit)".to_string()),
        n => (n, n.to_string()),
    };
    if free < want {
        let text = format!(
            "the fd limit (RLIMIT_NOFILE) {limit} leaves {free} fds for clients, fewer than {what}--max-sessions {max_sessions}: not even that many idle sessions fit (one fd each), and about {busy} can transfer at once; past that, commands get 451 and new connections 421 (raise it: LimitNOFILE=, ulimit -n; or lower --max-sessions)"
        );
        if chosen {
            tracing::warn!(limit, "{text}");
        } else {
            tracing::info!(limit, "{text}");
        }
    } else if busy < want {
        tracing::info!(
            limit,
            "the fd limit (RLIMIT_NOFILE) {limit} leaves {free} fds for clients: about {busy} sessions transferring at once ({FDS_PER_TRANSFER} fds each: control, passive listener, data connection, file) of {what}--max-sessions {max_sessions}; past that, commands get 451 and new connections 421 until fds are free (LimitNOFILE= raises it)"
        );
    }
}

/// Whether the operator set `key` (on the command line or in the
/// `--config` file) rather than leaving its default.
fn chosen(effective: &[config_file::Setting], key: &str) -> bool {
    effective
        .iter()
        .any(|s| s.key == key && s.source != config_file::Source::Default)
}

/// Checks that the fd limit leaves clients room once the server is up:
/// counts the fds in use with every shard's runtime made (`cores` more
/// follow, one refusal ring per shard), and fails when fewer than
/// [`MIN_FREE_FDS`] would be left. [`MIN_FD_LIMIT`] is only a floor for
/// getting this far: the fds a start-up takes grow with the shards and
/// the configuration (listeners, TLS, metrics, xferlog).
fn fd_room(limit: u64, cores: usize) -> std::io::Result<()> {
    // The count looks at the first `sys::COUNTED_FDS` numbers; past that
    // the check could only fail with nearly all of them open, so a large
    // limit (the unit's 1,048,576) skips the count and its 50-90 ms of
    // fcntl calls.
    if limit > sys::COUNTED_FDS + MIN_FREE_FDS + cores as u64 {
        tracing::debug!(
            limit,
            "file descriptors after start-up: not counted (limit above 65,536)"
        );
        let _ = CLIENT_FDS.set((limit, limit));
        return Ok(());
    }
    let in_use = sys::count_open_fds(limit) + cores as u64;
    let free = limit.saturating_sub(in_use);
    let _ = CLIENT_FDS.set((limit, free));
    tracing::debug!(limit, in_use, free, "file descriptors after start-up");
    if free < MIN_FREE_FDS {
        return Err(std::io::Error::other(format!(
            "the fd limit (RLIMIT_NOFILE) is {limit} and {cores} shard(s) with this configuration hold {in_use} fds, which leaves {free} for clients; a session that downloads needs up to {MIN_FREE_FDS} (raise the limit: ulimit -n, LimitNOFILE=; or use fewer --cores)"
        )));
    }
    Ok(())
}

/// Opens `--root` (as root, before any privilege drop): the directory
/// every client path is resolved from.
fn open_root(root: &std::path::Path) -> anyhow::Result<OwnedFd> {
    Ok(std::fs::File::open(root)
        .with_context(|| format!("opening --root {}", root.display()))?
        .into())
}

/// Whether the current (thread's) user can use `--root`, opened as `fd`.
/// Every client path is looked up from it, so a root the user may not
/// search (no `x`) would answer 550 to every command and fail every
/// login: an error. One it may search but not read is served (names can
/// still be fetched, as from a `-wx` drop box) with a warning (in the
/// `Ok` list) that listing `/` fails. Run after the privilege drop, and by
/// `--check-config` as the service user ([`privileges::as_user`]).
///
/// With `anonymous` on, the root's world bits are weighed too: anonymous
/// sessions see only world-searchable directories ([`world::searchable`],
/// [`world::readable`]), so a root without `o+x` refuses them every
/// command and one without `o+r` cannot be listed: a warning (accounts
/// may still be served).
fn root_access(
    root: &std::path::Path,
    fd: &OwnedFd,
    anonymous: bool,
) -> anyhow::Result<Vec<String>> {
    use rustix::fs::{accessat, Access, AtFlags};
    let user = privileges::effective_ids();
    if let Err(e) = accessat(fd, ".", Access::EXEC_OK, AtFlags::EACCESS) {
        anyhow::bail!(
            "--root {}: the service user ({user}) cannot enter it ({}): every command would fail; make it searchable for that user (chmod o+x, or a group it is in), or choose --user",
            root.display(),
            std::io::Error::from(e)
        );
    }
    let mut warnings = Vec::new();
    if accessat(fd, ".", Access::READ_OK, AtFlags::EACCESS).is_err() {
        warnings.push(format!(
            "the service user ({user}) may not read --root {}: listing / will be refused (550), though what is in it can be reached by name (by accounts; anonymous as said next, if at all)",
            root.display()
        ));
    }
    if anonymous {
        // Anonymous sessions' own rules (vfs::world), on the root itself.
        let st = crate::vfs::Stat::from(&rustix::fs::fstat(fd)?);
        let mode = st.mode & 0o777;
        if !world::searchable(&st) {
            warnings.push(format!(
                "--root {} is mode {mode:04o}, not searchable by others: anonymous sessions (which see only world-searchable directories and world-readable files) will be refused every command (550); chmod o+x, or --no-anonymous",
                root.display()
            ));
        } else if !world::readable(&st) {
            warnings.push(format!(
                "--root {} is mode {mode:04o}, not readable by others: anonymous sessions cannot list / (550), though they can reach what is in it by name",
                root.display()
            ));
        }
    }
    Ok(warnings)
}

/// Gives up root as `--user` says (see [`crate::privileges`]), and says so.
fn drop_privileges(config: &Config) -> anyhow::Result<()> {
    let euid = rustix::process::geteuid().as_raw();
    let plan = privileges::plan(config.user.as_deref(), euid).map_err(anyhow::Error::msg)?;
    match plan {
        Plan::Keep => {
            let shed =
                privileges::shed_capabilities(config.active_port_20).map_err(anyhow::Error::msg)?;
            privileges::no_new_privs().map_err(anyhow::Error::msg)?;
            tracing::info!(
                uid = euid,
                gid = rustix::process::getegid().as_raw(),
                "running as the user that started ringftp"
            );
            if !shed.is_empty() {
                tracing::info!(
                    "listeners bound: gave up the capabilities it was started with ({shed:?}){}",
                    if config.active_port_20 {
                        "; CAP_NET_BIND_SERVICE is kept for --active-port-20"
                    } else {
                        ""
                    }
                );
            }
        }
        Plan::StayRoot => {
            privileges::no_new_privs().map_err(anyhow::Error::msg)?;
            tracing::warn!(
                "--user root: serving as root; every client request runs with full privileges (the sandbox still applies)"
            );
        }
        Plan::Drop { target, defaulted } => {
            privileges::drop_to(&target, config.active_port_20).map_err(anyhow::Error::msg)?;
            let how = if defaulted {
                "started as root without --user"
            } else {
                "--user"
            };
            tracing::info!(
                uid = target.uid,
                gid = target.gid,
                groups = ?target.groups,
                "dropped root privileges for good: serving as {} ({how})",
                target.name
            );
            if config.active_port_20 {
                tracing::info!("--active-port-20: kept CAP_NET_BIND_SERVICE only");
            }
        }
    }
    Ok(())
}

/// Applies the Landlock sandbox (`--sandbox`), and says what it allows.
fn confine(
    config: &Config,
    root: &Arc<OwnedFd>,
    extra_readable: &[std::path::PathBuf],
) -> anyhow::Result<()> {
    let policy =
        Policy::for_server(config, root.as_fd(), extra_readable).map_err(anyhow::Error::msg)?;
    let rules = policy.describe();
    match policy.apply(config.sandbox).map_err(anyhow::Error::msg)? {
        sandbox::Outcome::Off => tracing::warn!("--sandbox off: no Landlock sandbox"),
        sandbox::Outcome::Full => {
            tracing::info!("sandbox: Landlock enforced; the filesystem is closed except:");
            for r in rules {
                tracing::info!("sandbox: {r}");
            }
        }
        sandbox::Outcome::Partial => {
            tracing::warn!(
                "sandbox: this kernel's Landlock enforces only part of the rules (older ABI); some file operations outside these are still possible:"
            );
            for r in rules {
                tracing::warn!("sandbox: {r}");
            }
        }
        sandbox::Outcome::Unavailable(why) => {
            tracing::warn!("sandbox: not applied: {why} (--sandbox required would refuse to start)")
        }
    }
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
