//! Flags -> a validated [`Config`]. Every rule a flag must satisfy is
//! checked here, once, at start-up, with a message that names the flag, so
//! the engine never meets a bad value and a typo never becomes a runtime
//! surprise.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::ban::{self, BanPolicy};
use crate::cli::ServeArgs;
use crate::data::announce::{self, AnnounceTable};
use crate::data::ports::PortRange;

/// Everything `ringftp serve` runs with, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Control-connection addresses, as given (port 0 is resolved when bound).
    pub listen: Vec<SocketAddr>,
    /// The served directory, absolute.
    pub root: PathBuf,
    /// Number of shards.
    pub cores: usize,
    /// The passive port range, inclusive.
    pub pasv_ports: PortRange,
    /// Addresses announced in 227 replies, by client network
    /// (`--pasv-address-map`, `--pasv-address`), resolved at start-up;
    /// no rule for a client = the control connection's local address.
    pub pasv_announce: AnnounceTable,
    pub active_port_20: bool,
    pub allow_foreign_data: bool,
    pub data_timeout: Duration,
    pub idle_timeout: Duration,
    pub login_timeout: Duration,
    /// Sessions on the whole server; 0 = no limit.
    pub max_sessions: usize,
    /// Sessions per client address; 0 = no limit.
    pub max_per_ip: usize,
    /// Global download cap, bytes per second.
    pub max_rate: Option<u64>,
    /// Download cap per session, bytes per second.
    pub max_rate_per_session: Option<u64>,
    pub shutdown_grace: Duration,
    pub xferlog: Option<PathBuf>,
    /// xferlog times in UTC (else local time).
    pub xferlog_utc: bool,
    /// xferlog paths as on the server (else as the client named them).
    pub xferlog_real_path: bool,
    /// Where `/metrics`, `/sessions` and `/health` are served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    pub users: Option<PathBuf>,
    pub anonymous: bool,
    pub atomic_uploads: bool,
    pub keep_partial: bool,
    pub show_dotfiles: bool,
    /// `--legacy-charset`: the WHATWG label of the charset non-UTF-8 names
    /// are shown in (checked: a single-byte charset).
    pub legacy_charset: String,
    /// `--list-max-entries`: entries one listing sends at most.
    pub list_max_entries: usize,
    /// `--list-max-depth`: levels `LIST -R` descends at most.
    pub list_max_depth: usize,
    pub max_login_attempts: u32,
    pub login_ban: Option<BanPolicy>,
}

/// Parses `LO-HI` (both 1..=65535, LO <= HI).
pub fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("--pasv-ports {s:?}: expected LO-HI, e.g. 50000-50999"))?;
    let port = |p: &str| -> Result<u16, String> {
        match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!(
                "--pasv-ports {s:?}: {p:?} is not a port number (1-65535)"
            )),
            Ok(v) => Ok(v),
        }
    };
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo > hi {
        return Err(format!(
            "--pasv-ports {s:?}: the range is inverted ({lo} > {hi})"
        ));
    }
    Ok(PortRange { lo, hi })
}

/// Parses a `--listen` value: `ADDR:PORT`, `[V6]:PORT`, or `HOST:PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let mut addrs = s.to_socket_addrs().map_err(|e| {
        format!("--listen {s:?}: expected ADDR:PORT such as 0.0.0.0:2121 or [::]:2121 ({e})")
    })?;
    addrs
        .next()
        .ok_or_else(|| format!("--listen {s:?}: the name resolves to no address"))
}

/// Parses a rate flag: a size per second (`10MiB`, `500KB`, `1048576`),
/// above zero.
pub fn parse_rate(flag: &str, s: &str) -> Result<u64, String> {
    let text = s.trim();
    let text = text
        .strip_suffix("/s")
        .or_else(|| text.strip_suffix("ps"))
        .unwrap_or(text);
    match crate::units::parse_size(text) {
        Ok(0) => Err(format!(
            "{flag} {s:?}: a rate must be above zero (leave the flag out for no cap)"
        )),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{flag}: {e} (bytes per second, e.g. 10MiB)")),
    }
}

