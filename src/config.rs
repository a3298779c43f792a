//! Flags -> a validated [`Config`]. Every rule a flag must satisfy is
//! checked here, once, at start-up, with a message that names the flag, so
//! the engine never meets a bad value and a typo never becomes a runtime
//! surprise.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::access::AccessList;
use crate::auth::ban::{self, BanPolicy};
use crate::auth::tls::{TlsData, TlsRequired, TlsRules};
use crate::cli::{
    KtlsArg, SandboxMode, ServeArgs, TlsDataArg, TlsRequiredArg, TlsReuseArg, TlsVersionArg,
};
use crate::data::announce::{self, AnnounceTable};
use crate::data::ports::PortRange;
use crate::proxy_protocol::ProxyFrom;

/// The FTPS settings of `ringftp serve` (`--tls-*`), present when a
/// certificate is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `--tls-cert`: the certificate chain, PEM.
    pub cert: PathBuf,
    /// `--tls-key`: its private key, PEM.
    pub key: PathBuf,
    /// `--tls-min-version 1.3`: TLS 1.2 refused.
    pub tls13_only: bool,
    /// `--tls-session-reuse required`: a data connection must resume its
    /// own control connection's TLS session.
    pub session_reuse: bool,
    /// `--ktls auto`: hand download keys to the kernel where it can.
    pub ktls: bool,
}

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
    /// `--user`, as given (resolved by [`crate::privileges`]).
    pub user: Option<String>,
    pub sandbox: SandboxMode,
    /// `--reuse-port`: share the listen addresses on purpose.
    pub reuse_port: bool,
    /// `--config`, if given.
    pub config_file: Option<PathBuf>,
    /// The 220 greeting's text (lines separated by `\n`).
    pub banner: Vec<u8>,
    /// The file the banner was read from (`--banner @FILE`).
    pub banner_file: Option<PathBuf>,
    /// `--allow` / `--deny`.
    pub access: AccessList,
    /// `--ipv6-prefix`: IPv6 clients count per network of this length.
    pub ipv6_prefix: u8,
    /// `--listen-implicit`: control addresses where TLS starts at accept.
    pub listen_implicit: Vec<SocketAddr>,
    /// FTPS settings, when `--tls-cert` is given.
    pub tls: Option<TlsSettings>,
    /// `--proxy-protocol` with its `--proxy-from` balancers: every control
    /// and passive data connection starts with a PROXY header.
    pub proxy: Option<ProxyFrom>,
    /// The FTPS rules sessions follow.
    pub tls_rules: TlsRules,
}

/// The greeting when no `--banner` is given.
pub(crate) const DEFAULT_BANNER: &str = "ringftp ready.";

/// Most lines and bytes a banner may have: a greeting, not a document
/// (every client waits for all of it before it logs in).
const BANNER_MAX_LINES: usize = 100;
const BANNER_MAX_BYTES: usize = 8 * 1024;

/// Parses `--banner`: TEXT, or `@FILE` (read now). Returns the text with
/// lines separated by `\n` (CR dropped, other control bytes shown as `?`,
/// trailing blank lines removed) and the file, if any.
pub(crate) fn parse_banner(s: &str) -> Result<(Vec<u8>, Option<PathBuf>), String> {
    let (raw, file) = match s.strip_prefix('@') {
        Some(f) => {
            let path = PathBuf::from(f);
            let bytes = std::fs::read(&path).map_err(|e| format!("--banner @{f}: {e}"))?;
            (bytes, Some(path))
        }
        None => (s.as_bytes().to_vec(), None),
    };
    let what = match &file {
        Some(f) => format!("--banner @{}", f.display()),
        None => "--banner".to_string(),
    };
    if raw.len() > BANNER_MAX_BYTES {
        return Err(format!(
            "{what}: {} bytes; a banner may have at most {BANNER_MAX_BYTES}",
            raw.len()
        ));
    }
    let mut text: Vec<u8> = raw
        .iter()
        .filter(|&&b| b != b'\r')
        .map(|&b| match b {
            b'\n' | b'\t' => b,
            c if c < 0x20 || c == 0x7f => b'?',
            c => c,
        })
        .collect();
    while text.last().is_some_and(|b| b.is_ascii_whitespace()) {
        text.pop();
    }
    if text.is_empty() {
        return Err(format!("{what}: the banner is empty"));
    }
    let lines = text.iter().filter(|&&b| b == b'\n').count() + 1;
    if lines > BANNER_MAX_LINES {
        return Err(format!(
            "{what}: {lines} lines; a banner may have at most {BANNER_MAX_LINES}"
        ));
    }
    Ok((text, file))
}

