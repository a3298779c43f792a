//! A load-test run: shards, virtual clients, pacing, and the report at the
//! end.
//!
//! Clients are numbered 0..clients and dealt round-robin to the shards;
//! each is a local task on its shard's tokio-uring runtime and loops:
//! pick the next op, wait for its start time, perform it, record. Pacing:
//! - **closed loop** (default): the next request starts when the last one
//!   ends (plus the scenario's `think` pause);
//! - **open loop** (`--rate R`): client `i` of `C` owns the start times
//!   `t0 + (i/C + k) * C/R`, k = 0, 1, ...; together they start R requests a
//!   second on a fixed schedule whatever the server does. A request's
//!   latency is measured from its scheduled start, not from when the client
//!   got round to sending it: when the server stalls, the requests that
//!   *should* have been sent meanwhile are charged the stall, which is the
//!   coordinated-omission correction of wrk2.
//!
//! A request cut off by the end of `--duration` is abandoned: neither a
//! success nor an error (its bytes still count in the byte total).

use std::cell::RefCell;
use std::io::IsTerminal;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::Notify;

use super::client::Control;
use super::data::BufPool;
use super::failure::Failure;
use super::prepare::{Content, Rng};
use super::procstat::Sampler;
use super::report::{self, Report};
use super::scenario::{Op, Pick, Plan, Scenario};
use super::stats::{Phase, Progress, Stats};
use super::targets::{self, Target};
use super::transfer::{self, Timing};
use super::units::format_bytes;
use super::{prepare, LoadtestArgs, LoadtestCommand};
use crate::engine::shard::{available_cpus, run_shards, ShardInfo};
use crate::engine::sys;

/// Pause after a failure that cost the session (connect refused, reset,
/// timeout).
const BACKOFF: Duration = Duration::from_millis(50);
/// Limit on the polite QUIT at the end of a run.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs `ringftp loadtest`; returns the process exit code.
pub fn run(args: LoadtestArgs) -> anyhow::Result<i32> {
    if let Some(LoadtestCommand::Prepare(p)) = &args.command {
        prepare::run(p)?;
        return Ok(0);
    }
    let scenario = Scenario::load(&args.run.scenario)?;
    let plan = Plan::resolve(&scenario, &args.run, available_cpus().len())?;
    // Every session is a socket, plus a listener and a data socket while a
    // transfer is set up; a few more for the runtime.
    let per_client = if plan.ops.iter().any(|o| o.uses_data_channel()) {
        3
    } else {
        1
    };
    let fds_needed = plan.clients as u64 * per_client + 64;
    let fd_limit = sys::raise_fd_limit().context("raising the open-file limit")?;
    if fds_needed > fd_limit {
        eprintln!(
            "loadtest: warning: {} clients may need up to {fds_needed} open files; the limit is {fd_limit}",
            plan.clients
        );
    }

    let targets = {
        let plan = plan.clone();
        tokio_uring::start(async move { targets::load(&plan).await })?
    };
    let upload: &'static [u8] = if plan.ops.contains(&Op::Stor) {
        // One copy for the whole run, shared by every upload of every shard
        // (io_uring writes need a buffer that outlives the op: a leaked
        // slice does, with no reference counting on the hot path).
        let mut bytes = vec![0u8; plan.size as usize];
        Content::new("upload").fill(0, &mut bytes);
        Box::leak(bytes.into_boxed_slice())
    } else {
        &[]
    };
    let sampler = plan.server_pid.map(Sampler::start).transpose()?;

    let participants = (0..plan.clients)
        .filter(|&i| plan.quota(i) != Some(0))
        .count();
    let start = Instant::now();
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let shared = Arc::new(Shared {
        end: End::new(plan.bounds.duration.map(|d| start + d)),
        start,
        plan,
        targets,
        upload,
        progress: Progress::default(),
        gate: Gate::new(participants),
    });
    let cpu_before = sys::cpu_time_us(false);
    let ticker = Ticker::start(shared.clone());
    stop_on_ctrl_c(shared.clone());

    let results = {
        let shared = shared.clone();
        run_shards("loadgen", shared.plan.cores, move |info| {
            shard_main(info, shared.clone())
        })?
    };
    drop(ticker);
    let cpu_after = sys::cpu_time_us(false);
    let server = sampler.map(Sampler::finish);

    let plan = &shared.plan;
    let mut stats = Stats::new(&plan.ops);
    let mut last_end = start;
    for (s, end) in &results {
        stats.merge(s);
        last_end = last_end.max(*end);
    }
    let report = Report::new(
        plan,
        &stats,
        report::Measured {
            started_unix_s,
            elapsed: last_end - start,
            bytes: shared.progress.bytes.load(Ordering::Relaxed),
            generator_cpu_us: (
                cpu_after.0.saturating_sub(cpu_before.0),
                cpu_after.1.saturating_sub(cpu_before.1),
            ),
            server,
            all_logged_in: (plan.barrier && plan.ops.contains(&Op::Login))
                .then(|| shared.gate.released_after())
                .flatten(),
        },
    );

    print!(
        "{}",
        report.table(&stats.names.iter().map(String::as_str).collect::<Vec<_>>())
    );
    if let Some(path) = &plan.json {
        report.write_json(path)?;
    }
    if let Some(dir) = &plan.hgrm {
        report::write_hgrm(dir, &stats)?;
    }
    if report.passed {
        Ok(0)
    } else {
        eprintln!(
            "loadtest: FAILED: {} errors, more than --max-errors {} (kinds: {})",
            report.totals.errors,
            plan.max_errors,
            report.errors.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        Ok(1)
    }
}

