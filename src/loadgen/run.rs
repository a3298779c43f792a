//! A load-test run from start to report: resolve the plan, gather the
//! targets (and check the upload directory), then round by round start the
//! shards (each drives its share of the virtual clients, see
//! [`super::vclient`]), merge what they measured, and report: table, JSON,
//! `.hgrm`, `.hlog`, checks and exit status.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::Notify;

use super::data::BufPool;
use super::plan::Plan;
use super::prepare::Content;
use super::procstat::Sampler;
use super::progress::Ticker;
use super::report::{self, Config, Report, RoundResult};
use super::scenario::{Op, Scenario};
use super::schedule::{Slots, Timetable};
use super::shared::{End, Gate, Interrupt, Shared};
use super::stats::{Phase, Progress, Stats};
use super::targets::{self, Target};
use super::vclient::{client, grow, ShardCtx};
use super::{compare, plot, prepare, table, LoadtestArgs, LoadtestCommand};
use crate::engine::shard::{available_cpus, run_shards, ShardInfo};
use crate::engine::sys;

/// Runs `ringftp loadtest` (or one of its subcommands); returns the process
/// exit code.
pub fn run(args: LoadtestArgs) -> anyhow::Result<i32> {
    match &args.command {
        Some(LoadtestCommand::Prepare(p)) => {
            prepare::run(p)?;
            return Ok(0);
        }
        Some(LoadtestCommand::Plot(p)) => {
            plot::run(p)?;
            return Ok(0);
        }
        Some(LoadtestCommand::Compare(c)) => return compare::run(c),
        None => {}
    }
    if let Some(mode) = args.run.tls {
        let host = args
            .run
            .target
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(&args.run.target);
        let name = args.run.tls_server_name.as_deref().unwrap_or(host);
        super::tls::configure(
            mode,
            args.run.tls_version,
            args.run.tls_ca.as_deref(),
            args.run.tls_insecure,
            name,
        )?;
    }
    let scenario = Scenario::load(&args.run.scenario, args.run.scale.as_deref())?;
    let plan = Plan::resolve(&scenario, &args.run, available_cpus().len())?;
    if args.run.dry_run {
        println!("{}", serde_json::to_string_pretty(&Config::of(&plan))?);
        return Ok(0);
    }
    check_outputs(&plan)?;
    // Every session is a socket, plus a listener and a data socket while a
    // transfer is set up; a few more for the runtime.
    let per_client = if plan.ops.iter().any(|a| a.op.uses_data_channel()) {
        3
    } else {
        1
    };
    let fds_needed = plan.max_clients as u64 * per_client + 64;
    let fd_limit = sys::raise_fd_limit().context("raising the open-file limit")?;
    if fds_needed > fd_limit {
        eprintln!(
            "loadtest: warning: {} clients may need up to {fds_needed} open files; the limit is {fd_limit}",
            plan.max_clients
        );
    }

    if let Some(asked) = plan.rcvbuf {
        match super::client::granted_rcvbuf(asked) {
            Some(got) if got < asked => eprintln!(
                "loadtest: warning: --rcvbuf {}: Linux grants {} (net.core.rmem_max caps it)",
                crate::units::format_bytes(asked),
                crate::units::format_bytes(got)
            ),
            _ => {}
        }
    }

    let targets = {
        let plan = plan.clone();
        tokio_uring::start(async move { targets::load(&plan).await })?
    };
    let upload: &'static [u8] = if plan.has(Op::Stor) {
        // One copy for the whole run, shared by every upload of every shard
        // (io_uring writes need a buffer that outlives the op: a leaked
        // slice does, with no reference counting on the hot path).
        let mut bytes = vec![0u8; plan.size as usize];
        Content::new("upload").fill(0, &mut bytes);
        Box::leak(bytes.into_boxed_slice())
    } else {
        &[]
    };

    let interrupt = Interrupt::install();
    let started = SystemTime::now();
    let run_start = Instant::now();
    let mut rounds = Vec::new();
    let mut order = Vec::new();
    for round in 1..=plan.rounds {
        let label = if plan.rounds > 1 {
            format!("round {round}/{} ", plan.rounds)
        } else {
            String::new()
        };
        let run_tag = format!(
            "{}-{:x}-r{round}",
            std::process::id(),
            started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        );
        let r = run_round(
            &plan, &targets, upload, run_start, &interrupt, label, run_tag,
        )?;
        order.clone_from(&r.stats.names);
        rounds.push(r);
        if interrupt.hit() {
            break;
        }
    }

    let mut hlog = plan.hlog.as_ref().map(|_| Vec::new());
    let report = Report::new(&plan, &rounds, started, hlog.as_mut())?;
    print!("{}", table::render(&report, &order));
    if let Some(path) = &plan.json {
        report.write_json(path)?;
    }
    if let Some(dir) = &plan.hgrm {
        let mut all = rounds[0].stats.clone();
        for r in &rounds[1..] {
            all.merge_figures(&r.stats);
        }
        report::write_hgrm(dir, &all)?;
    }
    if let (Some(path), Some(bytes)) = (&plan.hlog, hlog) {
        std::fs::write(path, bytes).with_context(|| format!("--hlog {}", path.display()))?;
    }
    if report.passed {
        return Ok(0);
    }
    for c in report.checks.iter().filter(|c| !c.passed) {
        if c.figure == "errors" {
            eprintln!(
                "loadtest: FAILED: {} errors, more than --max-errors {} (kinds: {})",
                report.totals.errors,
                plan.max_errors,
                report.errors.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        } else if c.figure == "ok_requests" {
            eprintln!(
                "loadtest: FAILED: no request succeeded ({} errors, {} abandoned at the end)",
                report.totals.errors, report.totals.abandoned
            );
        } else {
            eprintln!("loadtest: FAILED threshold: {}", c.describe());
        }
    }
    Ok(1)
}