/// The served root: `--root`, or the current directory, which must not be
/// `/` (a service started without a working directory would otherwise
/// publish the whole filesystem, /etc/shadow included).
fn served_root(given: Option<&Path>) -> Result<PathBuf, String> {
    match given {
        Some(p) => check_root(p, true),
        None => check_root(Path::new("."), false),
    }
}

/// `path` as the served root; `explicit` when the operator named it.
fn check_root(path: &Path, explicit: bool) -> Result<PathBuf, String> {
    let root =
        std::fs::canonicalize(path).map_err(|e| format!("--root {}: {e}", path.display()))?;
    if !root.is_dir() {
        return Err(format!("--root {}: not a directory", path.display()));
    }
    if !explicit && root == Path::new("/") {
        return Err("no --root given and the current directory is /: that would serve the whole filesystem; give the directory to serve with --root DIR (or --root / if that is really meant)".into());
    }
    Ok(root)
}

/// Parses `LO-HI` (both 1..=65535, LO <= HI).
pub(crate) fn parse_port_range(s: &str) -> Result<PortRange, String> {
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
///
/// An IPv4-mapped IPv6 address (`[::ffff:192.0.2.1]:21`) is its IPv4
/// address: IPv6 listeners are IPV6_V6ONLY, where binding a mapped
/// address fails with EINVAL, and the clients it names connect over IPv4
/// (the access lists read such addresses the same way, `access::parse_net`).
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let addr = match s.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => s
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "--listen {s:?}: expected ADDR:PORT such as 0.0.0.0:2121 or [::]:2121 ({e})"
                )
            })?
            .next()
            .ok_or_else(|| format!("--listen {s:?}: the name resolves to no address"))?,
    };
    Ok(match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    })
}

/// Parses a rate flag: a size per second (`10MiB`, `500KB`, `1048576`)
/// that [`crate::limits::check_rate_cap`] takes.
pub(crate) fn parse_rate(flag: &str, s: &str) -> Result<u64, String> {
    let text = s.trim();
    let text = text
        .strip_suffix("/s")
        .or_else(|| text.strip_suffix("ps"))
        .unwrap_or(text);
    let n = crate::units::parse_size(text)
        .map_err(|e| format!("{flag}: {e} (bytes per second, e.g. 10MiB)"))?;
    crate::limits::check_rate_cap(n).map_err(|why| format!("{flag} {s:?}: {why}"))
}

impl Config {
    /// Validates `args`; `available_cpus` is how many CPUs the process may
    /// use (the default and the upper bound of `--cores`).
    pub fn from_args(args: &ServeArgs, available_cpus: usize) -> Result<Config, String> {
        Config::from_args_with(args, available_cpus, &announce::resolve_name)
    }

