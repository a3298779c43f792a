//! Scenarios: what the virtual clients do, as TOML files (`loadtest/*.toml`,
//! compiled into the binary so `--scenario mirror` works from anywhere, or a
//! user's own file), and the flags that override them.
//!
//! [`Plan::resolve`] merges a scenario with the command line into one
//! validated plan; everything after it (the run, the report) reads only the
//! plan. Field by field documentation is in loadtest/README.md.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::RunArgs;
use crate::units::{parse_duration, parse_size};

/// The scenarios shipped in `loadtest/`, by name.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "login-storm",
        include_str!("../../loadtest/login-storm.toml"),
    ),
    ("mirror", include_str!("../../loadtest/mirror.toml")),
    ("bigfile", include_str!("../../loadtest/bigfile.toml")),
    ("upload", include_str!("../../loadtest/upload.toml")),
    ("listing", include_str!("../../loadtest/listing.toml")),
    ("idle", include_str!("../../loadtest/idle.toml")),
];

/// How data channels are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Passive, IPv4 only: PASV, the server announces address and port.
    Pasv,
    /// Extended passive (RFC 2428): EPSV, the server announces the port.
    Epsv,
    /// Active, IPv4 only: PORT, the server connects to the client.
    Port,
    /// Extended active (RFC 2428): EPRT, IPv4 or IPv6.
    Eprt,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pasv => "pasv",
            Mode::Epsv => "epsv",
            Mode::Port => "port",
            Mode::Eprt => "eprt",
        }
    }
}

/// One kind of request a virtual client makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A whole session: connect, greeting, USER/PASS (then QUIT).
    Login,
    /// Download a file.
    Retr,
    /// Upload `size` bytes.
    Stor,
    /// `LIST dir` over a data channel.
    List,
    /// `NLST dir` over a data channel.
    Nlst,
    /// `MLSD dir` over a data channel (RFC 3659).
    Mlsd,
    /// A NOOP round trip on the control channel.
    Noop,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Retr => "retr",
            Op::Stor => "stor",
            Op::List => "list",
            Op::Nlst => "nlst",
            Op::Mlsd => "mlsd",
            Op::Noop => "noop",
        }
    }

    /// Does this op pick a remote path from the plan's targets?
    pub fn needs_path(self) -> bool {
        matches!(self, Op::Retr | Op::List | Op::Nlst | Op::Mlsd)
    }

    /// The FTP command a request of this op sends (the transfer command for
    /// data ops).
    pub fn verb(self) -> &'static str {
        match self {
            Op::Login => "USER",
            Op::Retr => "RETR",
            Op::Stor => "STOR",
            Op::List => "LIST",
            Op::Nlst => "NLST",
            Op::Mlsd => "MLSD",
            Op::Noop => "NOOP",
        }
    }

    /// Does a request of this op open a data channel?
    pub fn uses_data_channel(self) -> bool {
        !matches!(self, Op::Login | Op::Noop)
    }
}

/// Order in which a client walks the target paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    /// Uniformly at random (seeded: runs are repeatable).
    Random,
    /// In order, each client starting at a different place.
    Sequential,
}

/// A scenario file as written. Every field but `name` and `ops` is
/// optional; flags override fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub ops: Vec<Op>,
    pub clients: Option<usize>,
    pub duration: Option<String>,
    pub requests: Option<u64>,
    pub requests_per_client: Option<u64>,
    pub rate: Option<f64>,
    pub mode: Option<Mode>,
    pub files: Option<String>,
    pub paths: Option<Vec<String>>,
    pub pick: Option<Pick>,
    pub seed: Option<u64>,
    pub size: Option<String>,
    pub upload_dir: Option<String>,
    pub think: Option<String>,
    pub barrier: Option<bool>,
}

impl Scenario {
    /// A bundled scenario by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Scenario> {
        if let Some((_, text)) = BUNDLED.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(text)
                .with_context(|| format!("bundled scenario {name_or_path}"));
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
            bail!(
                "--scenario {name_or_path:?}: no bundled scenario of that name ({}) and no such file",
                names.join(", ")
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        Ok(toml::from_str(text)?)
    }
}

/// How the run ends: after a time, after a number of requests, or
/// whichever comes first.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    pub duration: Option<Duration>,
    /// Requests each client makes, by client index.
    pub total_requests: Option<u64>,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: String,
    pub description: String,
    pub ops: Vec<Op>,
    pub target: SocketAddr,
    /// `--target` as the user wrote it, for the report.
    pub target_text: String,
    pub user: String,
    pub password: String,
    pub mode: Mode,
    pub clients: usize,
    pub cores: usize,
    /// Pin generator shards to CPUs (`--pin`).
    pub pin: bool,
    pub bounds: Bounds,
    /// Open-loop requests per second, all clients together.
    pub rate: Option<f64>,
    pub files: Option<String>,
    pub paths: Vec<String>,
    pub pick: Pick,
    pub seed: u64,
    pub size: u64,
    pub upload_dir: String,
    pub think: Option<Duration>,
    pub barrier: bool,
    pub verify: bool,
    pub timeout: Duration,
    pub max_errors: u64,
    pub server_pid: Option<u32>,
    pub json: Option<PathBuf>,
    pub hgrm: Option<PathBuf>,
}

