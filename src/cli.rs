//! Command-line flags (clap). Parsing only: every check beyond syntax, and
//! every default that depends on the machine, happens in [`crate::config`]
//! so the rules are testable without a process.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The command line: `ringftp <COMMAND> [FLAGS]`.
#[derive(Parser, Debug)]
#[command(
    name = "ringftp",
    version,
    about = "An io_uring, thread-per-core FTP server that moves file bytes with zero-copy splice, and an FTP load generator",
    long_about = None,
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands: `serve`, `passwd` and `loadtest`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve a directory over FTP (anonymous read-only, plus accounts from --users).
    Serve(ServeArgs),
    /// Read a password (from the terminal without echo, or from stdin when
    /// piped) and print its argon2id hash for the users file.
    Passwd,
    /// Measure an FTP server (ringftp or any other) under load, or prepare a test tree.
    Loadtest(crate::loadgen::LoadtestArgs),
    /// Show who is connected to a running server and what they are doing
    /// (read from its --metrics-listen address).
    Who(crate::metrics::who::WhoArgs),
}

/// The flags of `ringftp serve` (also the keys of `--config`).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Read flags from a TOML file: every `serve` flag under its own name
    /// (`pasv-ports = "50000-50999"`, `listen = ["0.0.0.0:21"]`,
    /// `atomic-uploads = true`). Flags on the command line win over the
    /// file. SIGHUP re-reads it (see docs/operations.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the flags (and --config) as start-up would (the
    /// certificate loaded, the xferlog's path, the listen addresses and
    /// the service user's access to --root checked, nothing bound or
    /// created), print the effective
    /// configuration as TOML, and exit.
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Address to accept control connections on; repeat for several
    /// (e.g. `--listen 0.0.0.0:2121 --listen [::]:2121`). Port 0 picks a free
    /// port. One `listening on ADDR:PORT` line per listener goes to stdout.
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "0.0.0.0:2121"
    )]
    pub listen: Vec<String>,

    /// Directory served as `/` to clients [default: the current
    /// directory, unless that is `/`: serving the whole filesystem needs an
    /// explicit `--root /`].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

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
    /// server behind NAT; a hostname is resolved at start-up and again on
    /// SIGHUP (a failed lookup keeps the old address) [default: the local address of each control connection]
    #[arg(long = "pasv-address", value_name = "ADDR_OR_HOSTNAME")]
    pub pasv_address: Option<String>,

    /// Split horizon: clients whose address is in CIDR are told ADDR in 227
    /// replies instead of --pasv-address (e.g. 192.0.2.0/24=192.0.2.10
    /// gives LAN clients the server's private address). Repeatable; the
    /// most specific network wins. IPv4 networks only (IPv6 clients use
    /// EPSV). ADDR may be a hostname, resolved at start-up and on SIGHUP.
    #[arg(long = "pasv-address-map", value_name = "CIDR=ADDR")]
    pub pasv_address_map: Vec<String>,

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

    /// How long to wait for a data connection, or for progress on one,
    /// before answering 425/426 (e.g. 30s, 1m30s; a bare number is seconds).
    #[arg(long = "data-timeout", value_name = "DURATION", default_value = "30s", value_parser = crate::units::parse_duration)]
    pub data_timeout: Duration,

    /// How long a control connection may stay idle before 421 and close
    /// (e.g. 5m, 300s; a bare number is seconds).
    #[arg(long = "idle-timeout", value_name = "DURATION", default_value = "5m", value_parser = crate::units::parse_duration)]
    pub idle_timeout: Duration,

    /// How long a connection may take to log in (from connect, or from
    /// REIN) before 421 and close: scanners and slow-drip clients that
    /// never authenticate are dropped sooner than --idle-timeout (e.g. 1m,
    /// 90s; a bare number is seconds).
    #[arg(long = "login-timeout", value_name = "DURATION", default_value = "1m", value_parser = crate::units::parse_duration)]
    pub login_timeout: Duration,

    /// Sessions open at once on the whole server (all shards together); the
    /// next client gets 421 and is closed. 0 = no limit. The default leaves
    /// room for the load generator's 10,000-session idle scenario.
    #[arg(long = "max-sessions", value_name = "N", default_value_t = 20_000)]
    pub max_sessions: usize,

    /// Sessions open at once from one client address (all shards
    /// together); the next gets 421. 0 = no limit (clients behind one NAT
    /// share an address, and so does a load generator).
    #[arg(long = "max-per-ip", value_name = "N", default_value_t = 0)]
    pub max_per_ip: usize,

    /// Download cap for the whole server in bytes per second, shared by all
    /// transfers on all shards (sizes as everywhere: 10MiB, 1.5MiB, 500KB). Downloads stay
    /// zero-copy: the splices are paced. [default: no cap]
    #[arg(long = "max-rate", value_name = "BYTES/S")]
    pub max_rate: Option<String>,

    /// Download cap per session in bytes per second (an account's own
    /// max_download_rate applies too; the lower wins). [default: no cap]
    #[arg(long = "max-rate-per-session", value_name = "BYTES/S")]
    pub max_rate_per_session: Option<String>,

    /// How long running transfers may take to finish after SIGTERM/SIGINT
    /// before they are cut; idle sessions get 421 at once, and a second
    /// signal exits at once (e.g. 30s, 2m; a bare number is seconds).
    #[arg(long = "shutdown-grace", value_name = "DURATION", default_value = "30s", value_parser = crate::units::parse_duration)]
    pub shutdown_grace: Duration,

    /// Accounts file (TOML: name, argon2id password hash from `ringftp
    /// passwd`, home under --root, permissions). Re-read on SIGHUP; a bad
    /// new file keeps the old one.
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// Refuse anonymous logins (by default anonymous is allowed, read-only).
    #[arg(long = "no-anonymous")]
    pub no_anonymous: bool,

    /// Write uploads to a hidden temporary file in the same directory and
    /// rename it over the target only when the transfer completes: readers
    /// never see a half-written file. Off by default (uploads that replace
    /// an existing file always work this way, so a failed one loses nothing).
    #[arg(long = "atomic-uploads")]
    pub atomic_uploads: bool,

    /// Keep the partial file of a broken or aborted upload so the client can
    /// resume it with REST (by default it is deleted).
    #[arg(long = "keep-partial")]
    pub keep_partial: bool,

    /// Listings (LIST, NLST, MLSD) show dot-files even without `-a`
    /// (vsftpd's force_dot_files, pure-ftpd's -D). By default a dot-file
    /// shows only when the client asks with `-a`, in every listing command.
    #[arg(long = "show-dotfiles")]
    pub show_dotfiles: bool,

    /// Charset of file names on disk that are not UTF-8 (a WHATWG label of a
    /// single-byte charset: latin1, windows-1252, iso-8859-15, koi8-r...).
    /// Such names are shown to clients converted to UTF-8, and a name a
    /// client was shown finds its file (see docs/architecture.md).
    #[arg(
        long = "legacy-charset",
        value_name = "CHARSET",
        default_value = "windows-1252"
    )]
    pub legacy_charset: String,

    /// Most entries one listing sends (LIST, NLST, MLSD, STAT; all levels of
    /// `LIST -R` together). A longer listing is cut there and its 226 says
    /// so.
    #[arg(long = "list-max-entries", value_name = "N", default_value_t = 200_000)]
    pub list_max_entries: usize,

    /// How many levels below the listed directory `LIST -R` descends
    /// (0: no recursion). Deeper directories are not listed and the 226
    /// says so.
    #[arg(long = "list-max-depth", value_name = "N", default_value_t = 5)]
    pub list_max_depth: usize,

    /// Failed logins per session before 421 and close.
    #[arg(long = "max-login-attempts", value_name = "N", default_value_t = 3)]
    pub max_login_attempts: u32,

    /// Ban a client address for WINDOW after N failed logins within WINDOW
    /// (e.g. 10/10m, 5/1m30s), or `off`.
    #[arg(long = "login-ban", value_name = "N/WINDOW", default_value = "10/10m")]
    pub login_ban: String,

    /// Append one line per transfer to FILE in the wu-ftpd xferlog format.
    /// It must be writable at start-up; SIGHUP reopens it (after logrotate
    /// moved it away), as the user the server runs as.
    #[arg(long, value_name = "FILE")]
    pub xferlog: Option<PathBuf>,

    /// Serve as USER (and GROUP): listeners, the root, the users file and
    /// the xferlog are opened as root, then the process drops to USER for
    /// good (supplementary groups, gid, uid; no new privileges). Started as
    /// root without --user, ringftp drops to the `ftp` account, else
    /// `nobody`; `--user root` keeps root (and says so). USER and GROUP
    /// are names or numbers; without GROUP, USER's own groups.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,

    /// Confine the process with Landlock after start-up: read the root
    /// (write it when --users is given), append to the xferlog, read the
    /// users, config and banner files, nothing else. `auto` applies what
    /// the kernel supports and logs what it could not; `required` refuses
    /// to start without a fully enforced sandbox; `off` skips it.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = SandboxMode::Auto)]
    pub sandbox: SandboxMode,

    /// Share the listen addresses with another process that listens on
    /// them with SO_REUSEPORT (an older ringftp being replaced: start the
    /// new one with --reuse-port, then SIGTERM the old one). Without it,
    /// an address another process listens on is refused ("address in
    /// use").
    #[arg(long = "reuse-port")]
    pub reuse_port: bool,

    /// The 220 greeting: TEXT, or `@FILE` to read it from FILE (re-read on
    /// SIGHUP). Several lines make a multi-line 220 reply.
    #[arg(long, value_name = "TEXT|@FILE")]
    pub banner: Option<String>,

    /// Accept control connections only from CIDR (IPv4 or IPv6;
    /// repeatable). With no --allow every address is allowed unless
    /// denied. The most specific matching --allow/--deny network decides.
    /// Checked at connect, before the greeting; a refusal is logged.
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,

    /// Refuse control connections from CIDR (IPv4 or IPv6; repeatable;
    /// see --allow for which rule wins).
    #[arg(long, value_name = "CIDR")]
    pub deny: Vec<String>,

    /// Behind a layer-4 balancer (docs/scale-out.md): every control
    /// connection (plain and implicit FTPS) and every passive data
    /// connection starts with a PROXY protocol header (v1 or v2), and the
    /// client address it names is the one every rule, log and limit uses.
    /// A connection without a valid header within --login-timeout, or
    /// from outside --proxy-from, is closed before any reply. Needs
    /// --proxy-from.
    #[arg(long = "proxy-protocol")]
    pub proxy_protocol: bool,

    /// With --proxy-protocol: the balancers (CIDR or address; repeatable)
    /// allowed to send a PROXY header. Connections from anywhere else are
    /// closed and logged.
    #[arg(long = "proxy-from", value_name = "CIDR")]
    pub proxy_from: Vec<String>,

    /// IPv6 clients count as one address per /BITS network for
    /// --max-per-ip and --login-ban: one host usually holds a whole /64.
    #[arg(long = "ipv6-prefix", value_name = "BITS", default_value_t = 64)]
    pub ipv6_prefix: u8,

    /// Write xferlog times in UTC instead of local time.
    #[arg(long = "xferlog-utc")]
    pub xferlog_utc: bool,

    /// Write the server-side path of each file in the xferlog (under
    /// --root) instead of the path the client used.
    #[arg(long = "xferlog-real-path")]
    pub xferlog_real_path: bool,

    /// Log level (off, error, warn, info, debug, trace) or a tracing filter
    /// of TARGET=LEVEL directives (info,ringftp::session=debug; also by
    /// span, see docs/operations.md); anything else is refused. RUST_LOG
    /// wins when set.
    #[arg(long = "log-level", value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log line format on stderr.
    #[arg(
        long = "log-format",
        value_name = "FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics, the open
    /// sessions at /sessions (JSON; `ringftp who` reads it) and a health
    /// check at /health (200 while every shard accepts, 503 while starting
    /// or shutting down). No authentication: use a loopback or management
    /// address. Port 0 picks a free port. [default: off]
    #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,

    /// FTPS: the server's certificate chain (PEM, leaf first). With
    /// --tls-key it turns on AUTH TLS and the --listen-implicit listeners;
    /// both files are re-read on SIGHUP (a bad new pair keeps the old one).
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// FTPS: the private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Implicit FTPS: accept control connections that start with TLS on
    /// this address (port 990 by convention); repeatable. Needs --tls-cert.
    #[arg(long = "listen-implicit", value_name = "ADDR:PORT")]
    pub listen_implicit: Vec<String>,

    /// Which logins need a TLS control connection: off, accounts (named
    /// accounts never send their password in clear; anonymous may), or all
    /// [default: accounts with --tls-cert, else off]
    #[arg(long = "tls-required", value_enum, value_name = "WHO")]
    pub tls_required: Option<TlsRequiredArg>,

    /// Whether a TLS session's data connections must be in TLS too
    /// (PROT P): required refuses transfers after PROT C with 521.
    #[arg(
        long = "tls-data",
        value_enum,
        value_name = "POLICY",
        default_value = "required"
    )]
    pub tls_data: TlsDataArg,

    /// Oldest TLS version accepted.
    #[arg(
        long = "tls-min-version",
        value_enum,
        value_name = "VERSION",
        default_value = "1.2"
    )]
    pub tls_min_version: TlsVersionArg,

    /// Whether a data connection must resume its own control connection's
    /// TLS session (required: else 522, as vsftpd's require_ssl_reuse);
    /// this is what stops a third party from taking over a data
    /// connection. `off` lets clients such as Python's stock ftplib work.
    #[arg(
        long = "tls-session-reuse",
        value_enum,
        value_name = "POLICY",
        default_value = "required"
    )]
    pub tls_session_reuse: TlsReuseArg,

    /// Kernel TLS for downloads: auto hands a data connection's keys to the
    /// kernel when it supports the cipher (probed at start, logged), so
    /// RETR stays sendfile/splice; off always encrypts in userspace.
    #[arg(long = "ktls", value_enum, value_name = "MODE", default_value = "auto")]
    pub ktls: KtlsArg,
}