/// Refuses, before any load is sent, a `--json` or `--hlog` file or an
/// `--hgrm` directory that cannot be written, so a long run does not end
/// in an error with its figures lost. Nothing is truncated here; a file
/// that did not exist is removed again (the report writes it at the end).
fn check_outputs(plan: &Plan) -> anyhow::Result<()> {
    let probe = |path: &std::path::Path, flag: &str| -> anyhow::Result<()> {
        let existed = path.symlink_metadata().is_ok();
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("{flag} {}: cannot be written", path.display()))?;
        if !existed {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    };
    if let Some(path) = &plan.json {
        probe(path, "--json")?;
    }
    if let Some(path) = &plan.hlog {
        probe(path, "--hlog")?;
    }
    if let Some(dir) = &plan.hgrm {
        std::fs::create_dir_all(dir).with_context(|| format!("--hgrm {}", dir.display()))?;
        probe(&dir.join("request.hgrm"), "--hgrm")?;
    }
    Ok(())
}

/// One round: fresh shards, a fresh start, and what they measured.
fn run_round(
    plan: &Plan,
    targets: &[Target],
    upload: &'static [u8],
    run_start: Instant,
    interrupt: &Interrupt,
    label: String,
    run_tag: String,
) -> anyhow::Result<RoundResult> {
    let sampler = plan.server_pid.map(Sampler::start).transpose()?;
    let participants = (0..plan.clients)
        .filter(|&i| plan.quota(i) != Some(0))
        .count();
    let start = Instant::now();
    let shared = Arc::new(Shared {
        end: End::new(start, plan.bounds.duration.map(|d| start + d)),
        start,
        plan: plan.clone(),
        targets: targets.to_vec(),
        upload,
        run_tag,
        progress: Progress::default(),
        gate: Gate::new(participants),
    });
    interrupt.watch(shared.clone());
    let cpu_before = sys::cpu_time_us(false);
    let ticker = Ticker::start(shared.clone(), label);
    let results = {
        let shared = shared.clone();
        run_shards(
            "loadgen",
            plan.cores,
            plan.pin,
            || Ok(()),
            move |info| shard_main(info, shared.clone()),
        )?
    };
    drop(ticker);
    let cpu_after = sys::cpu_time_us(false);
    let server = sampler.map(Sampler::finish);

    let mut stats = Stats::new(&plan.ops, plan.moves_files(), start, plan.bounds.duration);
    let mut last_end = start;
    for (s, end) in &results {
        stats.merge(s);
        last_end = last_end.max(*end);
    }
    let finished = stats.ok
        + stats
            .hist(crate::loadgen::stats::PHASES[Phase::Failed as usize])
            .map_or(0, |h| h.len());
    let window = window(
        &shared.end,
        plan.bounds.total_requests,
        finished,
        start,
        last_end,
    );
    Ok(RoundResult {
        offset: start.saturating_duration_since(run_start),
        window,
        bytes: shared.progress.bytes.load(Ordering::Relaxed),
        generator_cpu_us: (
            cpu_after.0.saturating_sub(cpu_before.0),
            cpu_after.1.saturating_sub(cpu_before.1),
        ),
        server,
        sessions_peak: shared.progress.sessions_peak.load(Ordering::Relaxed),
        all_logged_in: (plan.barrier && plan.has(Op::Login))
            .then(|| shared.gate.released_after())
            .flatten(),
        stats,
    })
}

