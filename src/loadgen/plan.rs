//! A run's plan: a [`Scenario`] merged with the flags (flags win), every
//! duration and size parsed, every rule checked, with clear errors. Everything
//! after it (the run, the report) reads only the [`Plan`].

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use super::checks::{self, Thresholds};
use super::scenario::{Action, Fraction, Mode, Op, Ops, Pick, Scenario};
use super::RunArgs;
use crate::units::{parse_duration, parse_size};

/// The highest `--rate` (requests a second) a run may ask for.
const MAX_RATE: f64 = 1e6;

/// Largest sum of weights in a weighted `ops` table: one cycle of the mix is
/// kept in memory.
const MAX_WEIGHTS: u32 = 10_000;

/// How the run ends: after a time, after a number of requests, or
/// whichever comes first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bounds {
    pub duration: Option<Duration>,
    /// Requests in total, all clients together.
    pub total_requests: Option<u64>,
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub scenario: String,
    /// The scale the scenario was loaded at (`--scale`).
    pub scale: Option<String>,
    pub description: String,
    /// The distinct actions (ops, each with its data-channel mode when it
    /// has its own), in the order of the scenario (or `--ops`).
    pub ops: Vec<Action>,
    /// One cycle of the op mix: request `k` of a client (closed loop) or
    /// start `k` of the timetable (open loop) is `sequence[k % len]`.
    pub sequence: Vec<Action>,
    /// Each action's share of the mix (its count in `sequence`).
    pub weights: BTreeMap<Action, u32>,
    pub target: SocketAddr,
    /// `--target` as the user wrote it, for the report.
    pub target_text: String,
    pub user: String,
    pub password: String,
    pub mode: Mode,
    pub clients: usize,
    /// Open loop: most virtual clients (>= clients).
    pub max_clients: usize,
    pub cores: usize,
    /// Pin generator shards to CPUs (`--pin`).
    pub pin: bool,
    /// SO_RCVBUF for data connections (`--rcvbuf`); None: the kernel's.
    pub rcvbuf: Option<u64>,
    pub bounds: Bounds,
    /// Open-loop requests per second, all clients together.
    pub rate: Option<f64>,
    pub ramp: Option<Duration>,
    pub rounds: u32,
    pub files: Option<String>,
    pub paths: Vec<String>,
    pub pick: Pick,
    pub seed: u64,
    pub size: u64,
    pub upload_dir: String,
    /// STOR a new file each time rather than overwrite one per client.
    pub new_files: bool,
    pub think: Option<Duration>,
    pub barrier: bool,
    pub verify: bool,
    pub timeout: Duration,
    pub max_errors: u64,
    pub thresholds: Thresholds,
    pub server_pid: Option<u32>,
    pub json: Option<PathBuf>,
    pub hgrm: Option<PathBuf>,
    pub hlog: Option<PathBuf>,
}

impl Plan {
    /// Merges `s` with the flags (flags win) and checks the result.
    /// `available_cores` bounds `--cores`.
    pub(crate) fn resolve(
        s: &Scenario,
        args: &RunArgs,
        available_cores: usize,
    ) -> anyhow::Result<Plan> {
        let name = &s.name;
        let field = |key: &str, text: &Option<String>| -> anyhow::Result<Option<Duration>> {
            text.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| anyhow::anyhow!("scenario {name}: {key}: {e}"))
        };
        let (sequence, weights) = match &args.ops {
            Some(flag) => mix(flag).context("--ops")?,
            None => mix(&s.ops).with_context(|| format!("scenario {name}: ops"))?,
        };
        let mut ops: Vec<Action> = Vec::new();
        for &op in &sequence {
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
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
                duration: field("duration", &s.duration)?,
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
            // Far past what one machine's generator starts; every start it
            // cannot make is counted as missed, one by one, at the end (a
            // rate of 1e12 spun for minutes past --duration).
            if r > MAX_RATE {
                bail!("--rate {r}: at most {MAX_RATE} requests a second");
            }
        }
        let max_clients = args.max_clients.or(s.max_clients);
        if let Some(m) = max_clients {
            if rate.is_none() {
                bail!("--max-clients applies to open loop only: give --rate too");
            }
            if m < clients {
                bail!("--max-clients {m} is below --clients {clients}");
            }
        }
        let max_clients = max_clients.unwrap_or(clients);
        let ramp = match args.ramp {
            Some(d) => Some(d),
            None => field("ramp", &s.ramp)?,
        }
        .filter(|d| !d.is_zero());
        if let (Some(r), Some(d)) = (ramp, bounds.duration) {
            if r > d {
                bail!("--ramp ({r:?}) is longer than the run ({d:?})");
            }
        }
        if args.rounds == 0 {
            bail!("--rounds must be at least 1");
        }

