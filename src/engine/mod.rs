//! The thread-per-core engine: shard threads pinned to CPUs, each running
//! its own tokio-uring runtime (`shard`), and the one module allowed to use
//! `unsafe` (`sys`): custom io_uring SQEs, pipes, affinity, limits.

pub mod shard;
pub mod splice;
pub mod sys;