    /// [`Config::from_args`] with the resolver for host names given to
    /// `--pasv-address` / `--pasv-address-map`.
    pub fn from_args_with(
        args: &ServeArgs,
        available_cpus: usize,
        resolve: announce::Resolver,
    ) -> Result<Config, String> {
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
            resolve,
        )?;
        let root = served_root(args.root.as_deref())?;
        if args.data_timeout < Duration::from_secs(1) {
            return Err("--data-timeout must be at least 1 second".into());
        }
        if args.idle_timeout < Duration::from_secs(1) {
            return Err("--idle-timeout must be at least 1 second".into());
        }
        if args.login_timeout < Duration::from_secs(1) {
            return Err("--login-timeout must be at least 1 second".into());
        }
        // Start-up's log set-up parses it first; checked here too so that
        // --check-config and a SIGHUP reload refuse what a start would.
        crate::logging::parse_filter(&args.log_level).map_err(|e| format!("--log-level {e}"))?;
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
        let (banner, banner_file) = match &args.banner {
            Some(b) => parse_banner(b)?,
            None => (DEFAULT_BANNER.as_bytes().to_vec(), None),
        };
        let access = AccessList::build(&args.allow, &args.deny)?;
        if args.ipv6_prefix > 128 {
            return Err(format!(
                "--ipv6-prefix {}: a prefix length is 0 to 128",
                args.ipv6_prefix
            ));
        }
        let listen_implicit = args
            .listen_implicit
            .iter()
            .map(|s| parse_listen(s).map_err(|e| e.replacen("--listen", "--listen-implicit", 1)))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in listen_implicit.iter().enumerate() {
            if a.port() != 0 && listen_implicit[..i].contains(a) {
                return Err(format!("--listen-implicit {a} is given twice"));
            }
            if a.port() != 0 && listen.contains(a) {
                return Err(format!(
                    "--listen-implicit {a} is also a --listen address; give each port one role"
                ));
            }
        }
        // Listeners that would fight over a port, said here rather than
        // blamed on "another process" when the second bind fails: two
        // roles (plain, implicit FTPS, metrics) never share one, and
        // 0.0.0.0:21 with 127.0.0.1:21 needs SO_REUSEPORT (--reuse-port).
        let all: Vec<(&str, &SocketAddr)> = listen
            .iter()
            .map(|a| ("--listen", a))
            .chain(listen_implicit.iter().map(|a| ("--listen-implicit", a)))
            .chain(metrics_listen.iter().map(|a| ("--metrics-listen", a)))
            .collect();
        for (i, &(flag, a)) in all.iter().enumerate() {
            for &(other, b) in &all[..i] {
                let overlap = a.port() != 0 && (a == b || covers(a, b));
                if overlap && other != flag {
                    return Err(format!(
                        "{other} {b} and {flag} {a} share port {}; give each role its own port",
                        a.port()
                    ));
                }
                if overlap && a != b && !args.reuse_port {
                    return Err(format!(
                        "{other} {b} and {flag} {a} share port {} and one of them is every address of its family, so both cannot be bound; give them different ports, drop the specific one, or give --reuse-port",
                        a.port()
                    ));
                }
            }
        }
        // A passive listener is bound without SO_REUSEPORT: on a port a
        // control or metrics listener holds it could never bind, and every
        // PASV drawing it would fail as if the range were used up.
        let taken = listen
            .iter()
            .map(|a| ("--listen", a))
            .chain(listen_implicit.iter().map(|a| ("--listen-implicit", a)))
            .chain(metrics_listen.iter().map(|a| ("--metrics-listen", a)));
        for (flag, a) in taken {
            if (pasv_ports.lo..=pasv_ports.hi).contains(&a.port()) {
                return Err(format!(
                    "--pasv-ports {pasv_ports} includes port {} of {flag} {a}: no passive listener could bind it; leave it out of the range",
                    a.port()
                ));
            }
        }
        let (tls, tls_rules) = tls_settings(args, &listen_implicit)?;
        let proxy = match (args.proxy_protocol, args.proxy_from.is_empty()) {
            (true, _) => Some(ProxyFrom::build(&args.proxy_from)?),
            (false, true) => None,
            (false, false) => {
                return Err("--proxy-from is only used with --proxy-protocol; add --proxy-protocol (or drop --proxy-from)".into())
            }
        };
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
            user: args.user.clone(),
            sandbox: args.sandbox,
            reuse_port: args.reuse_port,
            config_file: args.config.clone(),
            banner,
            banner_file,
            access,
            ipv6_prefix: args.ipv6_prefix,
            listen_implicit,
            tls,
            tls_rules,
            proxy,
        })
    }
}

