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
/// timeout), so a dead server is not hammered in a busy loop.
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
    // Every session is a socket, plus one per data channel in flight.
    let fd_limit = sys::raise_fd_limit().context("raising the open-file limit")?;
    if plan.clients as u64 * 2 + 64 > fd_limit {
        eprintln!(
            "loadtest: warning: {} clients may need up to {} open files; the limit is {fd_limit}",
            plan.clients,
            plan.clients * 2 + 64
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
        deadline: plan.bounds.duration.map(|d| start + d),
        start,
        plan,
        targets,
        upload,
        progress: Progress::default(),
        gate: Gate::new(participants),
    });
    let cpu_before = sys::cpu_time_us(false);
    let ticker = Ticker::start(shared.clone());

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
    let elapsed = (last_end - start).as_secs_f64().max(1e-6);
    let errors = stats.error_count();
    let bytes = shared.progress.bytes.load(Ordering::Relaxed);
    let cpu = |after: u64, before: u64| after.saturating_sub(before) as f64 / 1e6;
    let (gen_user, gen_sys) = (
        cpu(cpu_after.0, cpu_before.0),
        cpu(cpu_after.1, cpu_before.1),
    );

    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        tool: format!("ringftp loadtest {}", env!("CARGO_PKG_VERSION")),
        scenario: plan.scenario.clone(),
        description: plan.description.clone(),
        config: report::Config {
            target: plan.target_text.clone(),
            mode: plan.mode.name().into(),
            ops: plan.ops.iter().map(|o| o.name().to_string()).collect(),
            clients: plan.clients,
            cores: plan.cores,
            duration_s: plan.bounds.duration.map(|d| d.as_secs_f64()),
            requests: plan.bounds.total_requests,
            rate: plan.rate,
            verify: plan.verify,
            timeout_s: plan.timeout.as_secs_f64(),
            max_errors: plan.max_errors,
        },
        started_unix_s,
        elapsed_s: elapsed,
        totals: report::Totals {
            requests: stats.ok + errors,
            ok: stats.ok,
            errors,
            abandoned: stats.abandoned,
            bytes,
            requests_per_s: stats.ok as f64 / elapsed,
            mib_per_s: bytes as f64 / (1 << 20) as f64 / elapsed,
        },
        all_logged_in_s: (plan.barrier && plan.ops.contains(&Op::Login))
            .then(|| shared.gate.released_after())
            .flatten()
            .map(|d| d.as_secs_f64()),
        phases: report::phases(&stats)
            .into_iter()
            .map(|(n, h)| (n.to_string(), report::summarize(h)))
            .collect(),
        errors: stats
            .errors
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    report::ErrorSummary {
                        count: t.count,
                        example: t.example.clone(),
                    },
                )
            })
            .collect(),
        generator: report::Cpu {
            user_s: gen_user,
            sys_s: gen_sys,
            cpu_percent: (gen_user + gen_sys) / elapsed * 100.0,
        },
        server: server.map(|s| {
            let (user, sys) = s.cpu_us();
            let cpu_s = (user + sys) as f64 / 1e6;
            report::Server {
                pid: plan.server_pid.unwrap_or(0),
                processes_peak: s.peak_processes,
                cpu_user_s: user as f64 / 1e6,
                cpu_sys_s: sys as f64 / 1e6,
                cpu_s,
                cpu_ms_per_request: cpu_s * 1000.0 / stats.ok.max(1) as f64,
                rss_start_bytes: s.start.rss_bytes,
                rss_peak_bytes: s.peak_rss_bytes,
                rss_end_bytes: s.end.rss_bytes,
                pss_peak_bytes: s.peak_pss_bytes,
                rss_growth_per_client_bytes: s.peak_rss_bytes.saturating_sub(s.start.rss_bytes)
                    / plan.clients as u64,
            }
        }),
        passed: errors <= plan.max_errors,
    };

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
            "loadtest: FAILED: {errors} errors, more than --max-errors {} (kinds: {})",
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
    deadline: Option<Instant>,
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

