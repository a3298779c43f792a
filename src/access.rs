//! `--allow` / `--deny`: which client networks may open a control
//! connection. Checked when a connection is accepted, before the greeting.
//!
//! The most specific matching network decides (as routing tables and
//! `--pasv-address-map` do), so `--deny 10.0.0.0/8 --allow 10.1.0.0/16`
//! lets 10.1.x.x in and keeps the rest of 10/8 out. An address no rule
//! matches is allowed when no `--allow` is given, refused otherwise. IPv4
//! clients, including those on a dual-stack `[::]` listener
//! (`::ffff:a.b.c.d`), are matched by the IPv4 rules.
//!
//! Lookups cost one hash probe per distinct prefix length in the list (a
//! thousand /24 and /32 entries are two probes), not one comparison per
//! entry.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::proto::addr::canonical_ip;

/// What a rule says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    Allow,
    Deny,
}

/// The decision for one client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A matching `--allow`, or no rule and no `--allow` list.
    Allowed(Option<IpNet>),
    /// The most specific match is this `--deny`.
    Denied(IpNet),
    /// No rule matches, and `--allow` lists only other networks.
    NotAllowed,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }

    /// Why the address was refused, for the log.
    pub fn reason(&self) -> String {
        match self {
            Decision::Allowed(_) => "allowed".into(),
            Decision::Denied(net) => format!("--deny {net}"),
            Decision::NotAllowed => "not in any --allow network".into(),
        }
    }
}

/// One address family's rules: per prefix length (longest first), the
/// masked network bits and the rule.
#[derive(Debug, Clone, Default)]
struct Family {
    levels: Vec<(u8, HashMap<u128, Rule>)>,
}

impl Family {
    fn insert(&mut self, len: u8, bits: u128, rule: Rule) -> Option<Rule> {
        let i = match self.levels.iter().position(|(l, _)| *l <= len) {
            Some(i) if self.levels[i].0 == len => i,
            Some(i) => {
                self.levels.insert(i, (len, HashMap::new()));
                i
            }
            None => {
                self.levels.push((len, HashMap::new()));
                self.levels.len() - 1
            }
        };
        self.levels[i].1.insert(bits, rule)
    }

    /// The most specific rule for `addr` (`width` bits wide), with its
    /// prefix length and network bits.
    fn lookup(&self, addr: u128, width: u8) -> Option<(u8, u128, Rule)> {
        self.levels.iter().find_map(|(len, nets)| {
            let bits = mask(addr, *len, width);
            nets.get(&bits).map(|r| (*len, bits, *r))
        })
    }
}

fn mask(addr: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let keep = u128::MAX << (width - len) as u32;
    let keep = if width == 128 {
        keep
    } else {
        keep & ((1u128 << width) - 1)
    };
    addr & keep
}

/// The access list in force.
#[derive(Debug, Clone, Default)]
pub struct AccessList {
    v4: Family,
    v6: Family,
    /// Some `--allow` is given: unmatched addresses are refused.
    allow_listed: bool,
    entries: usize,
}

/// Parses one CIDR (or a bare address: a one-host network), refusing host
/// bits set below the prefix, which are usually a typo. An IPv4-mapped
/// network (`::ffff:192.0.2.0/120`, as a dual-stack socket or a PROXY
/// header shows a client) becomes the IPv4 one (`192.0.2.0/24`): clients
/// are matched in their IPv4 form ([`canonical_ip`]), so kept as IPv6 the
/// rule would match nobody.
pub(crate) fn parse_net(flag: &str, s: &str) -> Result<IpNet, String> {
    let text = s.trim();
    let net = match text.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                return Err(format!(
                    "{flag} {s:?}: expected a network such as 192.0.2.0/24 or 2001:db8::/32, or an address"
                ))
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "{flag} {s:?}: host bits are set below the prefix; did you mean {}?",
            net.trunc()
        ));
    }
    if let IpNet::V6(n) = net {
        if let (Some(v4), Some(len)) =
            (n.network().to_ipv4_mapped(), n.prefix_len().checked_sub(96))
        {
            return Ok(IpNet::V4(
                ipnet::Ipv4Net::new(v4, len).expect("a prefix of 0 to 32"),
            ));
        }
    }
    Ok(net)
}

impl AccessList {
    /// Builds the list from the `--allow` and `--deny` values. The same
    /// network in both is an error.
    pub fn build(allow: &[String], deny: &[String]) -> Result<AccessList, String> {
        let mut list = AccessList {
            allow_listed: !allow.is_empty(),
            ..AccessList::default()
        };
        let rules = allow
            .iter()
            .map(|s| ("--allow", s, Rule::Allow))
            .chain(deny.iter().map(|s| ("--deny", s, Rule::Deny)));
        for (flag, s, rule) in rules {
            let net = parse_net(flag, s)?;
            let (family, bits) = match net {
                IpNet::V4(n) => (&mut list.v4, u32::from(n.network()) as u128),
                IpNet::V6(n) => (&mut list.v6, u128::from(n.network())),
            };
            match family.insert(net.prefix_len(), bits, rule) {
                Some(before) if before != rule => {
                    return Err(format!("{net} is given to both --allow and --deny"));
                }
                Some(_) => {}
                None => list.entries += 1,
            }
        }
        Ok(list)
    }

