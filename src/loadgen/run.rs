//! A load-test run from start to report: resolve the plan, gather the
//! targets, start the shards (each drives its share of the virtual clients,
//! see [`super::vclient`]), merge what they measured, and report.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;

use super::data::BufPool;
use super::prepare::Content;
use super::procstat::Sampler;
use super::progress::Ticker;
use super::report::{self, Report};
use super::scenario::{Op, Plan, Scenario};
use super::shared::{stop_on_ctrl_c, End, Gate, Shared};
use super::stats::{Progress, Stats};
use super::targets;
use super::vclient::{client, ShardCtx};
use super::{prepare, LoadtestArgs, LoadtestCommand};
use crate::engine::shard::{available_cpus, run_shards, ShardInfo};
use crate::engine::sys;

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
        run_shards("loadgen", shared.plan.cores, shared.plan.pin, move |info| {
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
