//! One virtual client: its session, its pacing and its requests.
//!
//! A client logs in once, then loops: pick the next op, wait for its start
//! time, perform it, record. Pacing (see [`super::schedule`]):
//! - **closed loop** (default): the next request starts when the last one
//!   ends (plus the scenario's `think` pause); latency from when it is sent;
//! - **open loop** (`--rate R`): the client takes the next start of its
//!   shard's share of the timetable, waits until it is due and sends it;
//!   latency is measured from the due time, so a start that waited for a
//!   free client is charged the wait (the coordinated-omission correction of
//!   wrk2). A shard whose clients are all busy when a start falls due adds
//!   one ([`grow`]), up to `--max-clients`.
//!
//! A request cut off by the end of the run is *abandoned*: neither a success
//! nor an error, but recorded in the `request` histogram at the time it had
//! waited by then (end − start), a lower bound of its latency: a stall that
//! runs into the end of the run shows in the tail. Its bytes still count.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::client::Control;
use super::data::BufPool;
use super::failure::Failure;
use super::plan::Plan;
use super::prepare::{Content, Rng};
use super::scenario::{Action, Op, Pick};
use super::schedule::{closed_loop_start, Slots};
use super::shared::Shared;
use super::stats::{Phase, Stats};
use super::transfer::{self, Timing};

/// Pause after a failure that cost the session (connect refused, reset,
/// timeout).
const BACKOFF: Duration = Duration::from_millis(50);
/// Limit on the polite QUIT at the end of a run.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// One shard's state, shared by its client tasks (one thread: no locks).
pub(crate) struct ShardCtx {
    pub shared: Arc<Shared>,
    pub stats: RefCell<Stats>,
    pub pool: BufPool,
    /// When the last request on this shard ended (or was abandoned).
    pub last_end: Cell<Instant>,
    /// Open loop: this shard's share of the timetable.
    pub slots: Option<Slots>,
    /// Open loop: first clients still logging in; the pool grows only once
    /// they are ready (until then a due start is theirs, not a sign that
    /// all are busy).
    pub warming: Cell<usize>,
    pub warmed: Notify,
}

/// A logged-in control connection.
struct Session {
    ctrl: Control,
    _counted: Counted,
}

/// Counts a logged-in session in the progress gauge for as long as it
/// lives.
struct Counted(Arc<Shared>);

impl Counted {
    fn new(shared: &Arc<Shared>) -> Counted {
        shared.progress.session_opened();
        Counted(shared.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.progress.session_closed();
    }
}

/// What a client carries from request to request.
struct Client {
    ctx: Rc<ShardCtx>,
    index: usize,
    session: Option<Session>,
    picker: Picker,
    /// STORs sent, which numbers the new files of `new_files`.
    stored: u64,
}

/// One virtual client: requests until its quota, the timetable's end or
/// the end of the run. `grown`: added by [`grow`] for a start that is due
/// now (it logs in as part of that request, not before).
pub(crate) async fn client(ctx: Rc<ShardCtx>, index: usize, grown: bool) {
    let shared = ctx.shared.clone();
    let plan = &shared.plan;
    let mut c = Client {
        picker: Picker::new(plan, index, shared.targets.len()),
        ctx: ctx.clone(),
        index,
        session: None,
        stored: 0,
    };
    if ctx.slots.is_some() {
        if !grown {
            c.log_in_first().await;
            ctx.warming.set(ctx.warming.get().saturating_sub(1));
            ctx.warmed.notify_waiters();
        }
        c.open_loop().await;
    } else {
        c.closed_loop().await;
    }
    if let Some(s) = c.session.take() {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, s.ctrl.quit()).await;
    }
}

impl Client {
    /// Logs in once, up front, when the ops use a session: idle sessions are
    /// held for the whole run, and no request pays for the first login.
    /// A login the run's end cut short (a server that accepts and never
    /// greets, say) is an abandoned `login` request, so such a run does
    /// not read as a clean one with nothing in it.
    async fn log_in_first(&mut self) {
        let shared = &self.ctx.shared;
        let began = Instant::now();
        if shared.end.passed(began) {
            return;
        }
        if shared.plan.ops.iter().any(|a| a.op != Op::Login) {
            match shared.end.until(open_session(&self.ctx, true)).await {
                Some(Ok(s)) => self.session = Some(s),
                Some(Err(f)) => failed(&self.ctx, &f, None).await,
                None => {
                    let cut = shared.end.cut_at(Instant::now());
                    self.ctx.stats.borrow_mut().record_abandoned(
                        Op::Login.into(),
                        cut.saturating_duration_since(began),
                        cut,
                    );
                }
            }
        }
    }