        let cores = args.cores.unwrap_or(available_cores).min(max_clients);
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
        if ops.iter().any(|a| a.op.needs_path()) && files.is_none() && paths.is_empty() {
            bail!("scenario {name}: its requests need remote paths: give --files (or `files`/`paths` in the scenario)");
        }

        let size = match args.size {
            Some(n) => n,
            None => s
                .size
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| anyhow::anyhow!("scenario {name}: size: {e}"))?
                .unwrap_or(1 << 20),
        };
        if ops.iter().any(|a| a.op == Op::Stor) && !(1..=1 << 30).contains(&size) {
            bail!("--size must be between 1 byte and 1 GiB for uploads");
        }
        let upload_dir = args
            .upload_dir
            .clone()
            .or_else(|| s.upload_dir.clone())
            .unwrap_or_else(|| "/upload".into());
        if upload_dir.is_empty() || upload_dir.contains(['\r', '\n']) {
            bail!("--upload-dir {upload_dir:?}: give a remote directory path");
        }

        let mode = args.mode.or(s.mode).unwrap_or(Mode::Epsv);
        let target = resolve_target(&args.target)?;
        if target.is_ipv6() && matches!(mode, Mode::Pasv | Mode::Port) {
            bail!(
                "--mode {} is IPv4 only (RFC 959); use epsv or eprt with an IPv6 target",
                mode.name()
            );
        }
        if let Some(a) = ops.iter().find(|a| {
            target.is_ipv6()
                && a.op.uses_data_channel()
                && matches!(a.mode, Some(Mode::Pasv | Mode::Port))
        }) {
            bail!(
                "op {} is IPv4 only (RFC 959); use epsv or eprt with an IPv6 target",
                a.name()
            );
        }
        let timeout = match args.timeout {
            Some(t) => t,
            None => field("timeout", &s.timeout)?.unwrap_or(Duration::from_secs(10)),
        };
        if timeout.is_zero() {
            bail!("--timeout must be more than zero");
        }

        let thresholds = Thresholds {
            max_p99: match args.max_p99 {
                Some(d) => Some(d),
                None => field("max_p99", &s.max_p99)?,
            },
            max_error_rate: match args.max_error_rate {
                Some(r) => Some(r),
                None => match &s.max_error_rate {
                    None => None,
                    Some(Fraction::Number(n)) => Some(
                        checks::fraction(*n)
                            .map_err(|e| anyhow::anyhow!("scenario {name}: max_error_rate: {e}"))?,
                    ),
                    Some(Fraction::Text(t)) => Some(
                        checks::parse_fraction(t)
                            .map_err(|e| anyhow::anyhow!("scenario {name}: max_error_rate: {e}"))?,
                    ),
                },
            },
            min_rate: args.min_rate.or(s.min_rate),
        };
        if let Some(r) = thresholds.min_rate {
            if !(r.is_finite() && r >= 0.0) {
                bail!("--min-rate must be a number of requests a second, not {r}");
            }
        }

        Ok(Plan {
            scenario: s.name.clone(),
            scale: s.scale.clone(),
            description: s.description.clone().unwrap_or_default(),
            ops,
            sequence,
            weights,
            target,
            target_text: args.target.clone(),
            user: args.user.clone(),
            password: args.password.clone(),
            mode,
            clients,
            max_clients,
            cores,
            pin: args.pin,
            rcvbuf: args.rcvbuf,
            bounds,
            rate,
            ramp,
            rounds: args.rounds,
            files,
            paths,
            pick: s.pick.unwrap_or(Pick::Random),
            seed: s.seed.unwrap_or(1),
            size,
            upload_dir,
            new_files: s.new_files.unwrap_or(false),
            think: field("think", &s.think)?,
            // The barrier holds each client's first session open until all
            // have logged in: a closed-loop notion (open loop has no fixed
            // set of "first sessions").
            barrier: s.barrier.unwrap_or(false) && rate.is_none(),
            verify: args.verify,
            timeout,
            max_errors: args.max_errors,
            thresholds,
            server_pid: args.server_pid,
            json: args.json.clone(),
            hgrm: args.hgrm.clone(),
            hlog: args.hlog.clone(),
        })
    }

    /// Closed loop: requests client `index` makes before it stops (None:
    /// until the deadline). The total is split as evenly as it goes.
    pub(crate) fn quota(&self, index: usize) -> Option<u64> {
        self.bounds.total_requests.map(|n| {
            let c = self.clients as u64;
            n / c + u64::from((index as u64) < n % c)
        })
    }

    /// Does any action of the plan use `op`?
    pub(crate) fn has(&self, op: Op) -> bool {
        self.ops.iter().any(|a| a.op == op)
    }

    /// Does any op of the plan name a file (RETR, SIZE, MDTM), so that a
    /// remote `--files` directory is walked for files, and a listing mixed
    /// with them lists the directory of the file picked?
    pub(crate) fn names_files(&self) -> bool {
        self.ops.iter().any(|a| a.op.names_file())
    }

    /// Does any op of the plan move file bytes (so latency per file-size
    /// class means something)?
    pub(crate) fn moves_files(&self) -> bool {
        self.ops.iter().any(|a| matches!(a.op, Op::Retr | Op::Stor))
    }
}