    /// Networks in the list.
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Whether `ip` may connect, and which rule said so.
    pub fn check(&self, ip: IpAddr) -> Decision {
        if self.entries == 0 {
            return Decision::Allowed(None);
        }
        let found = match canonical_ip(ip) {
            IpAddr::V4(a) => self
                .v4
                .lookup(u32::from(a) as u128, 32)
                .map(|(len, bits, r)| {
                    let net = ipnet::Ipv4Net::new((bits as u32).into(), len).expect("prefix <= 32");
                    (IpNet::V4(net), r)
                }),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a), 128).map(|(len, bits, r)| {
                let net = ipnet::Ipv6Net::new(bits.into(), len).expect("prefix <= 128");
                (IpNet::V6(net), r)
            }),
        };
        match found {
            Some((net, Rule::Allow)) => Decision::Allowed(Some(net)),
            Some((net, Rule::Deny)) => Decision::Denied(net),
            None if self.allow_listed => Decision::NotAllowed,
            None => Decision::Allowed(None),
        }
    }
}

/// The address a client counts as for per-address limits and bans: IPv4
/// (also when mapped into IPv6) as itself, IPv6 as its `/v6_prefix`
/// network, since one IPv6 host usually holds a whole /64.
pub(crate) fn client_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(a) => IpAddr::V6(mask(u128::from(a), v6_prefix.min(128), 128).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(allow: &[&str], deny: &[&str]) -> Result<AccessList, String> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        AccessList::build(&s(allow), &s(deny))
    }

    #[test]
    fn empty_allows_everyone() {
        let l = list(&[], &[]).unwrap();
        assert!(l.is_empty());
        assert_eq!(l.check(ip("192.0.2.1")), Decision::Allowed(None));
        assert_eq!(l.check(ip("2001:db8::1")), Decision::Allowed(None));
    }

    #[test]
    fn most_specific_wins() {
        let l = list(
            &["10.1.0.0/16", "2001:db8:1::/48"],
            &["10.0.0.0/8", "10.1.2.3", "2001:db8::/32"],
        )
        .unwrap();
        assert_eq!(l.len(), 5);
        let table = [
            ("10.1.9.9", "allowed"),
            ("10.2.0.1", "--deny 10.0.0.0/8"),
            ("10.1.2.3", "--deny 10.1.2.3/32"),
            ("::ffff:10.1.9.9", "allowed"),
            ("::ffff:10.9.9.9", "--deny 10.0.0.0/8"),
            ("192.0.2.1", "not in any --allow network"),
            ("2001:db8:1::5", "allowed"),
            ("2001:db8:2::5", "--deny 2001:db8::/32"),
            ("2001:db9::1", "not in any --allow network"),
        ];
        for (addr, want) in table {
            assert_eq!(l.check(ip(addr)).reason(), want, "{addr}");
        }
    }

    #[test]
    fn deny_only_allows_the_rest() {
        let l = list(&[], &["192.0.2.0/24", "::1"]).unwrap();
        assert!(!l.check(ip("192.0.2.200")).is_allowed());
        assert!(l.check(ip("192.0.3.1")).is_allowed());
        assert!(!l.check(ip("::1")).is_allowed());
        assert!(l.check(ip("::2")).is_allowed());
        let all = list(&[], &["0.0.0.0/0"]).unwrap();
        assert!(!all.check(ip("203.0.113.9")).is_allowed());
        assert!(all.check(ip("2001:db8::9")).is_allowed());
        // Written as the IPv4-mapped form a log shows: the IPv4 rule.
        let mapped = list(&[], &["::ffff:192.0.2.7", "::ffff:198.51.100.0/120"]).unwrap();
        for (client, allowed) in [
            ("192.0.2.7", false),
            ("::ffff:192.0.2.7", false),
            ("192.0.2.8", true),
            ("198.51.100.99", false),
            ("198.51.101.1", true),
        ] {
            assert_eq!(mapped.check(ip(client)).is_allowed(), allowed, "{client}");
        }
        let only = list(&["::ffff:0:0/96"], &[]).unwrap();
        assert!(
            only.check(ip("203.0.113.9")).is_allowed(),
            "every IPv4 client"
        );
        assert!(!only.check(ip("2001:db8::9")).is_allowed());
    }

    #[test]
    fn bad_rules() {
        for (allow, deny, frag) in [
            (&["192.0.2.1/24"][..], &[][..], "did you mean 192.0.2.0/24"),
            (&["192.0.2.0/33"][..], &[][..], "expected a network"),
            (&["nonsense"][..], &[][..], "--allow \"nonsense\""),
            (
                &[][..],
                &["2001:db8::1/32"][..],
                "did you mean 2001:db8::/32",
            ),
            (&["192.0.2.0/24"][..], &["192.0.2.0/24"][..], "both"),
        ] {
            let e = list(allow, deny).unwrap_err();
            assert!(e.contains(frag), "{allow:?} {deny:?}: {e}");
        }
        assert_eq!(
            list(&["192.0.2.0/24", "192.0.2.0/24"], &[]).unwrap().len(),
            1
        );
    }

    #[test]
    fn keys_aggregate_ipv6() {
        assert_eq!(client_key(ip("192.0.2.1"), 64), ip("192.0.2.1"));
        assert_eq!(client_key(ip("::ffff:192.0.2.1"), 64), ip("192.0.2.1"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1"), 48),
            ip("2001:db8:1::")
        );
        assert_eq!(client_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(client_key(ip("2001:db8::1"), 0), ip("::"));
    }

    #[test]
    fn a_thousand_entries() {
        let deny: Vec<String> = (0..1000u32)
            .map(|i| format!("198.{}.{}.0/24", 18 + (i >> 8), i & 255))
            .collect();
        let l = AccessList::build(&[], &deny).unwrap();
        assert_eq!(l.len(), 1000);
        assert!(!l.check(ip("198.18.5.77")).is_allowed());
        assert!(l.check(ip("198.30.0.1")).is_allowed());
    }
}