    async fn closed_loop(&mut self) {
        let shared = self.ctx.shared.clone();
        let plan = &shared.plan;
        let quota = plan.quota(self.index);
        if quota == Some(0) {
            return;
        }
        let phase = self.index as f64 / plan.clients as f64;
        shared
            .end
            .sleep_until(closed_loop_start(
                shared.start,
                plan.ramp,
                self.index,
                plan.clients,
            ))
            .await;
        self.log_in_first().await;
        if let Some(think) = plan.think {
            // Spread the first request of think-paced clients over one
            // pause, so idle sessions do not NOOP in lockstep.
            shared
                .end
                .sleep_until(Instant::now() + think.mul_f64(phase))
                .await;
        }
        let mut done: u64 = 0;
        while quota.is_none_or(|q| done < q) {
            if shared.end.passed(Instant::now()) {
                break;
            }
            let op = plan.sequence[done as usize % plan.sequence.len()];
            if !self.request(op, done == 0, None).await {
                break;
            }
            done += 1;
            if let Some(think) = plan.think {
                shared.end.sleep_until(Instant::now() + think).await;
            }
        }
    }

    async fn open_loop(&mut self) {
        let shared = self.ctx.shared.clone();
        let plan = &shared.plan;
        let mut first = true;
        while let Some((g, due)) = self.ctx.slots.as_ref().and_then(Slots::take) {
            if shared.end.passed(due) {
                break;
            }
            shared.end.sleep_until(due).await;
            if shared.end.passed(Instant::now()) {
                break;
            }
            let op = plan.sequence[g as usize % plan.sequence.len()];
            if !self.request(op, first, Some(due)).await {
                break;
            }
            first = false;
        }
    }