impl Plan {
    /// Merges `scenario` with the flags (flags win) and checks the result.
    /// `available_cores` bounds `--cores`.
    pub fn resolve(s: &Scenario, args: &RunArgs, available_cores: usize) -> anyhow::Result<Plan> {
        if s.ops.is_empty() {
            bail!("scenario {}: `ops` is empty; name at least one of login, retr, stor, list, nlst, mlsd, noop", s.name);
        }
        let field =
            |name: &str, text: &Option<String>, parse: fn(&str) -> Result<Duration, String>| {
                text.as_deref()
                    .map(parse)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("scenario {}: {name}: {e}", s.name))
            };
        let clients = args.clients.or(s.clients).unwrap_or(1);
        if clients == 0 {
            bail!("--clients must be at least 1");
        }

        // The flags' bounds replace the scenario's as a whole: `--duration
        // 10s` on login-storm means "storm for 10 s", not "10 s or one
        // session per client, whichever is first".
        let bounds = if args.duration.is_some() || args.requests.is_some() {
            Bounds {
                duration: args.duration,
                total_requests: args.requests,
            }
        } else {
            let per_client = s.requests_per_client.map(|n| n * clients as u64);
            Bounds {
                duration: field("duration", &s.duration, parse_duration)?,
                total_requests: match (s.requests, per_client) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            }
        };
        if bounds.duration.is_none() && bounds.total_requests.is_none() {
            bail!("nothing bounds this run: give --duration or --requests (or set one in the scenario)");
        }
        if bounds.duration == Some(Duration::ZERO) || bounds.total_requests == Some(0) {
            bail!("--duration and --requests must be more than zero");
        }

        let rate = args.rate.or(s.rate);
        if let Some(r) = rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("--rate must be a positive number of requests a second, not {r}");
            }
        }

        let cores = args.cores.unwrap_or(available_cores).min(clients);
        if cores == 0 || args.cores.is_some_and(|c| c > available_cores) {
            bail!(
                "--cores must be between 1 and {available_cores} (the CPUs this process may use)"
            );
        }

        let files = args.files.clone().or_else(|| s.files.clone());
        // `--files` replaces the scenario's whole path source.
        let paths = if args.files.is_some() {
            Vec::new()
        } else {
            s.paths.clone().unwrap_or_default()
        };
        if s.ops.iter().any(|o| o.needs_path()) && files.is_none() && paths.is_empty() {
            bail!("scenario {}: its requests need remote paths: give --files (or `files`/`paths` in the scenario)", s.name);
        }

        let size = match args.size {
            Some(n) => n,
            None => s
                .size
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| anyhow::anyhow!("scenario {}: size: {e}", s.name))?
                .unwrap_or(1 << 20),
        };
        if s.ops.contains(&Op::Stor) && !(1..=1 << 30).contains(&size) {
            bail!("--size must be between 1 byte and 1 GiB for uploads");
        }

        let mode = args.mode.or(s.mode).unwrap_or(Mode::Epsv);
        let target = resolve_target(&args.target)?;
        if target.is_ipv6() && matches!(mode, Mode::Pasv | Mode::Port) {
            bail!(
                "--mode {} is IPv4 only (RFC 959); use epsv or eprt with an IPv6 target",
                mode.name()
            );
        }
        let timeout = args.timeout;
        if timeout.is_zero() {
            bail!("--timeout must be more than zero");
        }

        Ok(Plan {
            scenario: s.name.clone(),
            description: s.description.clone().unwrap_or_default(),
            ops: s.ops.clone(),
            target,
            target_text: args.target.clone(),
            user: args.user.clone(),
            password: args.password.clone(),
            mode,
            clients,
            cores,
            pin: args.pin,
            bounds,
            rate,
            files,
            paths,
            pick: s.pick.unwrap_or(Pick::Random),
            seed: s.seed.unwrap_or(1),
            size,
            upload_dir: s.upload_dir.clone().unwrap_or_else(|| "/upload".into()),
            think: field("think", &s.think, parse_duration)?,
            barrier: s.barrier.unwrap_or(false),
            verify: args.verify,
            timeout,
            max_errors: args.max_errors,
            server_pid: args.server_pid,
            json: args.json.clone(),
            hgrm: args.hgrm.clone(),
        })
    }

    /// Requests client `index` makes before it stops (None: until the
    /// deadline). The total is split as evenly as it goes.
    pub fn quota(&self, index: usize) -> Option<u64> {
        self.bounds.total_requests.map(|n| {
            let c = self.clients as u64;
            n / c + u64::from((index as u64) < n % c)
        })
    }
}

