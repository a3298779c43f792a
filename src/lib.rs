//! ringftp: an io_uring, thread-per-core FTP server for Linux, and an FTP
//! load generator built on the same engine.
//!
//! The crate is split so a reader can guess from the tree where things are:
//! - [`proto`]: the FTP wire format with no I/O (command parser, replies,
//!   PORT/EPRT/PASV/EPSV address codecs, the control-line reader);
//! - [`session`]: the per-connection state machine (pure) and the driver
//!   that runs it over a real control connection;
//! - [`vfs`]: virtual paths under the root, race-free resolution with
//!   openat2, and LIST/MLSD formatting;
//! - [`data`]: data channels (passive port slices, active connects, the
//!   RFC 2577 checks) and the transfers over them;
//! - [`engine`]: shard threads, the zero-copy splice path, and the one
//!   module (`engine::sys`) allowed to use `unsafe`;
//! - [`limits`]: `--max-sessions`, `--max-per-ip` and `--max-rate`, shared
//!   by the shards without a global lock; [`shutdown`]: the graceful-stop
//!   phases every shard and session watches;
//! - [`loadgen`]: the load generator behind `ringftp loadtest`.
#![deny(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod data;
pub mod engine;
pub mod limits;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod session;
pub mod shard;
pub mod shutdown;
pub mod units;
pub mod vfs;
pub mod xferlog;