    /// One request of `op`, started at `due` (open loop) or when sent
    /// (closed loop), recorded as ok, failed or abandoned. False when the
    /// run ended during it.
    async fn request(&mut self, op: Action, first: bool, due: Option<Instant>) -> bool {
        let ctx = self.ctx.clone();
        let shared = &ctx.shared;
        let called = Instant::now();
        let begin = Cell::new(due);
        let attempt = async {
            if op.op != Op::Login && self.session.is_none() {
                self.session = Some(open_session(&ctx, true).await?);
            }
            // Closed loop: a request starts when it is sent (a reconnect
            // before it is the previous failure's cost). Open loop: when it
            // was due, whatever delayed it.
            let b = due.unwrap_or_else(Instant::now);
            begin.set(Some(b));
            let (end, bytes) = perform(&ctx, op, self, first).await?;
            Ok::<_, Failure>((end - b, bytes))
        };
        let outcome = shared.end.until(attempt).await;
        let now = Instant::now();
        let begin = begin.get().unwrap_or(called);
        ctx.last_end
            .set(ctx.last_end.get().max(shared.end.cut_at(now)));
        match outcome {
            None => {
                let cut = shared.end.cut_at(now);
                ctx.stats.borrow_mut().record_abandoned(
                    op,
                    cut.saturating_duration_since(begin),
                    cut,
                );
                self.session = None;
                false
            }
            Some(Ok((latency, bytes))) => {
                ctx.stats.borrow_mut().record_ok(op, latency, bytes, now);
                shared.progress.ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(Err(f)) => {
                if f.fatal() {
                    self.session = None;
                }
                failed(&ctx, &f, Some((op, now.saturating_duration_since(begin)))).await;
                true
            }
        }
    }
}

/// Open loop: adds a client whenever a start of the shard falls due and
/// none has taken it (every client is busy), from `spare` indices, until
/// they run out or the run ends.
pub(crate) async fn grow(ctx: Rc<ShardCtx>, spare: Vec<usize>) {
    let shared = ctx.shared.clone();
    let Some(slots) = ctx.slots.as_ref() else {
        return;
    };
    loop {
        let woken = ctx.warmed.notified();
        if ctx.warming.get() == 0 {
            break;
        }
        if shared.end.until(woken).await.is_none() {
            return;
        }
    }
    let mut spare = spare.into_iter();
    let mut added = Vec::new();
    while let Some((g, due)) = slots.peek() {
        if shared.end.passed(due) {
            break;
        }
        shared.end.sleep_until(due).await;
        if shared.end.passed(Instant::now()) {
            break;
        }
        // Let clients that became free at this very tick take it first.
        tokio::task::yield_now().await;
        if slots.peek().map(|s| s.0) != Some(g) {
            continue;
        }
        let Some(index) = spare.next() else {
            break;
        };
        added.push(tokio_uring::spawn(client(ctx.clone(), index, true)));
        tokio::task::yield_now().await;
    }
    for t in added {
        if let Err(e) = t.await {
            eprintln!("loadtest: a client task failed: {e}");
        }
    }
}

/// Counts a failure (`request`: the failed request's action and latency,
/// None for the login before the first request); after one that cost the
/// session, pauses a little so a dead server is not hammered in a busy
/// loop.
async fn failed(ctx: &ShardCtx, f: &Failure, request: Option<(Action, Duration)>) {
    ctx.stats
        .borrow_mut()
        .record_error(f.kind(), || f.to_string(), request, Instant::now());
    ctx.shared.progress.errors.fetch_add(1, Ordering::Relaxed);
    if f.fatal() {
        ctx.shared.end.sleep_until(Instant::now() + BACKOFF).await;
    }
}

/// Connect, greeting, login (each phase timed); `binary` also sends TYPE I.
async fn open_session(ctx: &ShardCtx, binary: bool) -> Result<Session, Failure> {
    let plan = &ctx.shared.plan;
    let t0 = Instant::now();
    let mut ctrl = Control::connect(plan.target, plan.timeout).await?;
    ctrl.data_rcvbuf = plan.rcvbuf;
    let t1 = Instant::now();
    ctx.stats.borrow_mut().record(Phase::Connect, t1 - t0, t1);
    ctrl.greeting().await?;
    let t2 = Instant::now();
    ctx.stats.borrow_mut().record(Phase::Greeting, t2 - t1, t2);
    ctrl.login(&plan.user, &plan.password).await?;
    let t3 = Instant::now();
    ctx.stats.borrow_mut().record(Phase::Login, t3 - t2, t3);
    let s = Session {
        ctrl,
        _counted: Counted::new(&ctx.shared),
    };
    let mut s = s;
    if binary {
        s.ctrl.expect_ok("TYPE I").await?;
    }
    Ok(s)
}

/// Performs one request of `action` for client `c`; returns when its
/// measured part ended and the file bytes it moved (RETR, STOR).
async fn perform(
    ctx: &ShardCtx,
    action: Action,
    c: &mut Client,
    first: bool,
) -> Result<(Instant, Option<u64>), Failure> {
    let shared = &ctx.shared;
    let plan = &shared.plan;
    let op = action.op;
    let mode = action.mode_or(plan.mode);
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
        return Ok((end, None));
    }
    let s = c.session.as_mut().expect("the caller opened the session");
    let ctrl = &mut s.ctrl;
    let progress = &shared.progress;
    let count = |n: u64| {
        progress.bytes.fetch_add(n, Ordering::Relaxed);
        ctx.stats.borrow_mut().add_bytes(n, Instant::now());
    };
    let (timing, bytes): (Timing, Option<u64>) = match op {
        Op::Noop => {
            ctrl.expect_ok("NOOP").await?;
            return Ok((Instant::now(), None));
        }
        Op::Size | Op::Mdtm => {
            let target = &shared.targets[c.picker.next()];
            ctrl.expect_ok(&format!("{} {}", op.verb(), target.path))
                .await?;
            return Ok((Instant::now(), None));
        }
        Op::Retr | Op::List | Op::Nlst | Op::Mlsd => {
            let target = &shared.targets[c.picker.next()];
            // A listing in a mix with ops on files lists the directory of
            // the file picked; alone, its path is the directory to list.
            let path = if op.lists() && plan.names_files() {
                parent(&target.path)
            } else {
                &target.path
            };
            // Only a file has a size and a content to check; a listing is
            // just counted.
            let (size, content) = match op {
                Op::Retr => (target.size, plan.verify.then(|| Content::new(&target.path))),
                _ => (None, None),
            };
            let timing = transfer::download(
                ctrl,
                mode,
                &format!("{} {path}", op.verb()),
                plan.timeout,
                &ctx.pool,
                |offset, chunk| {
                    count(chunk.len() as u64);
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
                _ => (timing, (op == Op::Retr).then_some(timing.bytes)),
            }
        }
        Op::Stor => {
            let dir = plan.upload_dir.trim_end_matches('/');
            let path = if plan.new_files {
                c.stored += 1;
                format!("{dir}/lg-{}-{}-{}.bin", shared.run_tag, c.index, c.stored)
            } else {
                format!("{dir}/lg-{}.bin", c.index)
            };
            let timing = transfer::upload(
                ctrl,
                mode,
                &format!("{} {path}", op.verb()),
                shared.upload,
                plan.timeout,
                count,
            )
            .await?;
            (timing, Some(timing.bytes))
        }
        Op::Login => unreachable!("handled above"),
    };
    let end = Instant::now();
    let mut stats = ctx.stats.borrow_mut();
    stats.record(Phase::DataSetup, timing.data_setup, end);
    if let Some(fb) = timing.first_byte {
        stats.record(Phase::FirstByte, fb, end);
    }
    stats.record(Phase::Transfer, timing.transfer, end);
    Ok((end, bytes))
}

/// The directory part of a remote path (`/` for a file at the root).
fn parent(path: &str) -> &str {
    match path.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
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
                index * len / plan.max_clients % len
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

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn parents() {
        assert_eq!(parent("/pub/d00/f.dat"), "/pub/d00");
        assert_eq!(parent("/f.dat"), "/");
        assert_eq!(parent("f.dat"), "/");
    }
}
