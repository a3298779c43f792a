//! Command-line flags (clap). Parsing only: every check beyond syntax, and
//! every default that depends on the machine, happens in [`crate::config`]
//! so the rules are testable without a process.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ringftp",
    version,
    about = "An io_uring, thread-per-core FTP server that moves file bytes with zero-copy splice, and an FTP load generator",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve a directory over FTP (anonymous, read-only).
    Serve(ServeArgs),
    /// Measure an FTP server (ringftp or any other) under load, or prepare a test tree.
    Loadtest(crate::loadgen::LoadtestArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to accept control connections on; repeat for several
    /// (e.g. `--listen 0.0.0.0:2121 --listen [::]:2121`). Port 0 picks a free
    /// port. One `listening on ADDR:PORT` line per listener goes to stdout.
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:2121"
    )]
    pub listen: Vec<String>,

    /// Directory served as `/` to clients.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,

    /// Shards (pinned threads, one io_uring each) [default: CPUs available to the process]
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,

    /// Passive-mode data ports, split evenly between shards. Open this range
    /// in the firewall.
    #[arg(
        long = "pasv-ports",
        value_name = "LO-HI",
        default_value = "50000-50999"
    )]
    pub pasv_ports: String,

    /// Address announced in 227 (PASV) replies, e.g. the public address of a
    /// server behind NAT; a hostname is resolved at start-up
    /// [default: the local address of each control connection]
    #[arg(long = "pasv-address", value_name = "ADDR_OR_HOSTNAME")]
    pub pasv_address: Option<String>,

    /// Open active-mode (PORT/EPRT) data connections from port L-1 of the
    /// control listener, as RFC 959 describes (port 20 for a server on 21).
    /// Off by default.
    /// Needs CAP_NET_BIND_SERVICE below 1024; if the bind fails the log says
    /// so and an ephemeral port is used.
    #[arg(long = "active-port-20")]
    pub active_port_20: bool,

    /// Allow data connections to or from an address other than the control
    /// connection's peer (FXP). Off by default: RFC 2577 bounce and
    /// data-theft protection.
    #[arg(long = "allow-foreign-data")]
    pub allow_foreign_data: bool,

    /// Seconds to wait for a data connection, or for progress on one,
    /// before answering 425/426.
    #[arg(long = "data-timeout", value_name = "SECS", default_value_t = 30)]
    pub data_timeout: u64,

    /// Seconds a control connection may stay idle before 421 and close.
    #[arg(long = "idle-timeout", value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u64,

    /// Append one line per transfer to FILE in the wu-ftpd xferlog format.
    #[arg(long, value_name = "FILE")]
    pub xferlog: Option<PathBuf>,

    /// Log level (error, warn, info, debug, trace) or a full tracing filter;
    /// RUST_LOG wins when set.
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "info")]
    pub log_level: String,
}