/// `--tls-required`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRequiredArg {
    /// Anyone may log in over plain text
    Off,
    /// Named accounts need TLS; anonymous logins do not
    Accounts,
    /// Every login needs TLS
    All,
}

/// `--tls-data`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsDataArg {
    /// PROT C (clear data connections) is allowed on a TLS session
    Optional,
    /// A TLS session must send PROT P before any transfer (521 otherwise)
    Required,
}

/// `--tls-min-version`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersionArg {
    /// TLS 1.2 and 1.3
    #[value(name = "1.2")]
    V1_2,
    /// TLS 1.3 only
    #[value(name = "1.3")]
    V1_3,
}

/// `--tls-session-reuse`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsReuseArg {
    /// A data connection must resume its control connection's TLS session (522 otherwise)
    Required,
    /// Any TLS session will do, for clients that cannot resume one
    Off,
}

/// `--ktls`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KtlsArg {
    /// Kernel TLS for downloads when the kernel supports the cipher
    Auto,
    /// Always encrypt in userspace
    Off,
}

/// `--sandbox`: how hard to insist on the Landlock sandbox.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Apply what the kernel supports; log what it could not.
    Auto,
    /// Refuse to start unless the sandbox is fully enforced.
    Required,
    /// No sandbox.
    Off,
}
