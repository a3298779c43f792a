//! Shards: one OS thread per core, pinned with sched_setaffinity, each
//! running its own tokio-uring runtime (its own io_uring). Nothing mutable
//! is shared between shards on the hot path; whatever a shard needs (its
//! listeners, its slice of the passive port range, its pipe pool) is handed
//! to it when it starts or lives in its thread-locals.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::mpsc;
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

thread_local! {
    /// Sessions this shard thread serves now (see [`Tenant`]).
    static TENANTS: Cell<usize> = const { Cell::new(0) };
}

/// A session counted on the shard thread that made it, for as long as it
/// lives: what [`alone`] asks. Made and dropped on that thread (a
/// session never leaves its shard).
pub(crate) struct Tenant(std::marker::PhantomData<*const ()>);

impl Tenant {
    /// Counts one more session on this thread until the `Tenant` drops.
    pub(crate) fn new() -> Tenant {
        TENANTS.set(TENANTS.get() + 1);
        Tenant(std::marker::PhantomData)
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        TENANTS.set(TENANTS.get().saturating_sub(1));
    }
}

/// True when this shard thread serves at most one session: a call that
/// blocks the thread then delays no other client's command or transfer,
/// only the caller's own (and a connection being accepted). The
/// filesystem calls io_uring would hand to an io-wq worker in any case
/// run here then, without the two thread wake-ups of that hand-off
/// (`vfs::dirops`).
pub(crate) fn alone() -> bool {
    TENANTS.get() <= 1
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
/// `all_ready` is called on this thread once every shard has its runtime,
/// before any runs `make`: its error ends the start as a runtime's does.
///
/// Errors: a thread that cannot be spawned, a shard that cannot make
/// its runtime (io_uring_setup: no fd left, io_uring disabled), or
/// `all_ready`'s; then no shard runs `make`.
pub(crate) fn run_shards<F, Fut, T>(
    name: &str,
    cores: usize,
    pin: bool,
    all_ready: impl FnOnce() -> io::Result<()>,
    make: F,
) -> io::Result<Vec<T>>
where
    F: Fn(ShardInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let cpus = available_cpus();
    let make = std::sync::Arc::new(make);
    // No shard runs until every shard has its runtime: one that cannot
    // make its ring (no fd left, io_uring disabled) ends the start with an
    // error, not with the others serving a part of the clients.
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
    let mut go = Vec::with_capacity(cores);
    let mut handles = Vec::with_capacity(cores);
    for id in 0..cores {
        let cpu = cpus[id % cpus.len()];
        let info = ShardInfo {
            id,
            cpu,
            count: cores,
        };
        let make = make.clone();
        let ready = ready_tx.clone();
        let (go_tx, go_rx) = mpsc::channel::<bool>();
        go.push(go_tx);
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
                let rt = tokio_uring::Runtime::new(tokio_uring::builder().entries(RING_ENTRIES));
                let _ = ready.send(rt.as_ref().map(|_| ()).map_err(|e| {
                    let hint = match e.raw_os_error() {
                        Some(libc::EMFILE | libc::ENFILE) => {
                            " (raise the fd limit: ulimit -n, LimitNOFILE=)"
                        }
                        _ => "",
                    };
                    io::Error::new(
                        e.kind(),
                        format!("shard {id} cannot make its io_uring runtime: {e}{hint}"),
                    )
                }));
                // false, or no word at all: the start failed elsewhere.
                match rt {
                    Ok(rt) if go_rx.recv().unwrap_or(false) => Some(rt.block_on(make(info))),
                    _ => None,
                }
            });
        match handle {
            Ok(h) => handles.push(h),
            // The threads already spawned see their go channel closed,
            // and end.
            Err(e) => return Err(e),
        }
    }
    drop(ready_tx);
    let mut failed = None;
    for _ in 0..cores {
        if let Ok(Err(e)) = ready_rx.recv() {
            failed.get_or_insert(e);
        }
    }
    if failed.is_none() {
        failed = all_ready().err();
    }
    for g in go {
        let _ = g.send(failed.is_none());
    }
    let mut out = Vec::with_capacity(cores);
    for h in handles {
        match h.join() {
            Ok(Some(v)) => out.push(v),
            Ok(None) => {}
            Err(_) => return Err(io::Error::other("a shard thread panicked")),
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