/// What every shard reads; mutable parts are atomics.
struct Shared {
    plan: Plan,
    targets: Vec<Target>,
    upload: &'static [u8],
    start: Instant,
    end: End,
    progress: Progress,
    gate: Gate,
}

/// One shard's state, shared by its client tasks (one thread: no locks).
struct ShardCtx {
    shared: Arc<Shared>,
    stats: RefCell<Stats>,
    pool: BufPool,
    /// When the last request on this shard ended (or was abandoned).
    last_end: RefCell<Instant>,
}

async fn shard_main(info: ShardInfo, shared: Arc<Shared>) -> (Stats, Instant) {
    let ctx = Rc::new(ShardCtx {
        stats: RefCell::new(Stats::new(&shared.plan.ops)),
        pool: BufPool::default(),
        last_end: RefCell::new(shared.start),
        shared,
    });
    let tasks: Vec<_> = (info.id..ctx.shared.plan.clients)
        .step_by(info.count)
        .map(|i| tokio_uring::spawn(client(ctx.clone(), i)))
        .collect();
    for t in tasks {
        // A panicking client is a bug; the others still finish and report.
        if let Err(e) = t.await {
            eprintln!("loadtest: a client task failed: {e}");
        }
    }
    let stats = ctx.stats.borrow().clone();
    let end = *ctx.last_end.borrow();
    (stats, end)
}

/// A logged-in control connection.
struct Session {
    ctrl: Control,
    _counted: Counted,
}

/// Counts a session in the progress line for as long as it lives.
struct Counted(Arc<Shared>);