impl Config {
    /// Validates `args`; `available_cpus` is how many CPUs the process may
    /// use (the default and the upper bound of `--cores`).
    pub fn from_args(args: &ServeArgs, available_cpus: usize) -> Result<Config, String> {
        let listen = args
            .listen
            .iter()
            .map(|s| parse_listen(s))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in listen.iter().enumerate() {
            if a.port() != 0 && listen[..i].contains(a) {
                return Err(format!("--listen {a} is given twice"));
            }
        }
        let cores = args.cores.unwrap_or(available_cpus);
        if cores == 0 || cores > available_cpus {
            return Err(format!(
                "--cores {cores}: must be between 1 and {available_cpus} (the CPUs available to this process)"
            ));
        }
        let pasv_ports = parse_port_range(&args.pasv_ports)?;
        if pasv_ports.len() < cores {
            return Err(format!(
                "--pasv-ports {pasv_ports}: {} port(s) cannot be split between {cores} shards; give at least one port per shard (--cores)",
                pasv_ports.len()
            ));
        }
        let pasv_announce = AnnounceTable::build(
            &args.pasv_address_map,
            args.pasv_address.as_deref(),
            &announce::resolve_name,
        )?;
        let root = std::fs::canonicalize(&args.root)
            .map_err(|e| format!("--root {}: {e}", args.root.display()))?;
        if !root.is_dir() {
            return Err(format!("--root {}: not a directory", args.root.display()));
        }
        if args.data_timeout < Duration::from_secs(1) {
            return Err("--data-timeout must be at least 1 second".into());
        }
        if args.idle_timeout < Duration::from_secs(1) {
            return Err("--idle-timeout must be at least 1 second".into());
        }
        if args.login_timeout < Duration::from_secs(1) {
            return Err("--login-timeout must be at least 1 second".into());
        }
        let max_rate = args
            .max_rate
            .as_deref()
            .map(|r| parse_rate("--max-rate", r))
            .transpose()?;
        let max_rate_per_session = args
            .max_rate_per_session
            .as_deref()
            .map(|r| parse_rate("--max-rate-per-session", r))
            .transpose()?;
        crate::vfs::names::check_charset(&args.legacy_charset)?;
        if args.list_max_entries == 0 {
            return Err("--list-max-entries must be at least 1".into());
        }
        if args.max_login_attempts == 0 {
            return Err("--max-login-attempts must be at least 1".into());
        }
        let login_ban = ban::parse_policy(&args.login_ban)?;
        let metrics_listen = args
            .metrics_listen
            .as_deref()
            .map(|a| parse_listen(a).map_err(|e| e.replacen("--listen", "--metrics-listen", 1)))
            .transpose()?;
        if args.no_anonymous && args.users.is_none() {
            return Err("--no-anonymous without --users would let nobody log in".into());
        }
        Ok(Config {
            listen,
            root,
            cores,
            pasv_ports,
            pasv_announce,
            active_port_20: args.active_port_20,
            allow_foreign_data: args.allow_foreign_data,
            data_timeout: args.data_timeout,
            idle_timeout: args.idle_timeout,
            login_timeout: args.login_timeout,
            max_sessions: args.max_sessions,
            max_per_ip: args.max_per_ip,
            max_rate,
            max_rate_per_session,
            shutdown_grace: args.shutdown_grace,
            xferlog: args.xferlog.clone(),
            xferlog_utc: args.xferlog_utc,
            xferlog_real_path: args.xferlog_real_path,
            metrics_listen,
            users: args.users.clone(),
            anonymous: !args.no_anonymous,
            atomic_uploads: args.atomic_uploads,
            keep_partial: args.keep_partial,
            show_dotfiles: args.show_dotfiles,
            legacy_charset: args.legacy_charset.clone(),
            list_max_entries: args.list_max_entries,
            list_max_depth: args.list_max_depth,
            max_login_attempts: args.max_login_attempts,
            login_ban,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut v = vec!["ringftp", "serve"];
        if !extra.contains(&"--root") {
            v.extend_from_slice(&["--root", "/tmp"]);
        }
        v.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(v).unwrap().command {
            crate::cli::Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn port_ranges() {
        type Want = Result<(u16, u16), &'static str>;
        let table: &[(&str, Want)] = &[
            ("50000-50999", Ok((50000, 50999))),
            ("1-65535", Ok((1, 65535))),
            ("2000-2000", Ok((2000, 2000))),
            (" 10 - 20 ", Ok((10, 20))),
            ("50999-50000", Err("inverted")),
            ("0-10", Err("not a port")),
            ("10-65536", Err("not a port")),
            ("abc", Err("expected LO-HI")),
            ("10-", Err("not a port")),
            ("-10", Err("not a port")),
            ("", Err("expected LO-HI")),
        ];
        for (input, want) in table {
            match (parse_port_range(input), want) {
                (Ok(r), Ok((lo, hi))) => assert_eq!((r.lo, r.hi), (*lo, *hi), "{input}"),
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("0.0.0.0:2121").unwrap(),
            "0.0.0.0:2121".parse().unwrap()
        );
        assert_eq!(parse_listen("[::]:0").unwrap(), "[::]:0".parse().unwrap());
        assert_eq!(parse_listen("[::1]:21").unwrap().port(), 21);
        assert!(parse_listen("localhost:2121").unwrap().ip().is_loopback());
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("127.0.0.1:99999").is_err());
    }

    #[test]
    fn pasv_address_and_map() {
        let c = Config::from_args(
            &args(&[
                "--pasv-address",
                "203.0.113.10",
                "--pasv-address-map",
                "192.0.2.0/24=192.0.2.10",
                "--pasv-address-map",
                "192.0.2.128/25=localhost",
            ]),
            1,
        )
        .unwrap();
        let at = |s: &str| c.pasv_announce.lookup(s.parse().unwrap());
        assert_eq!(at("198.51.100.7"), Some("203.0.113.10".parse().unwrap()));
        assert_eq!(at("192.0.2.7"), Some("192.0.2.10".parse().unwrap()));
        assert_eq!(at("192.0.2.200"), Some(std::net::Ipv4Addr::LOCALHOST));
        assert!(Config::from_args(&args(&[]), 1)
            .unwrap()
            .pasv_announce
            .is_empty());
        for (bad, frag) in [
            (
                &["--pasv-address", "no-such-host.invalid"][..],
                "cannot resolve",
            ),
            (&["--pasv-address", "::1"][..], "IPv4"),
            (
                &["--pasv-address-map", "192.0.2.0/33=192.0.2.1"][..],
                "prefix length",
            ),
            (&["--pasv-address-map", "192.0.2.0/24"][..], "CIDR=ADDR"),
            (
                &[
                    "--pasv-address-map",
                    "192.0.2.0/24=192.0.2.1",
                    "--pasv-address-map",
                    "192.0.2.0/24=192.0.2.2",
                ][..],
                "already mapped",
            ),
        ] {
            let e = Config::from_args(&args(bad), 1).unwrap_err();
            assert!(e.contains(frag), "{bad:?}: {e}");
        }
    }

    #[test]
    fn from_args_rules() {
        let c = Config::from_args(&args(&[]), 4).unwrap();
        assert_eq!(c.cores, 4);
        assert_eq!(
            c.pasv_ports,
            PortRange {
                lo: 50000,
                hi: 50999
            }
        );
        assert_eq!(
            c.listen,
            vec!["0.0.0.0:2121".parse::<SocketAddr>().unwrap()]
        );
        assert!(Config::from_args(&args(&["--cores", "0"]), 4)
            .unwrap_err()
            .contains("between 1 and 4"));
        assert!(Config::from_args(&args(&["--cores", "5"]), 4)
            .unwrap_err()
            .contains("between 1 and 4"));
        let e =
            Config::from_args(&args(&["--cores", "3", "--pasv-ports", "100-101"]), 4).unwrap_err();
        assert!(e.contains("cannot be split between 3 shards"), "{e}");
        assert!(Config::from_args(&args(&["--root", "/nonexistent/dir"]), 4)
            .unwrap_err()
            .contains("--root"));
        assert!(Config::from_args(&args(&["--root", "/etc/hostname"]), 4)
            .unwrap_err()
            .contains("not a directory"));
        assert_eq!(c.max_sessions, 20_000);
        assert_eq!(c.max_per_ip, 0);
        assert_eq!(c.login_timeout, Duration::from_secs(60));
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!((c.max_rate, c.max_rate_per_session), (None, None));
        let c = Config::from_args(
            &args(&["--max-rate", "10MiB", "--max-rate-per-session", "500KB/s"]),
            4,
        )
        .unwrap();
        assert_eq!(c.max_rate, Some(10 << 20));
        assert_eq!(c.max_rate_per_session, Some(500_000));
        let e = Config::from_args(&args(&["--max-rate", "0"]), 4).unwrap_err();
        assert!(e.contains("above zero"), "{e}");
        let e = Config::from_args(&args(&["--max-rate-per-session", "fast"]), 4).unwrap_err();
        assert!(e.contains("--max-rate-per-session"), "{e}");
        let e = Config::from_args(&args(&["--login-timeout", "0"]), 4).unwrap_err();
        assert!(e.contains("--login-timeout"), "{e}");
        let e = Config::from_args(
            &args(&["--listen", "127.0.0.1:2121", "--listen", "127.0.0.1:2121"]),
            1,
        )
        .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }
}
