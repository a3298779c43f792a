//! One virtual client: its session, its pacing and its requests.
//!
//! A client logs in once, then loops: pick the next op, wait for its start
//! time, perform it, record. Pacing:
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
//! A request cut off by the end of the run is abandoned: neither a success
//! nor an error (its bytes still count in the byte total).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::Control;
use super::data::BufPool;
use super::failure::Failure;
use super::prepare::{Content, Rng};
use super::scenario::{Op, Pick, Plan};
use super::shared::Shared;
use super::stats::{Phase, Stats};
use super::transfer::{self, Timing};

/// Pause after a failure that cost the session (connect refused, reset,
/// timeout).
const BACKOFF: Duration = Duration::from_millis(50);
/// Limit on the polite QUIT at the end of a run.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// One shard's state, shared by its client tasks (one thread: no locks).
pub struct ShardCtx {
    pub shared: Arc<Shared>,
    pub stats: RefCell<Stats>,
    pub pool: BufPool,
    /// When the last request on this shard ended (or was abandoned).
    pub last_end: RefCell<Instant>,
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
pub async fn client(ctx: Rc<ShardCtx>, index: usize) {
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
    while quota.is_none_or(|q| done < q) {
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
