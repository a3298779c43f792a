//! Address codecs for the data channel, in both directions: PORT and EPRT
//! arguments (RFC 959, RFC 2428) and the texts of the 227 (PASV) and 229
//! (EPSV) replies.
//!
//! The server parses PORT/EPRT and formats 227/229; the load generator does
//! the opposite, so both directions live here and are tested against each
//! other. Parsing is strict where the RFCs are precise (EPRT) and lenient
//! where real peers are not (the 227 text, which RFC 1123 section 4.1.2.6
//! tells clients to scan for six numbers rather than match exactly).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use super::error::ParseError;

/// Parses a PORT argument `h1,h2,h3,h4,p1,p2` (RFC 959 section 4.1.2).
/// Spaces around the numbers are tolerated because some clients send
/// `"PORT 127, 0, 0, 1, 4, 5"`. Each number must be 0..=255 and the port
/// may not be 0 (nothing listens there; connecting would fail anyway).
pub fn parse_port(arg: &str) -> Result<SocketAddrV4, ParseError> {
    let mut n = [0u8; 6];
    let mut parts = arg.split(',');
    for slot in n.iter_mut() {
        let part = parts
            .next()
            .ok_or(ParseError::BadArgument("PORT needs h1,h2,h3,h4,p1,p2"))?;
        *slot = parse_byte(part.trim_matches(|c: char| c.is_ascii_whitespace()))?;
    }
    if parts.next().is_some() {
        return Err(ParseError::BadArgument("PORT needs h1,h2,h3,h4,p1,p2"));
    }
    let port = u16::from_be_bytes([n[4], n[5]]);
    if port == 0 {
        return Err(ParseError::BadArgument("port 0"));
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::new(n[0], n[1], n[2], n[3]),
        port,
    ))
}

/// One decimal 0..=255 with 1 to 3 digits; no sign, no hex.
fn parse_byte(s: &str) -> Result<u8, ParseError> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadArgument("PORT needs h1,h2,h3,h4,p1,p2"));
    }
    s.parse::<u8>()
        .map_err(|_| ParseError::BadArgument("PORT number above 255"))
}

/// Formats an address as a PORT argument: `127,0,0,1,195,80`.
pub fn format_port(addr: SocketAddrV4) -> String {
    let mut out = String::with_capacity(PORT_ARG_MAX);
    push_port(&mut out, addr);
    out
}

/// The longest PORT argument: six numbers of three digits, five commas.
const PORT_ARG_MAX: usize = 6 * 3 + 5;

/// Appends `addr` as a PORT argument (see [`format_port`]).
fn push_port(out: &mut String, addr: SocketAddrV4) {
    let [h1, h2, h3, h4] = addr.ip().octets();
    let [p1, p2] = addr.port().to_be_bytes();
    // Writing to a String cannot fail.
    let _ = write!(out, "{h1},{h2},{h3},{h4},{p1},{p2}");
}