fn resolve_target(text: &str) -> anyhow::Result<SocketAddr> {
    let mut addrs = text.to_socket_addrs().with_context(|| {
        format!("--target {text:?}: expected HOST:PORT (e.g. 127.0.0.1:2121 or [::1]:2121)")
    })?;
    addrs
        .next()
        .with_context(|| format!("--target {text:?}: the name resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(flags: &[&str]) -> RunArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(flags);
        Wrap::parse_from(argv).run
    }

    fn plan(name: &str, flags: &[&str]) -> anyhow::Result<Plan> {
        Plan::resolve(&Scenario::load(name)?, &args(flags), 2)
    }

    #[test]
    fn every_bundled_scenario_parses_and_resolves() {
        for (name, _) in BUNDLED {
            let p = plan(name, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(&p.scenario, name);
            assert!(p.bounds.duration.is_some() || p.bounds.total_requests.is_some());
        }
    }

    #[test]
    fn flags_override_the_scenario() {
        let p = plan(
            "mirror",
            &[
                "--clients",
                "7",
                "--mode",
                "port",
                "--duration",
                "2s",
                "--files",
                "/x",
            ],
        )
        .unwrap();
        assert_eq!(
            (p.clients, p.mode, p.files.as_deref()),
            (7, Mode::Port, Some("/x"))
        );
        assert_eq!(
            p.bounds,
            Bounds {
                duration: Some(Duration::from_secs(2)),
                total_requests: None
            }
        );
        assert!(p.paths.is_empty());

        let p = plan("bigfile", &["--files", "/tmp/index.txt"]).unwrap();
        assert!(p.paths.is_empty(), "--files replaces the scenario's paths");
    }

    #[test]
    fn login_storm_scales_with_clients() {
        let p = plan("login-storm", &["--clients", "5000"]).unwrap();
        assert_eq!(p.bounds.total_requests, Some(5000));
        assert!(p.barrier);
        assert_eq!(p.quota(0), Some(1));
        let p = plan("login-storm", &["--duration", "3s"]).unwrap();
        assert_eq!(
            p.bounds.total_requests, None,
            "a flag bound replaces the scenario's"
        );
    }

    #[test]
    fn quota_splits_requests_evenly() {
        let p = plan("mirror", &["--clients", "3", "--requests", "10"]).unwrap();
        let q: Vec<_> = (0..3).map(|i| p.quota(i).unwrap()).collect();
        assert_eq!(q, vec![4, 3, 3]);
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("mirror", &["--clients", "0"], "--clients"),
            ("mirror", &["--rate", "0"], "--rate"),
            ("mirror", &["--cores", "3"], "--cores"),
            ("mirror", &["--target", "nonsense"], "--target"),
            (
                "mirror",
                &["--target", "[::1]:21", "--mode", "pasv"],
                "IPv4 only",
            ),
            ("upload", &["--size", "0"], "--size"),
            ("no-such-scenario", &[], "no bundled scenario"),
        ];
        for (name, flags, want) in cases {
            let err = format!("{:#}", plan(name, flags).unwrap_err());
            assert!(err.contains(want), "{name} {flags:?}: {err}");
        }
    }

    #[test]
    fn scenario_files_are_checked() {
        assert!(Scenario::parse("name = \"x\"\nops = [\"retr\"]\nunknown = 1").is_err());
        assert!(Scenario::parse("name = \"x\"\nops = [\"fly\"]").is_err());
        let s = Scenario::parse("name = \"x\"\nops = []\nduration = \"1s\"").unwrap();
        assert!(Plan::resolve(&s, &args(&[]), 1).is_err(), "empty ops");
        let s = Scenario::parse("name = \"x\"\nops = [\"noop\"]").unwrap();
        let err = Plan::resolve(&s, &args(&[]), 1).unwrap_err().to_string();
        assert!(err.contains("nothing bounds"), "{err}");
        let s = Scenario::parse("name = \"x\"\nops = [\"noop\"]\nduration = \"soon\"").unwrap();
        assert!(Plan::resolve(&s, &args(&[]), 1).is_err());
        let s = Scenario::parse("name = \"x\"\nops = [\"retr\"]\nduration = \"1s\"").unwrap();
        let err = Plan::resolve(&s, &args(&[]), 1).unwrap_err().to_string();
        assert!(err.contains("--files"), "{err}");
    }
}
