//! A shard's worker threads for blocking filesystem work (reading and
//! rendering directory listings), so it never runs on the shard thread.
//!
//! Why not tokio's `spawn_blocking`: it starts a new thread whenever none
//! is idle at that very instant, and a listing streamed in chunks asks for
//! one right after the last finished — so ten concurrent listings grew the
//! process to ~50 threads, each keeping its allocator heap (measured: about
//! 2.5 MiB of RSS per thread, ~100 MiB in all, never returned while idle).
//! A fixed pool of [`WORKERS_PER_SHARD`] threads per shard bounds both,
//! and its FIFO queue interleaves the chunks of concurrent listings fairly.
//!
//! The queue wakes one worker per job, and only one that sleeps: idle
//! workers wait on a condition variable, each job is pushed under the
//! queue's lock and signals a sleeper if there is one. The pool used to
//! share std's single-consumer `Receiver` behind a `Mutex`, held by the
//! worker waiting in `recv`: every job then woke two threads (the worker
//! that took it, then the next one, to take the lock and wait in turn),
//! and the second wake-up ran beside the session's next command
//! (docs/benchmarks.md, "Twenty-fourth pass").

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

/// Worker threads each shard starts.
pub(crate) const WORKERS_PER_SHARD: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// The jobs not yet taken, and who waits for them.
struct Queue {
    state: Mutex<State>,
    /// Signalled once per job pushed while a worker sleeps, and for all
    /// when the pool closes.
    ready: Condvar,
}

struct State {
    jobs: VecDeque<Job>,
    /// Workers asleep on `ready`: a job signals only when one is.
    sleeping: usize,
    /// False once the pool is dropped: workers finish the queue and exit.
    open: bool,
}

impl Queue {
    /// The lock; no job runs while it is held, so a panicking job cannot
    /// poison it, and a poisoned one is used as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job, waiting for one; `None` once the pool is closed and
    /// the queue is empty.
    fn take(&self) -> Option<Job> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                return Some(job);
            }
            if !st.open {
                return None;
            }
            st.sleeping += 1;
            st = self.ready.wait(st).unwrap_or_else(PoisonError::into_inner);
            st.sleeping -= 1;
        }
    }
}

/// A fixed set of worker threads taking jobs from one queue. Dropping the
/// pool lets its threads finish the queued jobs and exit.
pub(crate) struct WorkerPool {
    queue: Arc<Queue>,
}

impl WorkerPool {
    /// Starts `threads` workers named `NAME-I`.
    pub(crate) fn new(name: &str, threads: usize) -> std::io::Result<WorkerPool> {
        let queue = Arc::new(Queue {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                sleeping: 0,
                open: true,
            }),
            ready: Condvar::new(),
        });
        let pool = WorkerPool {
            queue: queue.clone(),
        };
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    while let Some(job) = queue.take() {
                        // A job that panics loses its result (the caller
                        // gets None), not the worker.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(pool)
    }

    /// Queues `job` and wakes a sleeping worker for it, if one sleeps (a
    /// busy one takes it when it finishes). False once the pool is closed.
    fn push(&self, job: Job) -> bool {
        let mut st = self.queue.lock();
        if !st.open {
            return false;
        }
        st.jobs.push_back(job);
        let wake = st.sleeping > 0;
        drop(st);
        if wake {
            self.queue.ready.notify_one();
        }
        true
    }

    /// Runs `f` on a worker and resolves to its result, or to `None` if the
    /// pool is gone or `f` panicked.
    pub(crate) fn run<T, F>(&self, f: F) -> impl Future<Output = Option<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.push(Box::new(move || {
            let _ = tx.send(f());
        }));
        async move {
            if !sent {
                return None;
            }
            rx.await.ok()
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.queue.lock().open = false;
        self.queue.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_workers_and_come_back() {
        let pool = WorkerPool::new("test-pool", 2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let names: Vec<String> = rt.block_on(async {
            let mut out = Vec::new();
            for _ in 0..8 {
                let name = pool
                    .run(|| thread::current().name().unwrap_or("").to_string())
                    .await;
                out.push(name.unwrap());
            }
            out
        });
        assert!(
            names.iter().all(|n| n.starts_with("test-pool-")),
            "{names:?}"
        );
        // A panicking job answers None, and the pool keeps working.
        assert_eq!(rt.block_on(pool.run(|| -> u32 { panic!("boom") })), None);
        assert_eq!(rt.block_on(pool.run(|| 7)), Some(7));
    }

    /// Every worker takes jobs: two jobs that can only finish together
    /// (a barrier of two) finish.
    #[test]
    fn the_workers_run_jobs_side_by_side() {
        let pool = WorkerPool::new("test-side", 2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let (a, b) = (barrier.clone(), barrier);
        let both = rt.block_on(async {
            tokio::join!(
                pool.run(move || a.wait().is_leader()),
                pool.run(move || b.wait().is_leader())
            )
        });
        // Exactly one of the two is the barrier's leader.
        assert!(matches!(
            both,
            (Some(true), Some(false)) | (Some(false), Some(true))
        ));
    }

    /// Dropping the pool runs what is queued, then the workers exit.
    #[test]
    fn a_dropped_pool_finishes_its_queue() {
        let pool = WorkerPool::new("test-drop", 1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let gate = Arc::new(std::sync::Barrier::new(2));
        // The one worker is held in the first job while ten more queue.
        let held = gate.clone();
        let _ = pool.push(Box::new(move || {
            held.wait();
        }));
        for i in 0..10 {
            let tx = tx.clone();
            assert!(pool.push(Box::new(move || tx.send(i).unwrap())));
        }
        drop(tx);
        drop(pool);
        gate.wait();
        // The queued jobs all ran, and the worker let go of its sender.
        assert_eq!(rx.iter().collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
    }

    /// The voluntary context switches of this process's threads named
    /// `name-*` (`/proc/self/task/*/status`): one for each time a worker
    /// went to sleep.
    fn sleeps(name: &str) -> u64 {
        let mut n = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with(&format!("{name}-")) {
                continue;
            }
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            n += status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        n
    }

    /// A job that keeps its worker busy for 50 µs without sleeping.
    fn busy() {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_micros(50) {
            std::hint::spin_loop();
        }
    }

    /// A job wakes one worker, not two: after each of 200 jobs run one at
    /// a time, the worker that ran it goes back to sleep once, and the
    /// other sleeps on. (The pool that shared a `Mutex<Receiver>` woke
    /// the second worker each time to take the lock: 395–401 sleeps in
    /// three runs here.)
    #[test]
    fn one_job_wakes_one_worker() {
        let pool = WorkerPool::new("test-wake", 2).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Both workers started and asleep.
        rt.block_on(pool.run(|| ()));
        while pool.queue.lock().sleeping < 2 {
            thread::yield_now();
        }
        let before = sleeps("test-wake");
        for _ in 0..200 {
            rt.block_on(pool.run(busy));
        }
        let slept = sleeps("test-wake") - before;
        assert!(slept <= 300, "{slept} sleeps for 200 jobs");
    }
}
