//! The load generator behind `ringftp loadtest`: measures any FTP server
//! (ringftp or a peer) with many virtual clients, and writes the test tree
//! the bundled scenarios need (`ringftp loadtest prepare`).
//!
//! It runs on the same thread-per-core engine as the server: `--cores`
//! pinned shards, each a tokio-uring runtime driving its share of the
//! clients as local tasks, so the generator can saturate a server without
//! becoming the bottleneck (its own CPU use is in every report). It speaks
//! plain RFC 959 (plus EPSV/EPRT from RFC 2428 and MLSD from RFC 3659 where a
//! scenario asks for them), so it works against any server.
//!
//! Module map:
//! - [`scenario`]: the bundled TOML scenarios and their scales; [`plan`]:
//!   a scenario and the flags that override it, resolved into one
//!   validated [`plan::Plan`] (op mix, bounds, thresholds);
//! - [`reply`]: the reply reader (pure); [`client`]: the control connection;
//!   [`data`]: data channels (PASV/EPSV/PORT/EPRT) and the fast reader;
//!   [`transfer`]: one transfer as a timed command flow; [`failure`]: error
//!   kinds;
//! - [`targets`]: which remote paths the requests use (`--files`) and the
//!   checks made before a run;
//! - [`mod@run`]: a run from start to report, round by round; [`vclient`]: one
//!   virtual client and its requests; [`schedule`]: the open-loop
//!   timetable, the ramp and the growth of the client pool; [`shared`]:
//!   what the shards share (the end of the run, the login-storm barrier);
//!   [`progress`]: the progress bar;
//! - [`stats`]: per-phase HdrHistograms, failed and abandoned requests,
//!   missed starts, size classes; [`series`]: the same per second, and the
//!   `.hlog` interval log; [`procstat`]: the server's CPU and memory;
//!   [`report`]: table, JSON, .hgrm; [`checks`]: thresholds;
//! - [`plot`]: `loadtest plot` (SVG/PNG charts); [`compare`]: `loadtest
//!   compare` (two runs side by side);
//! - [`prepare`]: the deterministic tree and its content function;
//!   [`units`]: durations and sizes.

pub(crate) mod checks;
pub(crate) mod client;
pub(crate) mod compare;
pub(crate) mod data;
pub(crate) mod failure;
pub(crate) mod plan;
pub(crate) mod plot;
pub mod prepare;
pub mod procstat;
pub(crate) mod progress;
pub(crate) mod reply;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod scenario;
pub(crate) mod schedule;
pub(crate) mod series;
pub(crate) mod shared;
pub(crate) mod stats;
pub(crate) mod table;
pub(crate) mod targets;
pub(crate) mod tls;
pub(crate) mod transfer;
pub(crate) mod vclient;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::units;

pub use run::run;

/// `ringftp loadtest [FLAGS]` runs a load test; `ringftp loadtest prepare`
/// writes a test tree.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadtestArgs {
    /// `prepare`, `plot` or `compare`; `None` runs a load test.
    #[command(subcommand)]
    pub command: Option<LoadtestCommand>,

    /// The load test's flags (when no subcommand is given).
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands of `ringftp loadtest`.
#[derive(Subcommand, Debug, Clone)]
pub enum LoadtestCommand {
    /// Write a deterministic mirror-like tree to serve (content checkable
    /// with `--verify`).
    Prepare(prepare::PrepareArgs),
    /// Chart one or more runs (their --json reports): latency over time
    /// (p50, p99 and max per second) and the percentile distribution.
    Plot(plot::PlotArgs),
    /// Compare two runs (their --json reports): every figure, the ratio,
    /// and which differences are beyond run-to-run noise.
    Compare(compare::CompareArgs),
}

/// `--rcvbuf`: a size from 4 KiB to 1 GiB. Linux doubles what it is given
/// into an int and takes nothing below 2,304 bytes, so values outside
/// that range would silently become another buffer.
fn parse_rcvbuf(text: &str) -> Result<u64, String> {
    let n = units::parse_size(text)?;
    if !(4 << 10..=1 << 30).contains(&n) {
        return Err(format!("{text:?} is outside 4KiB to 1GiB"));
    }
    Ok(n)
}

