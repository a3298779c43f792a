//! Which IPv4 address a 227 (PASV) reply announces, chosen by the client's
//! address: split horizon for a server behind NAT.
//!
//! Outside clients must be told the public address the NAT router forwards
//! (`--pasv-address`); clients on the server's own LAN must be told its
//! private address, because the router does not loop their connections back
//! (`--pasv-address-map 192.0.2.0/24=192.0.2.10`). The most specific network
//! that contains the client wins; a client in no network gets
//! `--pasv-address`; with neither, the driver announces the control
//! connection's local address.
//!
//! Only IPv4 networks can be given: a 227 reply carries an IPv4 address and
//! is only sent on IPv4 control connections (IPv6 clients use EPSV, which
//! carries no address at all), so an IPv6 network could never match. An
//! IPv4-mapped client address (`::ffff:192.0.2.7`) is matched as the IPv4
//! address it is.
//!
//! Everything here is pure except [`resolve_name`] (the system resolver):
//! tables are built and re-resolved with the resolver passed in, so they are
//! tested without DNS. [`Announcer`] is the live copy shared by all shards —
//! read once per PASV, replaced whole when SIGHUP re-resolves the names.
//! This lives under `data/` because it decides where a client will open its
//! data connection; `config` only calls it to validate the flags.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::sync::{Arc, RwLock};

use crate::proto::addr::canonical_ip;

/// Resolves names to the IPv4 address to announce.
pub(crate) type Resolver<'a> = &'a dyn Fn(&str) -> Result<Ipv4Addr, String>;

/// An IPv4 network: an address with its host bits clear, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// Parses `A.B.C.D/N` (0 <= N <= 32) or a bare address (a single host,
    /// /32). Host bits must be clear: `192.0.2.7/24` is refused (with the
    /// network it probably meant) rather than silently widened.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net = match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => a,
            Ok(IpAddr::V6(_)) => {
                return Err(format!(
                    "{s:?}: an IPv6 network never matches: 227 replies are only sent to IPv4 clients (IPv6 clients use EPSV, which announces no address)"
                ))
            }
            Err(_) => {
                return Err(format!(
                    "{s:?}: expected an IPv4 network such as 192.0.2.0/24"
                ))
            }
        };
        let prefix = match prefix {
            None => 32,
            // Digits only: Rust's integer parser would take "+8".
            Some(p) => Some(p)
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u8>().ok())
                .filter(|&p| p <= 32)
                .ok_or_else(|| format!("{s:?}: {p:?} is not a prefix length (0-32 for IPv4)"))?,
        };
        let cidr = Cidr {
            net: Ipv4Addr::from(u32::from(net) & mask(prefix)),
            prefix,
        };
        if cidr.net != net {
            return Err(format!("{s:?}: host bits are set; did you mean {cidr}?"));
        }
        Ok(cidr)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.net)
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - p),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// What an address to announce is written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(Ipv4Addr),
    /// Resolved at start-up and again on SIGHUP (a dynamic-DNS name).
    Name(String),
}

impl Target {
    /// An IPv4 literal, or anything else as a host name. An IPv6 literal
    /// is refused: a 227 reply cannot carry it.
    pub fn parse(s: &str) -> Result<Target, String> {
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Ok(Target::Addr(a)),
            Ok(IpAddr::V6(_)) => Err(format!(
                "{s:?}: a 227 reply can only carry an IPv4 address (IPv6 clients use EPSV, which needs none)"
            )),
            Err(_) if s.is_empty() => Err("an empty address".into()),
            // A number in inet_aton's loose forms that is no dotted quad:
            // the resolver would read `1.2.3` as 1.2.0.3 and `0x7f.1` as
            // 127.0.0.1, not what was meant.
            Err(_) if loose_number(s) => Err(format!(
                "{s:?} is not an IPv4 address (four numbers 0-255, e.g. 203.0.113.10)"
            )),
            Err(_) => Ok(Target::Name(s.to_string())),
        }
    }

    /// The address to announce; refused when no client could connect to
    /// it: 0.0.0.0, the broadcast address, a multicast one.
    fn resolve(&self, resolve: Resolver) -> Result<Ipv4Addr, String> {
        let a = match self {
            Target::Addr(a) => *a,
            Target::Name(n) => resolve(n)?,
        };
        let why = if a.is_unspecified() {
            "the unspecified address"
        } else if a.is_broadcast() {
            "the broadcast address"
        } else if a.is_multicast() {
            "a multicast address"
        } else {
            return Ok(a);
        };
        Err(format!(
            "{a} is {why}: a client cannot connect to it; give the address clients reach this server at"
        ))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name(n) => f.write_str(n),
        }
    }
}

