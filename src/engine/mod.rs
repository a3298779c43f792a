//! The thread-per-core engine: shard threads pinned to CPUs, each running
//! its own tokio-uring runtime (`shard`), the zero-copy transfer paths
//! (`splice`), and the one module allowed to use `unsafe` (`sys`): the
//! io_uring ops tokio-uring lacks and the few syscalls rustix lacks.

pub(crate) mod pool;
pub(crate) mod shard;
pub(crate) mod splice;
pub mod sys;