/// One virtual client: requests until its quota or the deadline.
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
    if let (None, Some(think)) = (interval, plan.think) {
        // Spread the first request of think-paced clients over one pause,
        // so idle sessions do not NOOP in lockstep.
        sleep_until(
            Instant::now() + think.mul_f64(phase_of(index)),
            shared.deadline,
        )
        .await;
    }

    let mut done: u64 = 0;
    loop {
        if quota.is_some_and(|q| done >= q) {
            break;
        }
        let intended = match interval {
            Some(iv) => {
                let t = next_start;
                next_start += iv;
                t
            }
            None => Instant::now(),
        };
        if shared.deadline.is_some_and(|d| intended >= d) {
            break;
        }
        sleep_until(intended, None).await;
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
        let outcome = match shared.deadline {
            None => Some(attempt.await),
            Some(d) => tokio::select! {
                r = attempt => Some(r),
                _ = tokio::time::sleep_until(d.into()) => None,
            },
        };
        let now = Instant::now();
        {
            let mut last = ctx.last_end.borrow_mut();
            *last = (*last).max(shared.deadline.map_or(now, |d| now.min(d)));
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
                ctx.stats
                    .borrow_mut()
                    .record_error(f.kind(), || f.to_string());
                shared.progress.errors.fetch_add(1, Ordering::Relaxed);
                if f.fatal() {
                    session = None;
                    sleep_until(Instant::now() + BACKOFF, shared.deadline).await;
                }
            }
        }
        done += 1;
        if let (None, Some(think)) = (interval, plan.think) {
            sleep_until(Instant::now() + think, shared.deadline).await;
        }
    }
    if let Some(s) = session.take() {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, s.ctrl.quit()).await;
    }
}

/// Sleeps until `t`, or until `deadline` if that comes first.
async fn sleep_until(t: Instant, deadline: Option<Instant>) {
    let t = deadline.map_or(t, |d| t.min(d));
    if t > Instant::now() {
        tokio::time::sleep_until(t.into()).await;
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
        Op::Retr => {
            let target = &shared.targets[picker.next()];
            let content = plan.verify.then(|| Content::new(&target.path));
            let progress = &shared.progress;
            let timing = transfer::download(
                ctrl,
                plan.mode,
                &format!("RETR {}", target.path),
                plan.timeout,
                &ctx.pool,
                |offset, chunk| {
                    progress
                        .bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    check_chunk(target, content, offset, chunk)
                },
            )
            .await?;
            if let Some(want) = target.size {
                if timing.bytes < want {
                    return Err(Failure::Short {
                        got: timing.bytes,
                        want,
                    });
                }
            }
            timing
        }
        Op::List | Op::Nlst | Op::Mlsd => {
            let target = &shared.targets[picker.next()];
            let verb = op.name().to_ascii_uppercase();
            let progress = &shared.progress;
            transfer::download(
                ctrl,
                plan.mode,
                &format!("{verb} {}", target.path),
                plan.timeout,
                &ctx.pool,
                |_, chunk| {
                    progress
                        .bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Ok(())
                },
            )
            .await?
        }
        Op::Stor => {
            let path = format!("{}/lg-{index}.bin", plan.upload_dir.trim_end_matches('/'));
            let progress = &shared.progress;
            transfer::upload(
                ctrl,
                plan.mode,
                &format!("STOR {path}"),
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

/// `--verify` and byte-count checks on one received chunk.
fn check_chunk(
    target: &Target,
    content: Option<Content>,
    offset: u64,
    chunk: &[u8],
) -> Result<(), Failure> {
    let end = offset + chunk.len() as u64;
    if let Some(size) = target.size {
        if end > size {
            return Err(Failure::Verify(format!(
                "{}: more than its {size} bytes",
                target.path
            )));
        }
    }
    if let Some(bad) = content.and_then(|c| c.first_mismatch(offset, chunk)) {
        return Err(Failure::Verify(format!(
            "{}: wrong byte at offset {bad}",
            target.path
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