/// Whether `s` is an address in inet_aton(3)'s loose forms: one to four
/// dot-separated numbers, each decimal, octal (a leading 0) or hex (`0x`).
/// A host name always has a part that is none of these.
fn loose_number(s: &str) -> bool {
    s.split('.').all(|part| {
        let hex = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X"));
        match hex {
            Some(h) => !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
            None => !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()),
        }
    })
}

/// Resolves `name` with the system resolver (/etc/hosts, DNS) to its first
/// IPv4 address.
pub(crate) fn resolve_name(name: &str) -> Result<Ipv4Addr, String> {
    let addrs = (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {name:?}: {e}"))?;
    addrs
        .filter_map(|a| match a.ip() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("{name:?} has no IPv4 address"))
}

/// One rule: clients in `net` (`None`: every other client, the
/// `--pasv-address`) are told `addr`, which is what `target` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub net: Option<Cidr>,
    pub target: Target,
    pub addr: Ipv4Addr,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.net {
            Some(n) => write!(f, "--pasv-address-map {n}={}", self.target),
            None => write!(f, "--pasv-address {}", self.target),
        }
    }
}

/// The validated rules, most specific network first and the default last,
/// so the first rule that contains the client is the longest-prefix match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceTable {
    rules: Vec<Rule>,
}