/// One cycle of the op mix and each op's weight. A list is used in turn; a
/// weighted table is interleaved by smooth weighted round-robin (as nginx
/// balances upstreams): `{ retr = 8, list = 1, stor = 1 }` gives ten
/// requests with the LIST and the STOR spread among the RETRs, the same
/// every run.
pub(crate) fn mix(ops: &Ops) -> anyhow::Result<(Vec<Action>, BTreeMap<Action, u32>)> {
    let mut weights: BTreeMap<Action, u32> = BTreeMap::new();
    let sequence = match ops {
        Ops::InTurn(list) => {
            for &op in list {
                *weights.entry(op).or_default() += 1;
            }
            list.clone()
        }
        Ops::Weighted(table) => {
            let table: Vec<(Action, u32)> = table
                .iter()
                .filter(|(_, &w)| w > 0)
                .map(|(&o, &w)| (o, w))
                .collect();
            // In u64: u32 weights near their limit would wrap the sum
            // past the check below.
            let total: u64 = table.iter().map(|&(_, w)| u64::from(w)).sum();
            if total > u64::from(MAX_WEIGHTS) {
                bail!("the weights add up to {total}; keep them under {MAX_WEIGHTS} (they are ratios: 8/1/1 is 80 %)");
            }
            let mut current = vec![0i64; table.len()];
            let mut seq = Vec::with_capacity(total as usize);
            for _ in 0..total {
                for (c, (_, w)) in current.iter_mut().zip(&table) {
                    *c += i64::from(*w);
                }
                let best = (0..table.len())
                    .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                    .expect("at least one op");
                current[best] -= total as i64;
                seq.push(table[best].0);
            }
            weights.extend(table);
            seq
        }
    };
    if sequence.is_empty() {
        let names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
        bail!(
            "`ops` is empty; name at least one of {} (with a weight above 0)",
            names.join(", ")
        );
    }
    Ok((sequence, weights))
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
    use super::super::scenario::BUNDLED;
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    pub(crate) fn args(flags: &[&str]) -> RunArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(flags);
        Wrap::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"))
            .run
    }

    fn plan(name: &str, flags: &[&str]) -> anyhow::Result<Plan> {
        Plan::resolve(&Scenario::load(name, None)?, &args(flags), 2)
    }

    #[test]
    fn every_bundled_scenario_resolves_at_every_scale() {
        for (name, _) in BUNDLED {
            for scale in [None, Some("quick"), Some("full")] {
                let s = Scenario::load(name, scale).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                let p = Plan::resolve(&s, &args(&[]), 2)
                    .unwrap_or_else(|e| panic!("{name} {scale:?}: {e:#}"));
                assert_eq!(&p.scenario, name);
                assert_eq!(p.scale.as_deref(), scale);
                assert!(p.bounds.duration.is_some() || p.bounds.total_requests.is_some());
            }
        }
        let quick = Plan::resolve(
            &Scenario::load("mirror", Some("quick")).unwrap(),
            &args(&[]),
            2,
        );
        let full = plan("mirror", &[]).unwrap();
        assert!(quick.unwrap().clients < full.clients);
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
        let p = plan("upload", &["--upload-dir", "/home/in"]).unwrap();
        assert_eq!(p.upload_dir, "/home/in");
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
        let p = plan("login-storm", &["--rate", "50"]).unwrap();
        assert!(!p.barrier, "no barrier in open loop");
    }

    #[test]
    fn quota_splits_requests_evenly() {
        let p = plan("mirror", &["--clients", "3", "--requests", "10"]).unwrap();
        let q: Vec<_> = (0..3).map(|i| p.quota(i).unwrap()).collect();
        assert_eq!(q, vec![4, 3, 3]);
    }

    #[test]
    fn weighted_mix_is_exact_and_interleaved() {
        let [retr, list, stor, mlsd] = [Op::Retr, Op::List, Op::Stor, Op::Mlsd].map(Action::new);
        let table = Ops::Weighted(BTreeMap::from([(retr, 8), (list, 1), (stor, 1)]));
        let (seq, w) = mix(&table).unwrap();
        assert_eq!(seq.len(), 10);
        assert_eq!(seq.iter().filter(|&&o| o == retr).count(), 8);
        assert_eq!(w[&list], 1);
        // Never two non-RETRs in a row: the minority ops are spread.
        assert!(
            seq.windows(2).all(|p| p[0] == retr || p[1] == retr),
            "{seq:?}"
        );
        let (seq, _) = mix(&Ops::InTurn(vec![list, mlsd, list])).unwrap();
        assert_eq!(seq, vec![list, mlsd, list]);
        assert!(mix(&Ops::Weighted(BTreeMap::from([(retr, 0)]))).is_err());
        // A sum past u32 is refused as such, not wrapped under the limit.
        let huge = Ops::Weighted(BTreeMap::from([(retr, u32::MAX), (list, 2)]));
        let e = mix(&huge).unwrap_err().to_string();
        assert!(e.contains("add up to 4294967297"), "{e}");
        assert!(mix(&Ops::Weighted(BTreeMap::from([(retr, 20_000)]))).is_err());
    }

    #[test]
    fn single_ops_and_the_ops_flag() {
        let p = plan("single-ops", &[]).unwrap();
        let names: Vec<String> = p.sequence.iter().map(|a| a.name()).collect();
        assert_eq!(
            names,
            [
                "noop",
                "size",
                "mdtm",
                "pasv-retr",
                "epsv-retr",
                "list",
                "stor"
            ]
        );
        assert_eq!((p.clients, p.size, p.new_files), (1, 1024, true));
        assert!(p.names_files() && p.moves_files() && p.has(Op::Stor));
        assert_eq!(p.quota(0), Some(3500));
        // --ops replaces the mix, and the rest of the scenario stays.
        let p = plan("single-ops", &["--ops", "stor", "--requests", "50"]).unwrap();
        assert_eq!(p.sequence, vec![Action::new(Op::Stor)]);
        assert_eq!((p.size, p.new_files, p.quota(0)), (1024, true, Some(50)));
        let p = plan("mirror", &["--ops", "retr=3,pasv-list=1"]).unwrap();
        assert_eq!(p.sequence.len(), 4);
        assert!(!p.has(Op::Stor));
        let p = plan("small-uploads", &[]).unwrap();
        assert_eq!(
            (p.clients, p.size, p.new_files, p.quota(0)),
            (1, 1024, true, Some(1000))
        );
        let err = format!(
            "{:#}",
            plan("single-ops", &["--target", "[::1]:21"]).unwrap_err()
        );
        assert!(err.contains("pasv-retr is IPv4 only"), "{err}");
        assert!(plan(
            "single-ops",
            &["--target", "[::1]:21", "--ops", "noop,epsv-retr"]
        )
        .is_ok());
    }

    #[test]
    fn open_loop_settings() {
        let p = plan(
            "mirror",
            &[
                "--rate",
                "100",
                "--max-clients",
                "50",
                "--clients",
                "5",
                "--ramp",
                "2s",
            ],
        )
        .unwrap();
        assert_eq!(
            (p.clients, p.max_clients, p.ramp),
            (5, 50, Some(Duration::from_secs(2)))
        );
        let p = plan("mirror", &["--clients", "5"]).unwrap();
        assert_eq!(p.max_clients, 5);
    }

    #[test]
    fn thresholds_from_flags_and_files() {
        let p = plan(
            "mirror",
            &[
                "--max-p99",
                "250ms",
                "--max-error-rate",
                "1%",
                "--min-rate",
                "10",
            ],
        )
        .unwrap();
        assert_eq!(p.thresholds.max_p99, Some(Duration::from_millis(250)));
        assert_eq!(p.thresholds.max_error_rate, Some(0.01));
        assert_eq!(p.thresholds.min_rate, Some(10.0));
        let s = Scenario::parse(
            "name = \"x\"\nops = [\"noop\"]\nduration = \"1s\"\nmax_p99 = \"1.5s\"\nmax_error_rate = 0.5\n",
        )
        .unwrap();
        let p = Plan::resolve(&s, &args(&[]), 1).unwrap();
        assert_eq!(p.thresholds.max_p99, Some(Duration::from_millis(1500)));
        assert_eq!(p.thresholds.max_error_rate, Some(0.5));
    }

    #[test]
    fn bad_input_is_refused_clearly() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("mirror", &["--clients", "0"], "--clients"),
            ("mirror", &["--rate", "0"], "--rate"),
            (
                "mirror",
                &["--rate", "1e12"],
                "at most 1000000 requests a second",
            ),
            ("mirror", &["--cores", "3"], "--cores"),
            ("mirror", &["--target", "nonsense"], "--target"),
            (
                "mirror",
                &["--target", "[::1]:21", "--mode", "pasv"],
                "IPv4 only",
            ),
            ("upload", &["--size", "0"], "--size"),
            ("mirror", &["--max-clients", "9"], "open loop only"),
            (
                "mirror",
                &["--rate", "5", "--clients", "4", "--max-clients", "3"],
                "below --clients",
            ),
            (
                "mirror",
                &["--ramp", "1m", "--duration", "10s"],
                "longer than the run",
            ),
            ("mirror", &["--rounds", "0"], "--rounds"),
            ("no-such-scenario", &[], "no bundled scenario"),
        ];
        for (name, flags, want) in cases {
            let err = format!("{:#}", plan(name, flags).unwrap_err());
            assert!(err.contains(want), "{name} {flags:?}: {err}");
        }
    }

    #[test]
    fn scenario_files_are_checked() {
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

    /// Issue 17: every size and duration form means the same in every
    /// loadtest flag and every scenario field.
    #[test]
    fn every_form_in_every_flag_and_field() {
        for (text, want) in [
            ("500ms", 500),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("2", 2_000),
        ] {
            let d = Duration::from_millis(want);
            let p = plan(
                "upload",
                &[
                    "--duration",
                    text,
                    "--timeout",
                    text,
                    "--max-p99",
                    text,
                    "--ramp",
                    "0s",
                ],
            )
            .unwrap();
            assert_eq!(
                (p.bounds.duration, p.timeout, p.thresholds.max_p99),
                (Some(d), d, Some(d)),
                "{text}"
            );
            let p = plan(
                "mirror",
                &["--rate", "1", "--ramp", text, "--duration", "1h"],
            )
            .unwrap();
            assert_eq!(p.ramp, Some(d), "{text}");
            let file = format!(
                "name = \"x\"\nops = [\"noop\"]\nduration = \"{text}\"\nthink = \"{text}\"\n\
                 timeout = \"{text}\"\nmax_p99 = \"{text}\"\nramp = \"{text}\"\n"
            );
            let p = Plan::resolve(&Scenario::parse(&file).unwrap(), &args(&[]), 1).unwrap();
            assert_eq!(
                (
                    p.bounds.duration,
                    p.think,
                    p.timeout,
                    p.thresholds.max_p99,
                    p.ramp
                ),
                (Some(d), Some(d), d, Some(d), Some(d)),
                "{text}"
            );
        }
        for (text, want) in [
            ("1.5MiB", 3u64 << 19),
            ("10kib", 10 << 10),
            ("64KiB", 64 << 10),
            ("1MB", 1_000_000),
        ] {
            assert_eq!(
                plan("upload", &["--size", text]).unwrap().size,
                want,
                "{text}"
            );
            let file = format!("name = \"x\"\nops = [\"stor\"]\nrequests = 1\nsize = \"{text}\"\n");
            let p = Plan::resolve(&Scenario::parse(&file).unwrap(), &args(&[]), 1).unwrap();
            assert_eq!(p.size, want, "{text}");
        }
    }
}
