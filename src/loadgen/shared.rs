//! What every shard of a round shares: the plan and its targets
//! (read-only), and the few things that cross threads — the end of the round
//! (deadline or Ctrl-C), the login-storm barrier, and the progress counters —
//! all atomics and `Notify`s, never a lock on the hot path.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::plan::Plan;
use super::stats::Progress;
use super::targets::Target;

/// What every shard reads; mutable parts are atomics.
pub(crate) struct Shared {
    pub plan: Plan,
    /// The remote paths requests pick from.
    pub targets: Vec<Target>,
    /// What every STOR sends (empty unless the scenario uploads).
    pub upload: &'static [u8],
    /// Unique to this run and round (`PID-MS-rROUND`): names the new
    /// files of `new_files` so no run overwrites another's.
    pub run_tag: String,
    /// t0: open-loop schedules and the measuring window start here.
    pub start: Instant,
    pub end: End,
    pub progress: Progress,
    pub gate: Gate,
}

/// The end of the run: the deadline of `--duration`, or Ctrl-C, which ends
/// a run early as if its duration had run out (the report still comes).
pub(crate) struct End {
    pub deadline: Option<Instant>,
    /// When the run started: `stopped_us` counts from it.
    start: Instant,
    stopped: AtomicBool,
    /// When [`End::stop`] was called, µs after `start` (0: not yet).
    stopped_us: AtomicU64,
    notify: Notify,
}

impl End {
    /// The end of a run started at `start`, with a deadline or none.
    pub(crate) fn new(start: Instant, deadline: Option<Instant>) -> End {
        End {
            deadline,
            start,
            stopped: AtomicBool::new(false),
            stopped_us: AtomicU64::new(0),
            notify: Notify::new(),
        }
    }

    /// Ends the run now (from any thread).
    pub(crate) fn stop(&self) {
        let us = (self.start.elapsed().as_micros() as u64).max(1);
        let _ = self
            .stopped_us
            .compare_exchange(0, us, Ordering::AcqRel, Ordering::Acquire);
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// When the run was stopped early (Ctrl-C), if it was.
    pub(crate) fn stopped_at(&self) -> Option<Instant> {
        match self.stopped_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(self.start + Duration::from_micros(us)),
        }
    }

    /// When the run ended or ends: the stop, else the deadline (None: it
    /// ends when the requests are done).
    pub(crate) fn ended_at(&self) -> Option<Instant> {
        match (self.stopped_at(), self.deadline) {
            (Some(s), Some(d)) => Some(s.min(d)),
            (s, d) => s.or(d),
        }
    }

    /// The instant a request cut off at `now` is charged to: the end of the
    /// run, never later than `now`.
    pub(crate) fn cut_at(&self, now: Instant) -> Instant {
        self.ended_at().map_or(now, |e| e.min(now))
    }

    /// Is the run over at time `t`?
    pub(crate) fn passed(&self, t: Instant) -> bool {
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
    pub(crate) async fn until<T>(&self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            r = fut => Some(r),
            _ = self.reached() => None,
        }
    }

    /// Sleeps until `t`, or until the end if that comes first.
    pub(crate) async fn sleep_until(&self, t: Instant) {
        if t > Instant::now() {
            self.until(tokio::time::sleep_until(t.into())).await;
        }
    }
}

/// Ctrl-C for a whole run: the first ends the round in progress (as if its
/// duration had run out; the report still comes) and any rounds left; a
/// second exits at once.
#[derive(Default)]
pub(crate) struct Interrupt {
    current: Mutex<Option<Arc<Shared>>>,
    hit: AtomicBool,
}

impl Interrupt {
    /// Starts listening for Ctrl-C; the thread lives until the process
    /// exits.
    pub(crate) fn install() -> Arc<Interrupt> {
        let me = Arc::new(Interrupt::default());
        let watcher = me.clone();
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
                        watcher.hit.store(true, Ordering::Release);
                        if let Some(s) = watcher.current.lock().unwrap().as_ref() {
                            s.end.stop();
                        }
                        if tokio::signal::ctrl_c().await.is_ok() {
                            std::process::exit(130);
                        }
                    }
                });
            });
        if let Err(e) = spawned {
            eprintln!("loadtest: warning: no Ctrl-C handling: {e}");
        }
        me
    }

    /// Makes `shared` the round a Ctrl-C ends (at once if one came already).
    pub(crate) fn watch(&self, shared: Arc<Shared>) {
        let mut current = self.current.lock().unwrap();
        if self.hit() {
            shared.end.stop();
        }
        *current = Some(shared);
    }

    /// Has Ctrl-C been pressed?
    pub(crate) fn hit(&self) -> bool {
        self.hit.load(Ordering::Acquire)
    }
}

/// The login-storm barrier, across shards: each client's first session
/// stays open until every participating client has logged in or failed.
pub(crate) struct Gate {
    remaining: AtomicUsize,
    notify: Notify,
    /// Microseconds from the start to the release (0: not yet).
    released_us: AtomicU64,
}

impl Gate {
    pub(crate) fn new(participants: usize) -> Gate {
        Gate {
            remaining: AtomicUsize::new(participants),
            notify: Notify::new(),
            released_us: AtomicU64::new(0),
        }
    }

    pub(crate) fn arrive(&self, start: Instant) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.released_us.store(
                (start.elapsed().as_micros() as u64).max(1),
                Ordering::Release,
            );
            self.notify.notify_waiters();
        }
    }

    pub(crate) async fn wait(&self) {
        loop {
            // Register before checking, so a release in between still wakes us.
            let notified = self.notify.notified();
            if self.remaining.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn released_after(&self) -> Option<Duration> {
        match self.released_us.load(Ordering::Acquire) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}
