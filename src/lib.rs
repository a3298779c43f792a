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
//! - [`tls`]: FTPS (RFC 4217): certificates, session-reuse binding, the
//!   rustls handshake on io_uring, the in-place record layer;
//! - [`engine`]: shard threads, the zero-copy splice path, and the one
//!   module (`engine::sys`) allowed to use `unsafe`;
//! - [`limits`]: `--max-sessions`, `--max-per-ip` and `--max-rate`, shared
//!   by the shards without a global lock; [`shutdown`]: the graceful-stop
//!   phases every shard and session watches;
//! - [`config`] and [`config_file`]: flags (and `--config` TOML) to a
//!   validated configuration; [`live`]: what SIGHUP changes in place;
//! - [`access`]: `--allow`/`--deny`; [`privileges`]: `--user`, the drop
//!   from root; [`sandbox`]: the Landlock confinement;
//! - [`loadgen`]: the load generator behind `ringftp loadtest`.
#![deny(unsafe_code)]
// The module docs link internal (pub(crate)) items; the documentation is
// built with --document-private-items (.ci/run), where those links resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub(crate) mod access;
pub mod auth;
pub mod cli;
pub(crate) mod config;
pub(crate) mod config_file;
pub(crate) mod data;
pub mod engine;
pub(crate) mod limits;
pub(crate) mod live;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub(crate) mod privileges;
pub mod proto;
pub(crate) mod proxy_protocol;
pub(crate) mod sandbox;
pub mod server;
pub mod session;
pub(crate) mod shard;
pub(crate) mod shutdown;
pub(crate) mod tls;
pub(crate) mod units;
pub mod vfs;
pub(crate) mod xferlog;
