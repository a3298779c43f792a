//! Shards: one OS thread per core, pinned with sched_setaffinity, each
//! running its own tokio-uring runtime (its own io_uring). Nothing mutable
//! is shared between shards on the hot path; whatever a shard needs (its
//! listeners, its slice of the passive port range, its pipe pool) is handed
//! to it when it starts or lives in its thread-locals.

use std::future::Future;
use std::io;
use std::thread;

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// Submission queue entries per shard ring. Completions are bounded by the
/// kernel at twice this; a shard with more ops in flight than fit simply
/// submits in several batches.
const RING_ENTRIES: u32 = 1024;

/// Who a shard is, as its future sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShardInfo {
    /// 0-based shard index.
    pub id: usize,
    /// The CPU the shard thread is pinned to.
    pub cpu: usize,
    /// How many shards run in total.
    pub count: usize,
}

/// CPUs available to this process (its affinity mask); at least one.
pub(crate) fn available_cpus() -> Vec<usize> {
    let allowed: Vec<usize> = match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    };
    if !allowed.is_empty() {
        return allowed;
    }
    (0..thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1))
        .collect()
}

/// Runs `make(shard)` on `cores` shard threads, each driving its own
/// tokio-uring runtime, and waits for all of them to return. With `pin`, each
/// thread is pinned to its own CPU (the first `cores` CPUs of the process's
/// affinity mask); without it the kernel places the threads (the load
/// generator's default, so it never sits on the core of a server shard it
/// measures while another core idles).
///
/// `make` is called on the shard's own thread, so the future it returns
/// need not be `Send` and may hold `Rc`s and thread-locals freely.
pub(crate) fn run_shards<F, Fut, T>(
    name: &str,
    cores: usize,
    pin: bool,
    make: F,
) -> io::Result<Vec<T>>
where
    F: Fn(ShardInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let cpus = available_cpus();
    let make = std::sync::Arc::new(make);
    let mut handles = Vec::with_capacity(cores);
    for id in 0..cores {
        let cpu = cpus[id % cpus.len()];
        let info = ShardInfo {
            id,
            cpu,
            count: cores,
        };
        let make = make.clone();
        let handle = thread::Builder::new()
            .name(format!("{name}-{id}"))
            .spawn(move || {
                if pin {
                    let mut only = CpuSet::new();
                    only.set(cpu);
                    if let Err(e) = sched_setaffinity(None, &only) {
                        tracing::warn!(shard = id, cpu, "could not pin shard thread: {e}");
                    }
                }
                tokio_uring::builder()
                    .entries(RING_ENTRIES)
                    .start(async move { make(info).await })
            })?;
        handles.push(handle);
    }
    let mut out = Vec::with_capacity(cores);
    for h in handles {
        match h.join() {
            Ok(v) => out.push(v),
            Err(_) => return Err(io::Error::other("a shard thread panicked")),
        }
    }
    Ok(out)
}