/// The measuring window: to the Ctrl-C that ended the round early; to the
/// end of the last request when the round finished its `--requests`; else to
/// the deadline (however early the clients ran out of work: a rate of one
/// request a minute for 1 s made one request *per second*); with neither,
/// to the last request.
fn window(
    end: &End,
    quota: Option<u64>,
    finished: u64,
    start: Instant,
    last_end: Instant,
) -> Duration {
    let until = match (end.stopped_at(), quota) {
        (Some(stop), _) => end.ended_at().unwrap_or(stop),
        (None, Some(n)) if finished >= n => last_end,
        _ => end.deadline.unwrap_or(last_end),
    };
    until.saturating_duration_since(start)
}

async fn shard_main(info: ShardInfo, shared: Arc<Shared>) -> (Stats, Instant) {
    let plan = &shared.plan;
    let slots = plan.rate.map(|rate| {
        Slots::new(
            Timetable::new(rate, plan.ramp),
            shared.start,
            info.id,
            info.count,
            plan.bounds.total_requests,
        )
    });
    let mine: Vec<usize> = (info.id..plan.clients).step_by(info.count).collect();
    let ctx = Rc::new(ShardCtx {
        stats: RefCell::new(Stats::new(
            &plan.ops,
            plan.moves_files(),
            shared.start,
            plan.bounds.duration,
        )),
        pool: BufPool::default(),
        last_end: Cell::new(shared.start),
        warming: Cell::new(mine.len()),
        warmed: Notify::new(),
        slots,
        shared: shared.clone(),
    });
    let mut tasks: Vec<_> = mine
        .iter()
        .map(|&i| tokio_uring::spawn(client(ctx.clone(), i, false)))
        .collect();
    if ctx.slots.is_some() {
        let spare: Vec<usize> = (plan.clients..plan.max_clients)
            .filter(|i| i % info.count == info.id)
            .collect();
        tasks.push(tokio_uring::spawn(grow(ctx.clone(), spare)));
    }
    for t in tasks {
        // A panicking client is a bug; the others still finish and report.
        if let Err(e) = t.await {
            eprintln!("loadtest: a client task failed: {e}");
        }
    }
    // Open loop: the starts due before the end that nobody took.
    if let (Some(slots), Some(end)) = (ctx.slots.as_ref(), shared.end.ended_at()) {
        let mut stats = ctx.stats.borrow_mut();
        for due in slots.missed_before(end) {
            stats.record_missed(due);
        }
    }
    let mut stats = ctx.stats.borrow().clone();
    stats.series.finish();
    let end = ctx.last_end.get();
    (stats, end)
}
