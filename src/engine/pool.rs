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

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

/// Worker threads each shard starts.
pub(crate) const WORKERS_PER_SHARD: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads taking jobs from one queue. Dropping the
/// pool lets its threads finish the queued jobs and exit.
pub(crate) struct WorkerPool {
    jobs: mpsc::Sender<Job>,
}

impl WorkerPool {
    /// Starts `threads` workers named `NAME-I`.
    pub(crate) fn new(name: &str, threads: usize) -> std::io::Result<WorkerPool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A job that panics loses its result (the caller
                        // gets None), not the worker.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                })?;
        }
        Ok(WorkerPool { jobs: tx })
    }

    /// Runs `f` on a worker and resolves to its result, or to `None` if the
    /// pool is gone or `f` panicked.
    pub(crate) fn run<T, F>(&self, f: F) -> impl Future<Output = Option<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .is_ok();
        async move {
            if !sent {
                return None;
            }
            rx.await.ok()
        }
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
}