impl AnnounceTable {
    /// Builds the table from `--pasv-address-map CIDR=ADDR` entries and
    /// `--pasv-address`, resolving every name now. Every error names the
    /// flag and the value.
    pub fn build(
        map: &[String],
        default: Option<&str>,
        resolve: Resolver,
    ) -> Result<AnnounceTable, String> {
        let mut rules: Vec<Rule> = Vec::new();
        for entry in map {
            let flag = format!("--pasv-address-map {entry:?}");
            let (net, target) = entry.split_once('=').ok_or_else(|| {
                format!("{flag}: expected CIDR=ADDR, e.g. 192.0.2.0/24=192.0.2.10")
            })?;
            let net = Cidr::parse(net.trim()).map_err(|e| format!("{flag}: {e}"))?;
            if let Some(earlier) = rules.iter().find(|r| r.net == Some(net)) {
                return Err(format!(
                    "{flag}: the network {net} is already mapped ({earlier}); give each network once"
                ));
            }
            let target = Target::parse(target.trim()).map_err(|e| format!("{flag}: {e}"))?;
            let addr = target
                .resolve(resolve)
                .map_err(|e| format!("{flag}: {e}"))?;
            rules.push(Rule {
                net: Some(net),
                target,
                addr,
            });
        }
        if let Some(s) = default {
            let flag = format!("--pasv-address {s:?}");
            if let Some(all) = rules.iter().find(|r| r.net.is_some_and(|n| n.prefix == 0)) {
                return Err(format!(
                    "{flag}: {all} already matches every client, so --pasv-address would never be used; give only one of them"
                ));
            }
            let target = Target::parse(s).map_err(|e| format!("{flag}: {e}"))?;
            let addr = target
                .resolve(resolve)
                .map_err(|e| format!("{flag}: {e}"))?;
            rules.push(Rule {
                net: None,
                target,
                addr,
            });
        }
        // Stable: the default (no network) sorts last.
        rules.sort_by_key(|r| std::cmp::Reverse(r.net.map(|n| n.prefix as i16).unwrap_or(-1)));
        Ok(AnnounceTable { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule is a name (worth re-resolving on SIGHUP).
    pub fn has_names(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.target, Target::Name(_)))
    }

    /// The address to announce to `client`; `None` means "no rule: use the
    /// control connection's local address".
    pub fn lookup(&self, client: IpAddr) -> Option<Ipv4Addr> {
        let v4 = match canonical_ip(client) {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        };
        self.rules
            .iter()
            .find(|r| match (r.net, v4) {
                (None, _) => true,
                (Some(n), Some(a)) => n.contains(a),
                (Some(_), None) => false,
            })
            .map(|r| r.addr)
    }

    /// The same rules with every name resolved again. A name that no longer
    /// resolves keeps its old address; the outcome says so for each name.
    pub fn reresolved(&self, resolve: Resolver) -> (AnnounceTable, Vec<Reresolved>) {
        let mut out = Vec::new();
        let rules = self
            .rules
            .iter()
            .map(|r| {
                let Target::Name(_) = r.target else {
                    return r.clone();
                };
                let addr = match r.target.resolve(resolve) {
                    Ok(new) if new == r.addr => {
                        out.push(Reresolved::Same(r.clone()));
                        new
                    }
                    Ok(new) => {
                        out.push(Reresolved::Changed {
                            rule: r.clone(),
                            new,
                        });
                        new
                    }
                    Err(error) => {
                        out.push(Reresolved::Failed {
                            rule: r.clone(),
                            error,
                        });
                        r.addr
                    }
                };
                Rule { addr, ..r.clone() }
            })
            .collect();
        (AnnounceTable { rules }, out)
    }
}

/// What re-resolving one name did (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reresolved {
    Same(Rule),
    Changed {
        rule: Rule,
        new: Ipv4Addr,
    },
    /// The old address stays in force.
    Failed {
        rule: Rule,
        error: String,
    },
}

impl fmt::Display for Reresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reresolved::Same(r) => write!(f, "{r}: still {}", r.addr),
            Reresolved::Changed { rule, new } => write!(f, "{rule}: {} -> {new}", rule.addr),
            Reresolved::Failed { rule, error } => {
                write!(f, "{rule}: {error}; keeping {}", rule.addr)
            }
        }
    }
}

/// The table in force, shared by all shards. A PASV takes one uncontended
/// read lock; SIGHUP swaps in a re-resolved table whole, so a session never
/// sees half of an update.
#[derive(Debug)]
pub(crate) struct Announcer {
    current: RwLock<Arc<AnnounceTable>>,
}