impl Counted {
    fn new(shared: &Arc<Shared>) -> Counted {
        shared.progress.sessions.fetch_add(1, Ordering::Relaxed);
        Counted(shared.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.progress.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One virtual client: requests until its quota or the end of the run.
async fn client(ctx: Rc<ShardCtx>, index: usize) {
    let shared = ctx.shared.clone();
    let plan = &shared.plan;
    let quota = plan.quota(index);
    if quota == Some(0) {
        return;
    }
    let mut picker = Picker::new(plan, index, shared.targets.len());
    let mut session: Option<Session> = None;
    let phase_of = |i: usize| i as f64 / plan.clients as f64;
    let interval = plan
        .rate
        .map(|r| Duration::from_secs_f64(plan.clients as f64 / r));
    let mut next_start = shared.start
        + interval
            .map(|iv| iv.mul_f64(phase_of(index)))
            .unwrap_or_default();

    // Log in once, up front, then loop: idle sessions are held for the
    // whole run, and no request pays for the first login.
    if plan.ops.iter().any(|&o| o != Op::Login) {
        match shared.end.until(open_session(&ctx, true)).await {
            Some(Ok(s)) => session = Some(s),
            Some(Err(f)) => failed(&ctx, &f).await,
            None => return,
        }
    }
    if let (None, Some(think)) = (interval, plan.think) {
        // Spread the first request of think-paced clients over one pause,
        // so idle sessions do not NOOP in lockstep.
        shared
            .end
            .sleep_until(Instant::now() + think.mul_f64(phase_of(index)))
            .await;
    }

    let mut done: u64 = 0;
    while quota.map_or(true, |q| done < q) {
        let intended = match interval {
            Some(iv) => {
                let t = next_start;
                next_start += iv;
                t
            }
            None => Instant::now(),
        };
        if shared.end.passed(intended) {
            break;
        }
        shared.end.sleep_until(intended).await;
        let op = plan.ops[done as usize % plan.ops.len()];
        let first = done == 0;
        let attempt = async {
            if op != Op::Login && session.is_none() {
                session = Some(open_session(&ctx, true).await?);
            }
            // Closed loop: a request starts when it is sent (a reconnect
            // before it is the previous failure's cost). Open loop: when it
            // was scheduled, whatever delayed it.
            let begin = if interval.is_some() {
                intended
            } else {
                Instant::now()
            };
            let end = perform(&ctx, op, &mut session, index, first, &mut picker).await?;
            Ok::<Duration, Failure>(end - begin)
        };
        let outcome = shared.end.until(attempt).await;
        let now = Instant::now();
        {
            let mut last = ctx.last_end.borrow_mut();
            *last = (*last).max(shared.end.deadline.map_or(now, |d| now.min(d)));
        }
        match outcome {
            None => {
                ctx.stats.borrow_mut().abandoned += 1;
                session = None;
                break;
            }
            Some(Ok(latency)) => {
                ctx.stats.borrow_mut().record_request(op, latency);
                shared.progress.ok.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(f)) => {
                if f.fatal() {
                    session = None;
                }
                failed(&ctx, &f).await;
            }
        }
        done += 1;
        if let (None, Some(think)) = (interval, plan.think) {
            shared.end.sleep_until(Instant::now() + think).await;
        }
    }
    if let Some(s) = session.take() {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, s.ctrl.quit()).await;
    }
}

/// Counts a failure; after one that cost the session, pauses a little so
/// a dead server is not hammered in a busy loop.
async fn failed(ctx: &ShardCtx, f: &Failure) {
    ctx.stats
        .borrow_mut()
        .record_error(f.kind(), || f.to_string());
    ctx.shared.progress.errors.fetch_add(1, Ordering::Relaxed);
    if f.fatal() {
        ctx.shared.end.sleep_until(Instant::now() + BACKOFF).await;
    }
}

/// Connect, greeting, login (each phase timed); `binary` also sends TYPE I.
async fn open_session(ctx: &ShardCtx, binary: bool) -> Result<Session, Failure> {
    let plan = &ctx.shared.plan;
    let t0 = Instant::now();
    let ctrl = Control::connect(plan.target, plan.timeout).await?;
    let t1 = Instant::now();
    let mut s = Session {
        ctrl,
        _counted: Counted::new(&ctx.shared),
    };
    ctx.stats.borrow_mut().record(Phase::Connect, t1 - t0);
    s.ctrl.greeting().await?;
    let t2 = Instant::now();
    ctx.stats.borrow_mut().record(Phase::Greeting, t2 - t1);
    s.ctrl.login(&plan.user, &plan.password).await?;
    ctx.stats.borrow_mut().record(Phase::Login, t2.elapsed());
    if binary {
        s.ctrl.expect_ok("TYPE I").await?;
    }
    Ok(s)
}

/// Performs one request of `op`; returns when its measured part ended.
async fn perform(
    ctx: &ShardCtx,
    op: Op,
    session: &mut Option<Session>,
    index: usize,
    first: bool,
    picker: &mut Picker,
) -> Result<Instant, Failure> {
    let shared = &ctx.shared;
    let plan = &shared.plan;
    if op == Op::Login {
        let result = open_session(ctx, false).await;
        let end = Instant::now();
        if first && plan.barrier {
            // Count the client in even when it failed: the others must not
            // wait for a session that will never come.
            shared.gate.arrive(shared.start);
            shared.gate.wait().await;
        }
        result?.ctrl.quit().await?;
        return Ok(end);
    }
    let s = session.as_mut().expect("the caller opened the session");
    let ctrl = &mut s.ctrl;
    let timing: Timing = match op {
        Op::Noop => {
            ctrl.expect_ok("NOOP").await?;
            return Ok(Instant::now());
        }
        Op::Retr | Op::List | Op::Nlst | Op::Mlsd => {
            let target = &shared.targets[picker.next()];
            // Only a file has a size and a content to check; a listing is
            // just counted.
            let (size, content) = match op {
                Op::Retr => (target.size, plan.verify.then(|| Content::new(&target.path))),
                _ => (None, None),
            };
            let progress = &shared.progress;
            let timing = transfer::download(
                ctrl,
                plan.mode,
                &format!("{} {}", op.verb(), target.path),
                plan.timeout,
                &ctx.pool,
                |offset, chunk| {
                    progress
                        .bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    check_chunk(&target.path, size, content, offset, chunk)
                },
            )
            .await?;
            match size {
                Some(want) if timing.bytes < want => {
                    return Err(Failure::Short {
                        got: timing.bytes,
                        want,
                    })
                }
                _ => timing,
            }
        }
        Op::Stor => {
            let path = format!("{}/lg-{index}.bin", plan.upload_dir.trim_end_matches('/'));
            let progress = &shared.progress;
            transfer::upload(
                ctrl,
                plan.mode,
                &format!("{} {path}", op.verb()),
                shared.upload,
                plan.timeout,
                |n| {
                    progress.bytes.fetch_add(n, Ordering::Relaxed);
                },
            )
            .await?
        }
        Op::Login => unreachable!("handled above"),
    };
    let end = Instant::now();
    let mut stats = ctx.stats.borrow_mut();
    stats.record(Phase::DataSetup, timing.data_setup);
    if let Some(fb) = timing.first_byte {
        stats.record(Phase::FirstByte, fb);
    }
    stats.record(Phase::Transfer, timing.transfer);
    Ok(end)
}

/// `--verify` and byte-count checks on one received chunk of the file at
/// `path` (`size` bytes when known).
fn check_chunk(
    path: &str,
    size: Option<u64>,
    content: Option<Content>,
    offset: u64,
    chunk: &[u8],
) -> Result<(), Failure> {
    if let Some(size) = size.filter(|&size| offset + chunk.len() as u64 > size) {
        return Err(Failure::Verify(format!(
            "{path}: more than its {size} bytes"
        )));
    }
    if let Some(bad) = content.and_then(|c| c.first_mismatch(offset, chunk)) {
        return Err(Failure::Verify(format!(
            "{path}: wrong byte at offset {bad}"
        )));
    }
    Ok(())
}

/// Which target a client uses next.
struct Picker {
    rng: Rng,
    next: usize,
    len: usize,
    pick: Pick,
}

impl Picker {
    fn new(plan: &Plan, index: usize, len: usize) -> Picker {
        Picker {
            rng: Rng::new(plan.seed.wrapping_mul(1_000_003).wrapping_add(index as u64)),
            // Sequential clients start spread over the list, not all at 0.
            next: if len == 0 {
                0
            } else {
                index * len / plan.clients % len
            },
            len,
            pick: plan.pick,
        }
    }

    fn next(&mut self) -> usize {
        match self.pick {
            Pick::Random => self.rng.below(self.len as u64) as usize,
            Pick::Sequential => {
                let i = self.next;
                self.next = (self.next + 1) % self.len;
                i
            }
        }
    }
}

/// The end of the run: the deadline of `--duration`, or Ctrl-C, which ends
/// a run early as if its duration had run out (the report still comes).
struct End {
    deadline: Option<Instant>,
    stopped: AtomicBool,
    notify: Notify,
}

impl End {
    fn new(deadline: Option<Instant>) -> End {
        End {
            deadline,
            stopped: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Ends the run now (from any thread).
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Is the run over at time `t`?
    fn passed(&self, t: Instant) -> bool {
        self.stopped.load(Ordering::Acquire) || self.deadline.is_some_and(|d| t >= d)
    }

    async fn reached(&self) {
        let stopped = async {
            loop {
                // Register before checking, so a stop in between still wakes us.
                let notified = self.notify.notified();
                if self.stopped.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        match self.deadline {
            Some(d) => tokio::select! {
                _ = stopped => {}
                _ = tokio::time::sleep_until(d.into()) => {}
            },
            None => stopped.await,
        }
    }

    /// Runs `fut` to completion, or until the end (None: it was cut off).
    async fn until<T>(&self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            r = fut => Some(r),
            _ = self.reached() => None,
        }
    }

    /// Sleeps until `t`, or until the end if that comes first.
    async fn sleep_until(&self, t: Instant) {
        if t > Instant::now() {
            self.until(tokio::time::sleep_until(t.into())).await;
        }
    }
}

/// Turns the first Ctrl-C into the end of the run; a second one exits at
/// once. The thread lives until the process exits.
fn stop_on_ctrl_c(shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new()
        .name("loadgen-ctrl-c".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "\nloadtest: interrupted: ending the run (Ctrl-C again to quit at once)"
                    );
                    shared.end.stop();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
        });
    if let Err(e) = spawned {
        eprintln!("loadtest: warning: no Ctrl-C handling: {e}");
    }
}

/// The login-storm barrier, across shards: each client's first session
/// stays open until every participating client has logged in or failed.
struct Gate {
    remaining: AtomicUsize,
    notify: Notify,
    /// Microseconds from the start to the release (0: not yet).
    released_us: AtomicU64,
}

impl Gate {
    fn new(participants: usize) -> Gate {
        Gate {
            remaining: AtomicUsize::new(participants),
            notify: Notify::new(),
            released_us: AtomicU64::new(0),
        }
    }

    fn arrive(&self, start: Instant) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.released_us.store(
                (start.elapsed().as_micros() as u64).max(1),
                Ordering::Release,
            );
            self.notify.notify_waiters();
        }
    }

    async fn wait(&self) {
        loop {
            // Register before checking, so a release in between still wakes us.
            let notified = self.notify.notified();
            if self.remaining.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn released_after(&self) -> Option<Duration> {
        match self.released_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}

/// The once-a-second progress line on stderr (only when it is a terminal,
/// so logs and pipes stay clean).
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(shared: Arc<Shared>) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let p = &shared.progress;
                let mut last_bytes = 0;
                let mut last_ok = 0;
                let mut tick = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if tick.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    let secs = tick.elapsed().as_secs_f64();
                    tick = Instant::now();
                    let (ok, bytes) = (p.ok.load(Ordering::Relaxed), p.bytes.load(Ordering::Relaxed));
                    eprint!(
                        "\r\x1b[K{:>6.1}s  ok {ok} ({:.0}/s)  errors {}  {:.1} MiB/s  sessions {}  ({} moved)",
                        shared.start.elapsed().as_secs_f64(),
                        (ok - last_ok) as f64 / secs,
                        p.errors.load(Ordering::Relaxed),
                        (bytes - last_bytes) as f64 / secs / (1 << 20) as f64,
                        p.sessions.load(Ordering::Relaxed),
                        format_bytes(bytes)
                    );
                    (last_ok, last_bytes) = (ok, bytes);
                }
                eprint!("\r\x1b[K");
            })
        });
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