/// Flags of a load test run. Every flag left out takes the scenario's
/// value, then the built-in default.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Server to test.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2121")]
    pub target: String,

    /// Login name.
    #[arg(long, default_value = "anonymous")]
    pub user: String,

    /// Password.
    #[arg(long, default_value = "loadtest@ringftp")]
    pub password: String,

    /// Data-channel mode [default: the scenario's, else epsv]
    #[arg(long, value_enum)]
    pub mode: Option<scenario::Mode>,

    /// A bundled scenario (login-storm, login-storm-big, mirror, bigfile,
    /// upload, listing, idle, single-ops, small-uploads) or a scenario TOML
    /// file.
    #[arg(long, value_name = "NAME|FILE.toml", default_value = "mirror")]
    pub scenario: String,

    /// Replace the scenario's op mix: ops used in turn (noop,size,pasv-retr)
    /// or weighted (retr=8,list=1). Ops: login, retr, stor, list, nlst,
    /// mlsd, noop, size, mdtm; a data op may name its own mode (pasv-retr,
    /// epsv-list, port-stor, eprt-mlsd).
    #[arg(long, value_name = "LIST", value_parser = scenario::Ops::parse_flag)]
    pub ops: Option<scenario::Ops>,

    /// Run the scenario at one of its named scales (its `[scale.NAME]`
    /// table; the bundled ones have quick and full).
    #[arg(long, value_name = "NAME")]
    pub scale: Option<String>,

    /// Virtual clients (concurrent sessions) [default: the scenario's]
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,

    /// Run for this long (e.g. 30s, 1m30s, 500ms); requests still in flight
    /// at the end are abandoned (recorded at the time they had waited).
    /// With --requests, whichever comes first ends the run.
    #[arg(long, value_name = "D", value_parser = units::parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after N requests in total (split evenly between clients).
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,

    /// Open loop: start R requests a second in total, on a fixed schedule,
    /// and measure each request's latency from its scheduled start
    /// (coordinated-omission correction). Without it, each client sends its
    /// next request when the last one ends (closed loop).
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Open loop: when every client is busy at a scheduled start, add
    /// virtual clients, up to N in all [default: --clients, no growth]
    #[arg(long = "max-clients", value_name = "N")]
    pub max_clients: Option<usize>,

    /// Ramp up over this long (e.g. 10s): open loop, the rate grows
    /// linearly from 0 to --rate; closed loop, the clients start spread
    /// over it.
    #[arg(long, value_name = "D", value_parser = units::parse_duration)]
    pub ramp: Option<Duration>,

    /// Repeat the run N times back to back (each round a fresh start);
    /// the report adds every round's figures so `compare` can tell noise
    /// from a difference.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub rounds: u32,

    /// Remote paths to use: a local file with one remote path a line, or a
    /// remote directory (listed recursively for RETR, listed itself for
    /// LIST/NLST/MLSD).
    #[arg(long, value_name = "PATH")]
    pub files: Option<String>,

    /// Check every downloaded byte (and the byte count) against the content
    /// `prepare` writes; the server's root must be the prepared directory.
    #[arg(long)]
    pub verify: bool,

    /// Bytes per STOR for the upload scenario (e.g. 64KiB, 1.5MiB).
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    pub size: Option<u64>,

    /// Remote directory STOR writes into, as the account sees it (its home
    /// is `/`) [default: the scenario's, else /upload]
    #[arg(long = "upload-dir", value_name = "PATH")]
    pub upload_dir: Option<String>,

    /// Sample CPU time and memory of this process and its children (the
    /// server under test) during the run.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Write the results as JSON (schema in docs/loadgen.md).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write one HdrHistogram percentile-distribution file (.hgrm, in
    /// milliseconds) per phase into DIR.
    #[arg(long, value_name = "DIR")]
    pub hgrm: Option<PathBuf>,

    /// Write an HdrHistogram interval log: one histogram per second per
    /// phase, tagged with the phase name, in microseconds (the .hlog format
    /// HdrHistogram's log tools read).
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,

    /// Generator shards (threads, one io_uring each)
    /// [default: CPUs available to the process, at most one per client]
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// Pin each generator shard to its own CPU, as the server pins its
    /// shards. Off by default: on a machine shared with the server under
    /// test, a pinned generator thread can share a core with the one server
    /// shard doing the work while another core idles.
    #[arg(long)]
    pub pin: bool,

    /// Fix each data connection's receive buffer (SO_RCVBUF, e.g. 4MiB),
    /// which stops Linux tuning it (tcp(7)). Default: the kernel's tuning,
    /// as real clients get. On a loopback shared with the server, how far
    /// that tuning grows a download's window depends on when the reader
    /// first reads (docs/benchmarks.md, ninth pass); a fixed buffer takes
    /// that out of the comparison of servers.
    #[arg(long, value_name = "SIZE", value_parser = parse_rcvbuf)]
    pub rcvbuf: Option<u64>,

    /// Limit on every wait: connect, each reply, the data connection, each
    /// data read [default: the scenario's, else 10s]
    #[arg(long, value_name = "D", value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,

    /// Errors tolerated before the exit code is 1.
    #[arg(long = "max-errors", value_name = "N", default_value_t = 0)]
    pub max_errors: u64,

    /// Threshold: fail (exit 1) when the p99 of whole requests is above D.
    #[arg(long = "max-p99", value_name = "D", value_parser = units::parse_duration)]
    pub max_p99: Option<Duration>,

    /// Threshold: fail when errors / (ok + errors) is above R (0.01 or 1%).
    #[arg(long = "max-error-rate", value_name = "R", value_parser = checks::parse_fraction)]
    pub max_error_rate: Option<f64>,

    /// Threshold: fail when fewer than R requests a second succeeded.
    #[arg(long = "min-rate", value_name = "R")]
    pub min_rate: Option<f64>,

    /// Print the resolved plan (as the report's `config` JSON) and exit
    /// without connecting.
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// FTPS: explicit (AUTH TLS after the greeting) or implicit (TLS from
    /// the first byte); data connections use PROT P and resume the control
    /// connection's TLS session.
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<tls::TlsMode>,

    /// FTPS: the CA certificate (PEM) the server's certificate is checked
    /// against.
    #[arg(long = "tls-ca", value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,

    /// FTPS: accept any server certificate (self-signed test servers).
    /// Needs --tls (without it the run would be plain FTP, silently).
    #[arg(long = "tls-insecure", requires = "tls")]
    pub tls_insecure: bool,

    /// FTPS: the TLS version offered. 1.2 by default: rustls' client uses
    /// each TLS 1.3 ticket once, and servers send none on upload data
    /// connections, so TLS 1.3 sessions that upload run out of tickets.
    #[arg(
        long = "tls-version",
        value_enum,
        requires = "tls",
        value_name = "V",
        default_value = "1.2"
    )]
    pub tls_version: tls::TlsVersion,

    /// FTPS: the name certificates are checked against [default: the
    /// host of --target]
    #[arg(long = "tls-server-name", value_name = "NAME", requires = "tls")]
    pub tls_server_name: Option<String>,
}