/// Whether listeners on `a` and `b` would fight over one port: the same
/// non-zero port in the same family (IPv6 listeners are IPV6_V6ONLY), one
/// of them the family's unspecified address (0.0.0.0 or ::) and the other
/// a different address. Linux refuses the second bind with EADDRINUSE
/// unless both set SO_REUSEPORT. The same address twice is refused apart.
fn covers(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && a.ip() != b.ip()
        && (a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The `--tls-*` flags, checked against each other: TLS policies and
/// implicit listeners need a certificate.
fn tls_settings(
    args: &ServeArgs,
    listen_implicit: &[SocketAddr],
) -> Result<(Option<TlsSettings>, TlsRules), String> {
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => {
            if !listen_implicit.is_empty() {
                return Err("--listen-implicit needs --tls-cert and --tls-key".into());
            }
            if matches!(
                args.tls_required,
                Some(TlsRequiredArg::Accounts | TlsRequiredArg::All)
            ) {
                return Err(
                    "--tls-required accounts|all needs --tls-cert and --tls-key (nobody could log in)"
                        .into(),
                );
            }
            return Ok((None, TlsRules::default()));
        }
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let required = match args.tls_required.unwrap_or(TlsRequiredArg::Accounts) {
        TlsRequiredArg::Off => TlsRequired::Off,
        TlsRequiredArg::Accounts => TlsRequired::Accounts,
        TlsRequiredArg::All => TlsRequired::All,
    };
    let data = match args.tls_data {
        TlsDataArg::Optional => TlsData::Optional,
        TlsDataArg::Required => TlsData::Required,
    };
    let settings = TlsSettings {
        cert,
        key,
        tls13_only: args.tls_min_version == TlsVersionArg::V1_3,
        session_reuse: args.tls_session_reuse == TlsReuseArg::Required,
        ktls: args.ktls == KtlsArg::Auto,
    };
    let rules = TlsRules {
        available: true,
        required,
        data,
    };
    Ok((Some(settings), rules))
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
    fn root_default_is_never_slash() {
        // The default (the current directory) resolving to /.
        let e = check_root(Path::new("/"), false).unwrap_err();
        assert!(e.contains("--root"), "{e}");
        let e = check_root(Path::new("/tmp/.."), false).unwrap_err();
        assert!(e.contains("whole filesystem"), "{e}");
        // Given explicitly, / is served.
        assert_eq!(check_root(Path::new("/"), true).unwrap(), Path::new("/"));
        let here = std::env::current_dir().unwrap();
        assert_eq!(served_root(None).unwrap(), here.canonicalize().unwrap());
    }

    #[test]
    fn banners() {
        assert_eq!(parse_banner("Hello").unwrap(), (b"Hello".to_vec(), None));
        assert_eq!(
            parse_banner("Welcome\r\nto the \x1b[1mmirror\n\n")
                .unwrap()
                .0,
            b"Welcome\nto the ?[1mmirror".to_vec()
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("banner.txt");
        std::fs::write(&f, "line one\nline two\n").unwrap();
        let (text, file) = parse_banner(&format!("@{}", f.display())).unwrap();
        assert_eq!(text, b"line one\nline two");
        assert_eq!(file.as_deref(), Some(f.as_path()));
        for (bad, frag) in [
            ("", "empty"),
            (" \n ", "empty"),
            ("@/no/such/banner", "--banner @/no/such/banner"),
        ] {
            let e = parse_banner(bad).unwrap_err();
            assert!(e.contains(frag), "{bad:?}: {e}");
        }
        let long = "x\n".repeat(BANNER_MAX_LINES + 1);
        assert!(parse_banner(&long).unwrap_err().contains("at most"));
        let wide = "x".repeat(BANNER_MAX_BYTES + 1);
        assert!(parse_banner(&wide).unwrap_err().contains("at most"));
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
        // An IPv4-mapped address is the IPv4 one (an IPV6_V6ONLY socket
        // cannot bind it).
        assert_eq!(
            parse_listen("[::ffff:127.0.0.1]:2121").unwrap(),
            "127.0.0.1:2121".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::ffff:0.0.0.0]:21").unwrap(),
            "0.0.0.0:21".parse().unwrap()
        );
        assert!(parse_listen("[::1]:21").unwrap().is_ipv6());
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
        // A control or metrics port inside the passive range could never
        // be a passive one.
        for (flag, addr) in [
            ("--listen", "127.0.0.1:50010"),
            ("--metrics-listen", "127.0.0.1:50999"),
        ] {
            let e = Config::from_args(&args(&[flag, addr]), 4).unwrap_err();
            assert!(
                e.contains(&format!("includes port {} of {flag}", &addr[10..])),
                "{e}"
            );
        }
        assert!(Config::from_args(&args(&["--listen", "127.0.0.1:49999"]), 4).is_ok());
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
        // Implicit FTPS listeners too, in either spelling of the address.
        let e = Config::from_args(
            &args(&[
                "--listen-implicit",
                "[::ffff:127.0.0.1]:990",
                "--listen-implicit",
                "127.0.0.1:990",
            ]),
            1,
        )
        .unwrap_err();
        assert_eq!(e, "--listen-implicit 127.0.0.1:990 is given twice");
        // A wildcard and a specific address on one port cannot both bind
        // (without --reuse-port); other families and ports can.
        for clash in [
            ["127.0.0.1:2121", "0.0.0.0:2121"],
            ["[::]:2121", "[::1]:2121"],
        ] {
            let e = Config::from_args(&args(&["--listen", clash[0], "--listen", clash[1]]), 1)
                .unwrap_err();
            assert!(e.contains("share port 2121"), "{clash:?}: {e}");
            let mut reuse = vec!["--reuse-port"];
            reuse.extend(["--listen", clash[0], "--listen", clash[1]]);
            assert!(Config::from_args(&args(&reuse), 1).is_ok(), "{clash:?}");
        }
        for fine in [
            ["0.0.0.0:2121", "[::]:2121"],
            ["0.0.0.0:2121", "127.0.0.1:2122"],
            ["127.0.0.1:2121", "127.0.0.2:2121"],
            ["0.0.0.0:0", "127.0.0.1:0"],
        ] {
            let c = Config::from_args(&args(&["--listen", fine[0], "--listen", fine[1]]), 1);
            assert!(c.is_ok(), "{fine:?}: {c:?}");
        }
    }

    #[test]
    fn tls_flags() {
        // No certificate: no TLS, nothing required.
        let c = Config::from_args(&args(&[]), 1).unwrap();
        assert_eq!((c.tls.as_ref(), c.tls_rules), (None, TlsRules::default()));
        let cert = ["--tls-cert", "/c.pem", "--tls-key", "/k.pem"];
        let c = Config::from_args(&args(&cert), 1).unwrap();
        let t = c.tls.unwrap();
        assert!(t.session_reuse && t.ktls && !t.tls13_only);
        assert_eq!(
            c.tls_rules,
            TlsRules {
                available: true,
                required: TlsRequired::Accounts,
                data: TlsData::Required
            }
        );
        let mut more = cert.to_vec();
        more.extend_from_slice(&[
            "--tls-required",
            "all",
            "--tls-data",
            "optional",
            "--tls-min-version",
            "1.3",
            "--tls-session-reuse",
            "off",
            "--ktls",
            "off",
            "--listen-implicit",
            "127.0.0.1:9990",
        ]);
        let c = Config::from_args(&args(&more), 1).unwrap();
        let t = c.tls.unwrap();
        assert!(!t.session_reuse && !t.ktls && t.tls13_only);
        assert_eq!(c.tls_rules.required, TlsRequired::All);
        assert_eq!(c.tls_rules.data, TlsData::Optional);
        assert_eq!(c.listen_implicit, vec!["127.0.0.1:9990".parse().unwrap()]);
        for (bad, frag) in [
            (
                &["--listen-implicit", "127.0.0.1:990"][..],
                "needs --tls-cert",
            ),
            (&["--tls-required", "accounts"][..], "needs --tls-cert"),
            (&["--listen-implicit", "nonsense"][..], "--listen-implicit"),
        ] {
            let e = Config::from_args(&args(bad), 1).unwrap_err();
            assert!(e.contains(frag), "{bad:?}: {e}");
        }
        let mut same = cert.to_vec();
        same.extend_from_slice(&[
            "--listen",
            "127.0.0.1:2121",
            "--listen-implicit",
            "127.0.0.1:2121",
        ]);
        let e = Config::from_args(&args(&same), 1).unwrap_err();
        assert!(e.contains("one role"), "{e}");
        let mut wide = cert.to_vec();
        wide.extend_from_slice(&[
            "--listen",
            "0.0.0.0:2121",
            "--listen-implicit",
            "127.0.0.1:2121",
        ]);
        let e = Config::from_args(&args(&wide), 1).unwrap_err();
        assert!(
            e.contains("--listen 0.0.0.0:2121 and --listen-implicit 127.0.0.1:2121 share port"),
            "{e}"
        );
        // Two roles never share a port, --reuse-port or not.
        for metrics in ["127.0.0.1:2121", "0.0.0.0:2121"] {
            for reuse in [false, true] {
                let mut both = vec!["--listen", "127.0.0.1:2121", "--metrics-listen", metrics];
                if reuse {
                    both.push("--reuse-port");
                }
                let e = Config::from_args(&args(&both), 1).unwrap_err();
                assert!(e.contains("give each role its own port"), "{both:?}: {e}");
            }
        }
        // clap: one of the pair alone.
        assert!(crate::cli::Cli::try_parse_from(["ringftp", "serve", "--tls-cert", "/c"]).is_err());
    }

    #[test]
    fn proxy_flags() {
        assert_eq!(Config::from_args(&args(&[]), 1).unwrap().proxy, None);
        let c = Config::from_args(
            &args(&[
                "--proxy-protocol",
                "--proxy-from",
                "10.0.0.0/24",
                "--proxy-from",
                "2001:db8::1",
            ]),
            1,
        )
        .unwrap();
        let p = c.proxy.unwrap();
        assert_eq!(p.nets().len(), 2);
        assert!(p.trusts("10.0.0.7".parse().unwrap()));
        for (bad, frag) in [
            (&["--proxy-protocol"][..], "needs --proxy-from"),
            (
                &["--proxy-from", "10.0.0.0/24"][..],
                "only used with --proxy-protocol",
            ),
            (
                &["--proxy-protocol", "--proxy-from", "10.0.0.1/24"][..],
                "did you mean 10.0.0.0/24",
            ),
            (
                &["--proxy-protocol", "--proxy-from", "lb"][..],
                "--proxy-from \"lb\"",
            ),
        ] {
            let e = Config::from_args(&args(bad), 1).unwrap_err();
            assert!(e.contains(frag), "{bad:?}: {e}");
        }
    }
}