impl Announcer {
    pub(crate) fn new(table: AnnounceTable) -> Announcer {
        Announcer {
            current: RwLock::new(Arc::new(table)),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<AnnounceTable> {
        self.current.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// The address to announce to `client` now (see [`AnnounceTable::lookup`]).
    pub(crate) fn for_client(&self, client: IpAddr) -> Option<Ipv4Addr> {
        self.current.read().ok().and_then(|t| t.lookup(client))
    }

    /// Puts `table` in force whole (SIGHUP with changed --pasv-address
    /// flags).
    pub(crate) fn replace(&self, table: AnnounceTable) {
        if let Ok(mut g) = self.current.write() {
            *g = Arc::new(table);
        }
    }

    /// Re-resolves every name (blocking: call it off the shards) and puts
    /// the result in force.
    pub(crate) fn reresolve(&self, resolve: Resolver) -> Vec<Reresolved> {
        let (table, outcome) = self.snapshot().reresolved(resolve);
        if let Ok(mut g) = self.current.write() {
            *g = Arc::new(table);
        }
        outcome
    }
}

/// The IPv4 address a 227 reply announces, given the control connection's
/// local address and what the table names for this client
/// ([`Announcer::for_client`]): the table's address, else the local one.
/// `None` when the control connection is IPv6 proper: a 227 carries IPv4
/// only (RFC 2428 brought EPSV for IPv6), and the listener is bound on the
/// control connection's local address, so PASV needs an IPv4 (or
/// IPv4-mapped) control connection.
pub(crate) fn pasv_address(local: IpAddr, announced: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
    let local = match local {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => v6.to_ipv4_mapped()?,
    };
    Some(announced.unwrap_or(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// A resolver that knows a few names and nothing else.
    fn fake(name: &str) -> Result<Ipv4Addr, String> {
        match name {
            "ftp.example.test" => Ok(v4("203.0.113.10")),
            "lan.example.test" => Ok(v4("192.0.2.10")),
            _ => Err(format!("cannot resolve {name:?}: no such name")),
        }
    }

    fn map(entries: &[&str], default: Option<&str>) -> Result<AnnounceTable, String> {
        let entries: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AnnounceTable::build(&entries, default, &fake)
    }

    #[test]
    fn cidrs() {
        type Want = Result<(&'static str, u8), &'static str>;
        let table: &[(&str, Want)] = &[
            ("192.0.2.0/24", Ok(("192.0.2.0", 24))),
            ("0.0.0.0/0", Ok(("0.0.0.0", 0))),
            ("192.0.2.7/32", Ok(("192.0.2.7", 32))),
            ("192.0.2.7", Ok(("192.0.2.7", 32))),
            ("10.0.0.0/8", Ok(("10.0.0.0", 8))),
            ("198.51.100.128/25", Ok(("198.51.100.128", 25))),
            ("192.0.2.7/24", Err("did you mean 192.0.2.0/24")),
            ("192.0.2.0/33", Err("not a prefix length")),
            ("192.0.2.0/", Err("not a prefix length")),
            ("192.0.2.0/-1", Err("not a prefix length")),
            ("192.0.2.0/+8", Err("not a prefix length")),
            ("192.0.2.0/24/1", Err("not a prefix length")),
            ("192.0.2/24", Err("expected an IPv4 network")),
            ("lan/24", Err("expected an IPv4 network")),
            ("", Err("expected an IPv4 network")),
            ("2001:db8::/32", Err("IPv6 network never matches")),
            ("::ffff:192.0.2.0/120", Err("IPv6 network never matches")),
        ];
        for (input, want) in table {
            match (Cidr::parse(input), want) {
                (Ok(c), Ok((net, prefix))) => {
                    assert_eq!((c.net, c.prefix), (v4(net), *prefix), "{input}")
                }
                (Err(e), Err(frag)) => assert!(e.contains(frag), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn contains() {
        let table: &[(&str, &str, bool)] = &[
            ("192.0.2.0/24", "192.0.2.0", true),
            ("192.0.2.0/24", "192.0.2.255", true),
            ("192.0.2.0/24", "192.0.3.0", false),
            ("192.0.2.0/24", "192.0.1.255", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("198.51.100.128/25", "198.51.100.127", false),
            ("198.51.100.128/25", "198.51.100.128", true),
        ];
        for (net, addr, want) in table {
            assert_eq!(
                Cidr::parse(net).unwrap().contains(v4(addr)),
                *want,
                "{net} contains {addr}"
            );
        }
    }

    #[test]
    fn most_specific_network_wins() {
        let t = map(
            &[
                "192.0.0.0/16=192.0.2.1",
                "192.0.2.0/24=192.0.2.10",
                "192.0.2.128/25=192.0.2.200",
                "192.0.2.99=192.0.2.99",
            ],
            Some("203.0.113.10"),
        )
        .unwrap();
        // (client, announced)
        let table: &[(&str, Option<&str>)] = &[
            ("192.0.2.5", Some("192.0.2.10")),
            ("192.0.2.99", Some("192.0.2.99")),
            ("192.0.2.130", Some("192.0.2.200")),
            ("192.0.7.1", Some("192.0.2.1")),
            ("198.51.100.20", Some("203.0.113.10")),
            // An IPv4-mapped client is matched as IPv4.
            ("::ffff:192.0.2.5", Some("192.0.2.10")),
            // An IPv6 client matches no network, only the default.
            ("2001:db8::5", Some("203.0.113.10")),
        ];
        for (client, want) in table {
            assert_eq!(t.lookup(ip(client)), want.map(v4), "announced to {client}");
        }
        // The order the flags were given in does not matter.
        let reversed = map(
            &[
                "192.0.2.99=192.0.2.99",
                "192.0.2.128/25=192.0.2.200",
                "192.0.2.0/24=192.0.2.10",
                "192.0.0.0/16=192.0.2.1",
            ],
            Some("203.0.113.10"),
        )
        .unwrap();
        assert_eq!(reversed, t);
    }

    #[test]
    fn without_a_default_unmatched_clients_get_none() {
        let t = map(&["192.0.2.0/24=192.0.2.10"], None).unwrap();
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(v4("192.0.2.10")));
        assert_eq!(t.lookup(ip("203.0.113.1")), None);
        let empty = map(&[], None).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.lookup(ip("192.0.2.1")), None);
        // A /0 entry is a default of its own.
        let all = map(&["0.0.0.0/0=203.0.113.10"], None).unwrap();
        assert_eq!(all.lookup(ip("8.8.8.8")), Some(v4("203.0.113.10")));
    }

    #[test]
    fn build_errors_name_the_flag_and_value() {
        let table: &[(&[&str], Option<&str>, &[&str])] = &[
            (
                &["192.0.2.0/24"],
                None,
                &["--pasv-address-map \"192.0.2.0/24\"", "CIDR=ADDR"],
            ),
            (
                &["192.0.2.0/24="],
                None,
                &["--pasv-address-map", "empty address"],
            ),
            (
                &["192.0.2.1/24=192.0.2.10"],
                None,
                &["did you mean 192.0.2.0/24"],
            ),
            (
                &["2001:db8::/32=192.0.2.10"],
                None,
                &["IPv6 network never matches"],
            ),
            (&["192.0.2.0/24=2001:db8::1"], None, &["IPv4 address"]),
            (
                &["192.0.2.0/24=nowhere.invalid"],
                None,
                &["cannot resolve \"nowhere.invalid\""],
            ),
            (
                &["192.0.2.0/24=192.0.2.10", " 192.0.2.0/24=192.0.2.11"],
                None,
                &["192.0.2.0/24 is already mapped", "192.0.2.0/24=192.0.2.10"],
            ),
            (
                &[],
                Some("nowhere.invalid"),
                &["--pasv-address \"nowhere.invalid\"", "cannot resolve"],
            ),
            (&[], Some("::1"), &["--pasv-address \"::1\"", "IPv4"]),
            (&[], Some(""), &["--pasv-address", "empty address"]),
            (
                &[],
                Some("1.2.3"),
                &["--pasv-address \"1.2.3\"", "not an IPv4 address"],
            ),
            (&[], Some("0x7f.1"), &["not an IPv4 address"]),
            (
                &[],
                Some("0.0.0.0"),
                &["unspecified address", "cannot connect"],
            ),
            (&[], Some("255.255.255.255"), &["broadcast address"]),
            (
                &["10.0.0.0/8=224.0.0.1"],
                None,
                &["--pasv-address-map", "multicast"],
            ),
            (
                &["0.0.0.0/0=192.0.2.10"],
                Some("203.0.113.10"),
                &["matches every client", "--pasv-address would never be used"],
            ),
        ];
        for (entries, default, frags) in table {
            let e = map(entries, *default).unwrap_err();
            for f in *frags {
                assert!(e.contains(f), "{entries:?} {default:?}: {e:?} lacks {f:?}");
            }
        }
    }

    #[test]
    fn names_resolve_at_build_and_again_later() {
        let t = map(&["192.0.2.0/24=lan.example.test"], Some("ftp.example.test")).unwrap();
        assert!(t.has_names());
        assert_eq!(t.lookup(ip("198.51.100.1")), Some(v4("203.0.113.10")));
        assert_eq!(t.lookup(ip("192.0.2.1")), Some(v4("192.0.2.10")));
        assert!(!map(&["192.0.2.0/24=192.0.2.10"], Some("203.0.113.10"))
            .unwrap()
            .has_names());

        // The public name moves; the LAN name stops resolving.
        let moved = |name: &str| match name {
            "ftp.example.test" => Ok(v4("203.0.113.11")),
            n => Err(format!("cannot resolve {n:?}: gone")),
        };
        let (t2, outcome) = t.reresolved(&moved);
        assert_eq!(t2.lookup(ip("198.51.100.1")), Some(v4("203.0.113.11")));
        // A failed name keeps its old address.
        assert_eq!(t2.lookup(ip("192.0.2.1")), Some(v4("192.0.2.10")));
        let text: Vec<String> = outcome.iter().map(|o| o.to_string()).collect();
        assert_eq!(
            text,
            [
                "--pasv-address-map 192.0.2.0/24=lan.example.test: cannot resolve \"lan.example.test\": gone; keeping 192.0.2.10",
                "--pasv-address ftp.example.test: 203.0.113.10 -> 203.0.113.11",
            ]
        );
        let (t3, outcome) = t2.reresolved(&moved);
        assert_eq!(t3, t2);
        assert!(matches!(outcome[1], Reresolved::Same(_)), "{outcome:?}");
    }

    #[test]
    fn announcer_swaps_the_table_whole() {
        let a = Announcer::new(map(&[], Some("ftp.example.test")).unwrap());
        assert_eq!(a.for_client(ip("198.51.100.1")), Some(v4("203.0.113.10")));
        let outcome = a.reresolve(&|_| Ok(v4("203.0.113.12")));
        assert!(
            matches!(outcome[..], [Reresolved::Changed { .. }]),
            "{outcome:?}"
        );
        assert_eq!(a.for_client(ip("198.51.100.1")), Some(v4("203.0.113.12")));
        let outcome = a.reresolve(&|_| Err("resolver down".into()));
        assert!(
            matches!(outcome[..], [Reresolved::Failed { .. }]),
            "{outcome:?}"
        );
        assert_eq!(a.for_client(ip("198.51.100.1")), Some(v4("203.0.113.12")));
    }

    #[test]
    fn system_resolver() {
        assert_eq!(resolve_name("localhost").unwrap(), Ipv4Addr::LOCALHOST);
        assert!(resolve_name("no-such-host.invalid")
            .unwrap_err()
            .contains("cannot resolve"));
    }

    #[test]
    fn pasv_address_prefers_the_table_and_needs_ipv4() {
        let table: &[(&str, Option<&str>, Option<&str>)] = &[
            ("10.0.0.5", None, Some("10.0.0.5")),
            ("10.0.0.5", Some("203.0.113.7"), Some("203.0.113.7")),
            ("::ffff:10.0.0.5", None, Some("10.0.0.5")),
            ("::ffff:10.0.0.5", Some("203.0.113.7"), Some("203.0.113.7")),
            ("::1", None, None),
            // An announced address does not make PASV work on IPv6.
            ("2001:db8::1", Some("203.0.113.7"), None),
        ];
        for (local, announced, want) in table {
            assert_eq!(
                pasv_address(ip(local), announced.map(v4)),
                want.map(v4),
                "{local} {announced:?}"
            );
        }
    }
}