/// Parses an EPRT argument (RFC 2428 section 2): `<d><net-prt><d><net-addr><d><tcp-port><d>`,
/// e.g. `|1|132.235.1.2|6275|` or `|2|::1|5282|`. The delimiter is the
/// first character and may be any of ASCII 33..=126 (the RFC only
/// recommends `|`). A net-prt other than 1 or 2 gives
/// [`ParseError::NetworkProtocol`] so the server answers 522 as the RFC
/// asks; the address must be of the family net-prt names; the port must be
/// 1..=65535.
pub fn parse_eprt(arg: &str) -> Result<SocketAddr, ParseError> {
    const SHAPE: ParseError = ParseError::BadArgument("EPRT needs |proto|address|port|");
    let delim = match arg.as_bytes().first() {
        Some(&d) if (33..=126).contains(&d) => d as char,
        _ => return Err(SHAPE),
    };
    let mut fields = arg[1..].split(delim);
    let (Some(proto), Some(host), Some(port), Some(""), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(SHAPE);
    };
    if proto.is_empty() || !proto.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SHAPE);
    }
    let ip = match proto {
        "1" => IpAddr::V4(host.parse::<Ipv4Addr>().map_err(|_| bad_host(host))?),
        "2" => IpAddr::V6(host.parse::<Ipv6Addr>().map_err(|_| bad_host(host))?),
        _ => return Err(ParseError::NetworkProtocol),
    };
    let port = parse_tcp_port(port).ok_or(ParseError::BadArgument("EPRT port not 1..65535"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Distinguishes "wrong family for net-prt" from plain garbage, so the log
/// says which mistake the client made.
fn bad_host(host: &str) -> ParseError {
    if host.parse::<IpAddr>().is_ok() {
        ParseError::BadArgument("EPRT address family does not match protocol")
    } else {
        ParseError::BadArgument("EPRT address is not an IP address")
    }
}

/// A TCP port 1..=65535 in plain decimal (1 to 5 digits, no sign).
fn parse_tcp_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

/// Formats an address as an EPRT argument: `|1|1.2.3.4|5|` or `|2|::1|5|`.
/// An IPv6 scope id is not representable in EPRT and is left out.
pub fn format_eprt(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("|1|{}|{}|", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("|2|{}|{}|", a.ip(), a.port()),
    }
}

/// The text of a 227 reply: `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`,
/// the form RFC 959 shows and every client scans for.
pub fn format_pasv_reply(addr: SocketAddrV4) -> String {
    const HEAD: &str = "Entering Passive Mode (";
    // One allocation of the longest text: this is every PASV's reply.
    let mut out = String::with_capacity(HEAD.len() + PORT_ARG_MAX + 2);
    out.push_str(HEAD);
    push_port(&mut out, addr);
    out.push_str(").");
    out
}

/// The text of a 229 reply (RFC 2428 section 3):
/// `Entering Extended Passive Mode (|||port|)`.
pub fn format_epsv_reply(port: u16) -> String {
    format!("Entering Extended Passive Mode (|||{port}|)")
}

/// Client side: finds the address in a 227 reply text. RFC 1123 section
/// 4.1.2.6 says the 227 format is not standardised and clients must scan
/// for the first run of six comma-separated numbers, with or without
/// parentheses (servers send `(h1,...)`, `=h1,...` or bare numbers). Spaces
/// around the commas are tolerated. Returns `None` when there is no such
/// run or the port is 0.
pub fn parse_pasv_reply(text: &str) -> Option<SocketAddrV4> {
    let b = text.as_bytes();
    (0..b.len())
        .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
        .find_map(|i| six_numbers_at(b, i))
}

/// Six numbers 0..=255 separated by commas (optionally padded by spaces),
/// starting exactly at `i`.
fn six_numbers_at(b: &[u8], mut i: usize) -> Option<SocketAddrV4> {
    let skip_spaces = |i: &mut usize| {
        while b.get(*i) == Some(&b' ') {
            *i += 1;
        }
    };
    let mut n = [0u8; 6];
    for (k, slot) in n.iter_mut().enumerate() {
        if k > 0 {
            skip_spaces(&mut i);
            if b.get(i) != Some(&b',') {
                return None;
            }
            i += 1;
            skip_spaces(&mut i);
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start == 3 {
                return None; // four digits: not a byte
            }
            v = v * 10 + u32::from(d - b'0');
            i += 1;
        }
        if i == start {
            return None;
        }
        *slot = u8::try_from(v).ok()?;
    }
    let port = u16::from_be_bytes([n[4], n[5]]);
    (port != 0).then(|| SocketAddrV4::new(Ipv4Addr::new(n[0], n[1], n[2], n[3]), port))
}

/// Client side: finds the port in a 229 reply text, `(|||6446|)`. RFC 2428
/// lets the server pick any delimiter in ASCII 33..=126, so this looks for
/// three equal non-digit delimiters, 1 to 5 digits and the delimiter again.
/// Returns `None` when there is no such run or the port is out of range.
pub fn parse_epsv_reply(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    (0..b.len()).find_map(|i| {
        let d = b[i];
        if !(33..=126).contains(&d) || d.is_ascii_digit() {
            return None;
        }
        if b.get(i + 1) != Some(&d) || b.get(i + 2) != Some(&d) {
            return None;
        }
        let digits_start = i + 3;
        let len = b[digits_start..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if b.get(digits_start + len) != Some(&d) {
            return None;
        }
        // The slice is ASCII digits, so it is valid UTF-8.
        parse_tcp_port(std::str::from_utf8(&b[digits_start..digits_start + len]).ok()?)
    })
}

// ---------------------------------------------------------------------------
// RFC 2577 host comparison
// ---------------------------------------------------------------------------

/// The address as IPv4 if it is one, or an IPv4-mapped IPv6 address; so
/// that `::ffff:1.2.3.4` and `1.2.3.4` compare equal in the RFC 2577 checks.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// True when two addresses name the same host for the RFC 2577 checks.
pub fn same_host(a: IpAddr, b: IpAddr) -> bool {
    canonical_ip(a) == canonical_ip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(a), port)
    }

    #[test]
    fn parse_port_table() {
        let ok: &[(&str, SocketAddrV4)] = &[
            ("127,0,0,1,195,80", v4([127, 0, 0, 1], 50000)),
            ("10,1,2,3,0,21", v4([10, 1, 2, 3], 21)),
            ("255,255,255,255,255,255", v4([255; 4], 65535)),
            ("0,0,0,0,0,1", v4([0; 4], 1)),
            // Spaces (and tabs) around numbers: some clients pad them.
            ("127, 0, 0, 1, 4, 5", v4([127, 0, 0, 1], 1029)),
            (" 127 ,0 ,0 ,1 ,4 ,5 ", v4([127, 0, 0, 1], 1029)),
            ("127,\t0,0,1,4,5", v4([127, 0, 0, 1], 1029)),
            ("001,002,003,004,000,010", v4([1, 2, 3, 4], 10)),
        ];
        for (arg, want) in ok {
            assert_eq!(parse_port(arg), Ok(*want), "{arg:?}");
        }
        let bad: &[&str] = &[
            "",
            "127,0,0,1,195",
            "127,0,0,1,195,80,1",
            "127,0,0,1,195,",
            "127,0,0,1,,80",
            "256,0,0,1,195,80",
            "127,0,0,1,195,256",
            "127,0,0,1,0,0", // port 0
            "1000,0,0,1,1,1",
            "0127,0,0,1,1,1",
            "-1,0,0,1,1,1",
            "+1,0,0,1,1,1",
            "a,b,c,d,e,f",
            "127.0.0.1,195,80",
            "(127,0,0,1,195,80)",
            "1 27,0,0,1,195,80",
            "127;0;0;1;195;80",
        ];
        for arg in bad {
            assert!(
                matches!(parse_port(arg), Err(ParseError::BadArgument(_))),
                "{arg:?} -> {:?}",
                parse_port(arg)
            );
        }
    }

    #[test]
    fn port_round_trip() {
        for a in [
            v4([127, 0, 0, 1], 50000),
            v4([192, 168, 255, 1], 1),
            v4([0, 0, 0, 0], 65535),
            v4([1, 2, 3, 4], 256),
        ] {
            assert_eq!(parse_port(&format_port(a)), Ok(a));
        }
        assert_eq!(format_port(v4([127, 0, 0, 1], 50000)), "127,0,0,1,195,80");
    }

    #[test]
    fn parse_eprt_table() {
        let ok: &[(&str, SocketAddr)] = &[
            ("|1|132.235.1.2|6275|", "132.235.1.2:6275".parse().unwrap()),
            (
                "|2|1080::8:800:200C:417A|5282|",
                "[1080::8:800:200c:417a]:5282".parse().unwrap(),
            ),
            ("|2|::1|5282|", "[::1]:5282".parse().unwrap()),
            (
                "|2|::ffff:1.2.3.4|21|",
                "[::ffff:1.2.3.4]:21".parse().unwrap(),
            ),
            // Any delimiter in 33..=126 (RFC 2428 only recommends '|').
            ("!1!10.0.0.1!65535!", "10.0.0.1:65535".parse().unwrap()),
            ("~2~fe80::1~1~", "[fe80::1]:1".parse().unwrap()),
            // ':' as delimiter can still carry an IPv4 address.
            (":1:10.0.0.1:21:", "10.0.0.1:21".parse().unwrap()),
        ];
        for (arg, want) in ok {
            assert_eq!(parse_eprt(arg), Ok(*want), "{arg:?}");
        }
        let bad: &[&str] = &[
            "",
            "|",
            "||||",
            "|1|132.235.1.2|6275",   // missing final delimiter
            "|1|132.235.1.2|6275||", // extra field
            "|1|132.235.1.2|",
            "|1|132.235.1.2|0|",
            "|1|132.235.1.2|65536|",
            "|1|132.235.1.2|-1|",
            "|1|132.235.1.2|+21|",
            "|1|132.235.1.2| 21|",
            "|1|132.235.1.2|http|",
            "|1|::1|5282|",         // family does not match net-prt
            "|2|132.235.1.2|5282|", // family does not match net-prt
            "|1|256.1.1.1|21|",
            "|1|example.com|21|",
            "|1||21|",
            "|2|fe80::1%eth0|21|", // scope ids are not part of EPRT
            "||132.235.1.2|6275|", // empty net-prt
            "|x|132.235.1.2|6275|",
            " |1|1.2.3.4|5|", // space is not a valid delimiter
            "\u{7f}1\u{7f}1.2.3.4\u{7f}5\u{7f}",
            "|1!1.2.3.4!5!", // mixed delimiters
        ];
        for arg in bad {
            assert!(
                matches!(parse_eprt(arg), Err(ParseError::BadArgument(_))),
                "{arg:?} -> {:?}",
                parse_eprt(arg)
            );
        }
        for arg in [
            "|3|1.2.3.4|5|",
            "|0|1.2.3.4|5|",
            "|12|::1|5|",
            "|99999999999|x|5|",
        ] {
            assert_eq!(parse_eprt(arg), Err(ParseError::NetworkProtocol), "{arg:?}");
        }
    }

    #[test]
    fn eprt_family_mismatch_reason() {
        assert_eq!(
            parse_eprt("|1|::1|5|"),
            Err(ParseError::BadArgument(
                "EPRT address family does not match protocol"
            ))
        );
        assert_eq!(
            parse_eprt("|1|nope|5|"),
            Err(ParseError::BadArgument("EPRT address is not an IP address"))
        );
    }

    #[test]
    fn eprt_round_trip() {
        let addrs: &[SocketAddr] = &[
            "1.2.3.4:5".parse().unwrap(),
            "[::1]:5".parse().unwrap(),
            "[2001:db8::1]:65535".parse().unwrap(),
        ];
        for a in addrs {
            assert_eq!(parse_eprt(&format_eprt(*a)), Ok(*a));
        }
        assert_eq!(format_eprt("1.2.3.4:5".parse().unwrap()), "|1|1.2.3.4|5|");
        assert_eq!(format_eprt("[::1]:5".parse().unwrap()), "|2|::1|5|");
        // A scope id cannot travel in EPRT: it is dropped, not garbled.
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            21,
            0,
            3,
        ));
        assert_eq!(format_eprt(scoped), "|2|fe80::1|21|");
    }

    #[test]
    fn pasv_reply_format() {
        assert_eq!(
            format_pasv_reply(v4([192, 168, 1, 2], 50000)),
            "Entering Passive Mode (192,168,1,2,195,80)."
        );
        assert_eq!(
            format_epsv_reply(6446),
            "Entering Extended Passive Mode (|||6446|)"
        );
    }

    #[test]
    fn parse_pasv_reply_table() {
        let a = v4([192, 168, 1, 2], 50000);
        let ok: &[(&str, SocketAddrV4)] = &[
            ("Entering Passive Mode (192,168,1,2,195,80).", a),
            ("Entering Passive Mode (192,168,1,2,195,80)", a),
            // Without parentheses (RFC 1123: scan for the numbers).
            ("Entering Passive Mode 192,168,1,2,195,80", a),
            ("Entering Passive Mode=192,168,1,2,195,80", a),
            ("192,168,1,2,195,80", a),
            ("Passive (192, 168, 1, 2, 195, 80)", a),
            // Numbers that are not the address come first and are skipped.
            ("Entering Passive Mode 2 (192,168,1,2,195,80)", a),
            ("1,2,3 then (192,168,1,2,195,80)", a),
            ("1234,168,1,2,195,80 x (192,168,1,2,195,80)", a),
            ("(300,1,1,1,1,1) (192,168,1,2,195,80)", a),
            // A seventh number is ignored.
            ("(192,168,1,2,195,80,7)", a),
        ];
        for (text, want) in ok {
            assert_eq!(parse_pasv_reply(text), Some(*want), "{text:?}");
        }
        let bad: &[&str] = &[
            "",
            "Entering Passive Mode",
            "Entering Passive Mode (192,168,1,2,195)",
            "(192,168,1,2,195,)",
            "(256,168,1,2,195,80)",
            "(192,168,1,2,0,0)",
            "(1920,168,1,2,195,80)",
            "(192;168;1;2;195;80)",
            "(192.168.1.2.195.80)",
        ];
        for text in bad {
            assert_eq!(parse_pasv_reply(text), None, "{text:?}");
        }
        assert_eq!(parse_pasv_reply(&format_pasv_reply(a)), Some(a));
    }

    #[test]
    fn parse_epsv_reply_table() {
        let ok: &[(&str, u16)] = &[
            ("Entering Extended Passive Mode (|||6446|)", 6446),
            ("Entering Extended Passive Mode (|||6446|).", 6446),
            ("(!!!1!)", 1),
            ("(###65535#)", 65535),
            ("|||21|", 21),
            ("EPSV ok (||||6446|)", 6446),
        ];
        for (text, want) in ok {
            assert_eq!(parse_epsv_reply(text), Some(*want), "{text:?}");
        }
        let bad: &[&str] = &[
            "",
            "Entering Extended Passive Mode",
            "(|||0|)",
            "(|||65536|)",
            "(|||123456|)",
            "(|||6446)",
            "(|||6446!)",
            "(||6446|)",
            "(|!|6446|)",
            "(   6446 )", // space is not a valid delimiter
            "(111222|)",
            "(|||-1|)",
        ];
        for text in bad {
            assert_eq!(parse_epsv_reply(text), None, "{text:?}");
        }
        assert_eq!(parse_epsv_reply(&format_epsv_reply(50000)), Some(50000));
    }
}
