//! `--proxy-protocol`: HAProxy's PROXY protocol (v1 text and v2 binary,
//! <https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt>) on the
//! control listeners (implicit FTPS ones included) and the passive data
//! listeners, for nodes behind a layer-4 balancer (docs/scale-out.md).
//!
//! A balancer in `--proxy-from` opens each connection with a header that
//! names the client's address and port and the address the client
//! reached (the VIP). That client address is then the one every rule
//! uses: `--allow`/`--deny`, `--max-per-ip`, `--login-ban`, the RFC 2577
//! checks, `--pasv-address-map`, the logs, the xferlog and STAT. A
//! connection from any other address, or whose header is missing,
//! malformed or late (`--login-timeout`), is closed before any reply and
//! logged. A `LOCAL` (v2) or `UNKNOWN` (v1) header — what a balancer's
//! health check sends — keeps the connection's own addresses, as the
//! specification asks.
//!
//! The header is parsed by the `ppp` crate ([`parse`] is the pure part:
//! bytes in, header length and addresses out). It is read with
//! `MSG_PEEK` and then consumed to its exact length, so the bytes after
//! it (an implicit FTPS client's ClientHello, a data connection's TLS)
//! stay in the socket for whoever reads next. A balancer writes the whole
//! header at once; a header split across segments is waited for in 5 ms
//! steps until the deadline.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rustix::io::Errno;
use rustix::net::RecvFlags;
use socket2::Socket;

use crate::engine::sys::{self, FdRef};
use crate::proto::addr::canonical_ip;

/// The longest header accepted, in bytes: a v1 line is at most 107, a v2
/// header 16 plus its addresses (at most 216 for AF_UNIX) and TLVs. A
/// balancer's TLVs (unique id, TLS details) fit in far less.
pub(crate) const MAX_HEADER: usize = 4096;

/// The v2 signature (12 bytes) that starts every binary header.
const V2_SIGNATURE: &[u8] = ppp::v2::PROTOCOL_PREFIX;
/// The fixed part of a v2 header: signature, version and command, family
/// and protocol, and the 16-bit length of the rest.
const V2_FIXED: usize = 16;
/// What starts every v1 header.
const V1_PREFIX: &[u8] = b"PROXY ";

/// How long to wait between looks at a header that arrived in pieces.
const PARTIAL_STEP: Duration = Duration::from_millis(5);

/// `--proxy-from`: the balancers allowed to send a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyFrom {
    nets: Vec<IpNet>,
}

impl ProxyFrom {
    /// Parses the `--proxy-from` values (CIDRs or bare addresses, host
    /// bits clear; see [`crate::access::parse_net`]). Empty is an error:
    /// `--proxy-protocol` with no trusted balancer would refuse everyone.
    pub fn build(from: &[String]) -> Result<ProxyFrom, String> {
        if from.is_empty() {
            return Err("--proxy-protocol needs --proxy-from CIDR: the balancer addresses allowed to send a PROXY header (repeatable)".into());
        }
        let nets = from
            .iter()
            .map(|s| crate::access::parse_net("--proxy-from", s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProxyFrom { nets })
    }

    /// Whether a connection from `ip` may carry a header (an IPv4 address
    /// mapped into IPv6 is matched as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The networks, as given.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// The two ends of a proxied connection, from a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addresses {
    /// The client (the header's source).
    pub client: SocketAddr,
    /// What the client connected to: the balancer's address (the VIP).
    pub reached: SocketAddr,
}

/// What a buffer's first bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A header of `len` bytes: the connection's addresses, or `None` for
    /// a `LOCAL`/`UNKNOWN` header (and AF_UNIX or unspecified families),
    /// which keep the connection's own.
    Header {
        len: usize,
        addresses: Option<Addresses>,
    },
    /// The start of a header; more bytes are needed.
    Incomplete,
    /// Not a header, or a malformed one; why, for the log.
    Invalid(String),
}

/// Parses the header at the start of `buf` (bytes after it are ignored).
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return parse_v1(buf);
    }
    Parsed::Invalid(format!(
        "no PROXY header (the connection starts with {})",
        Start(buf)
    ))
}

/// How a log line names the first bytes of a connection that did not
/// start with a header: a TLS record by its name (a client speaking
/// implicit FTPS, or a balancer in front of an implicit-FTPS listener
/// without `send-proxy`), text as a quoted string of its first 16
/// characters, anything else as its first 16 bytes in hex. Never the raw
/// bytes: they go into the operator's log.
struct Start<'a>(&'a [u8]);

impl std::fmt::Display for Start<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = &self.0[..self.0.len().min(16)];
        match head {
            // A TLS record header: content type 22 (handshake), major
            // version 3 (RFC 8446 section 5.1; SSL 3.0 to TLS 1.3 all
            // write 3 there).
            [0x16, 0x03, ..] => f.write_str(
                "a TLS handshake: an implicit-FTPS client, or a balancer that does not send the header",
            ),
            _ if head
                .iter()
                .all(|&b| b.is_ascii_graphic() || b" \r\n\t".contains(&b)) =>
            {
                write!(f, "{:?}", String::from_utf8_lossy(head))
            }
            _ => {
                f.write_str("the bytes")?;
                for b in head {
                    write!(f, " {b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

fn parse_v2(buf: &[u8]) -> Parsed {
    use ppp::v2::{Addresses as A, Command};
    if buf.len() >= V2_FIXED {
        let len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
        if V2_FIXED + len > MAX_HEADER {
            return Parsed::Invalid(format!(
                "PROXY v2 header of {} bytes (at most {MAX_HEADER} accepted)",
                V2_FIXED + len
            ));
        }
    }
    match ppp::v2::Header::try_from(buf) {
        Ok(h) => {
            let addresses = match (h.command, h.addresses) {
                (Command::Local, _) => None,
                (Command::Proxy, A::IPv4(a)) => Some(Addresses {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    reached: SocketAddr::from((a.destination_address, a.destination_port)),
                }),
                (Command::Proxy, A::IPv6(a)) => Some(Addresses {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    reached: SocketAddr::from((a.destination_address, a.destination_port)),
                }),
                (Command::Proxy, A::Unix(_) | A::Unspecified) => None,
            };
            Parsed::Header {
                len: h.len(),
                addresses,
            }
        }
        Err(ppp::v2::ParseError::Incomplete(_) | ppp::v2::ParseError::Partial(..)) => {
            Parsed::Incomplete
        }
        Err(e) => Parsed::Invalid(format!("malformed PROXY v2 header: {e}")),
    }
}

fn parse_v1(buf: &[u8]) -> Parsed {
    use ppp::v1::{Addresses as A, BinaryParseError, ParseError};
    // The line ends at the first CR; without one in the longest line, it
    // is too long (ppp says so too, but only once 107 bytes are here).
    let Some(cr) = buf.iter().position(|&b| b == b'\r') else {
        return if buf.len() >= 107 {
            Parsed::Invalid("PROXY v1 line longer than 107 bytes".into())
        } else {
            Parsed::Incomplete
        };
    };
    if buf.len() < cr + 2 {
        return Parsed::Incomplete;
    }
    match ppp::v1::Header::try_from(buf) {
        Ok(h) => {
            let addresses = match h.addresses {
                A::Tcp4(a) => Some(Addresses {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    reached: SocketAddr::from((a.destination_address, a.destination_port)),
                }),
                A::Tcp6(a) => Some(Addresses {
                    client: SocketAddr::from((a.source_address, a.source_port)),
                    reached: SocketAddr::from((a.destination_address, a.destination_port)),
                }),
                A::Unknown => None,
            };
            Parsed::Header {
                len: h.header.len(),
                addresses,
            }
        }
        Err(BinaryParseError::Parse(ParseError::Partial)) => Parsed::Incomplete,
        // The line as sent, escaped, and no longer than a v1 line may be
        // (107 bytes): what goes into the log is bounded, whatever the
        // client sent before its CR.
        Err(e) => Parsed::Invalid(format!(
            "malformed PROXY v1 header {:?}{}: {e}",
            String::from_utf8_lossy(&buf[..cr.min(107)]),
            if cr > 107 { " (cut at 107 bytes)" } else { "" }
        )),
    }
}

/// Why a connection's header was not read.
#[derive(Debug)]
pub(crate) enum HeaderError {
    /// None complete within the time allowed.
    Timeout(Duration),
    /// The connection closed first.
    Closed,
    Invalid(String),
    Io(std::io::Error),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Timeout(d) => write!(
                f,
                "no complete PROXY header within {}",
                humantime::format_duration(*d)
            ),
            HeaderError::Closed => f.write_str("closed before sending a PROXY header"),
            HeaderError::Invalid(why) => f.write_str(why),
            HeaderError::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

/// Reads the header that starts `sock` within `limit`, consuming exactly
/// its bytes. `Ok(None)`: a `LOCAL`/`UNKNOWN` header (keep the socket's
/// own addresses).
pub(crate) async fn read_header(
    sock: &Rc<Socket>,
    limit: Duration,
) -> Result<Option<Addresses>, HeaderError> {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        // Wait for bytes: on the ring while there are none, in short
        // steps while a partial header sits there (the socket stays
        // readable, so a poll would return at once).
        let wait = async {
            if seen == 0 {
                sys::poll_readable(sock.clone() as FdRef).await
            } else {
                tokio::time::sleep(PARTIAL_STEP).await;
                Ok(())
            }
        };
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Err(_) => return Err(HeaderError::Timeout(limit)),
            Ok(Err(e)) => return Err(HeaderError::Io(e)),
            Ok(Ok(())) => {}
        }
        let n =
            match rustix::net::recv(&**sock, &mut buf[..], RecvFlags::PEEK | RecvFlags::DONTWAIT) {
                Ok((0, _)) => return Err(HeaderError::Closed),
                Ok((n, _)) => n,
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(HeaderError::Io(e.into())),
            };
        seen = n;
        match parse(&buf[..n]) {
            Parsed::Header { len, addresses } => {
                // The bytes are queued (just peeked): take exactly them.
                return match rustix::net::recv(&**sock, &mut buf[..len], RecvFlags::DONTWAIT) {
                    Ok((got, _)) if got == len => Ok(addresses),
                    Ok((got, _)) => Err(HeaderError::Io(std::io::Error::other(format!(
                        "took {got} of the header's {len} bytes"
                    )))),
                    Err(e) => Err(HeaderError::Io(e.into())),
                };
            }
            Parsed::Invalid(why) => return Err(HeaderError::Invalid(why)),
            Parsed::Incomplete if n == buf.len() => {
                return Err(HeaderError::Invalid(format!(
                    "PROXY header longer than {MAX_HEADER} bytes"
                )))
            }
            Parsed::Incomplete => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(client: &str, reached: &str, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (sa(client), sa(reached)),
        );
        for (kind, value) in tlvs {
            b = b.write_tlv(*kind, value).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn v1_headers() {
        let line = b"PROXY TCP4 198.51.100.7 203.0.113.10 40123 21\r\nUSER x\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                len: 47,
                addresses: Some(Addresses {
                    client: sa("198.51.100.7:40123"),
                    reached: sa("203.0.113.10:21"),
                })
            }
        );
        let six = b"PROXY TCP6 2001:db8::7 2001:db8::1 40123 21\r\n";
        match parse(six) {
            Parsed::Header { len, addresses } => {
                assert_eq!(len, six.len());
                assert_eq!(addresses.unwrap().client, sa("[2001:db8::7]:40123"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                len: 15,
                addresses: None
            }
        );
        // Every prefix of a good line is incomplete, never invalid.
        for i in 1..47 {
            assert_eq!(parse(&line[..i]), Parsed::Incomplete, "{i} bytes");
        }
    }

    #[test]
    fn v2_headers() {
        let h = v2("198.51.100.7:40123", "203.0.113.10:21", &[]);
        let mut with_data = h.clone();
        with_data.extend_from_slice(b"\x16\x03\x01 client hello");
        assert_eq!(
            parse(&with_data),
            Parsed::Header {
                len: h.len(),
                addresses: Some(Addresses {
                    client: sa("198.51.100.7:40123"),
                    reached: sa("203.0.113.10:21"),
                })
            }
        );
        for i in 1..h.len() {
            assert_eq!(parse(&h[..i]), Parsed::Incomplete, "{i} bytes");
        }
        // TLVs (HAProxy's unique id, say) are skipped with the header.
        let t = v2("[2001:db8::7]:1", "[2001:db8::1]:21", &[(0x05, b"abc")]);
        match parse(&t) {
            Parsed::Header { len, addresses } => {
                assert_eq!(len, t.len());
                assert_eq!(addresses.unwrap().reached, sa("[2001:db8::1]:21"));
            }
            other => panic!("{other:?}"),
        }
        // LOCAL (a health check): the connection's own addresses.
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Unspecified,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(
            parse(&local),
            Parsed::Header {
                len: 16,
                addresses: None
            }
        );
    }

    #[test]
    fn not_headers() {
        let invalid = |b: &[u8]| matches!(parse(b), Parsed::Invalid(_));
        assert!(invalid(b"USER anonymous\r\n"));
        assert!(invalid(b"\x16\x03\x01\x02\x00"), "a TLS ClientHello");
        assert!(invalid(b"PROXY TCP4 nonsense\r\n"));
        assert!(invalid(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 21\r\n"));
        assert!(invalid(b"PROXY TCP9 1.2.3.4 5.6.7.8 1 21\r\n"));
        assert!(invalid(
            &[b'P', b'R', b'O', b'X', b'Y', b' ', b'x'].repeat(20)
        ));
        // v2 with a bad version nibble, and one claiming 60 KiB.
        let mut bad = v2("192.0.2.1:1", "192.0.2.2:21", &[]);
        bad[12] = 0x31;
        assert!(invalid(&bad));
        let mut long = v2("192.0.2.1:1", "192.0.2.2:21", &[]);
        long[14..16].copy_from_slice(&60_000u16.to_be_bytes());
        match parse(&long) {
            Parsed::Invalid(why) => assert!(why.contains("at most 4096"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse(b""), Parsed::Incomplete);
    }

    #[test]
    fn a_missing_header_is_logged_by_what_came_instead() {
        let why = |b: &[u8]| match parse(b) {
            Parsed::Invalid(why) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            why(b"USER anonymous\r\n"),
            r#"no PROXY header (the connection starts with "USER anonymous\r\n")"#
        );
        // Text beyond 16 characters is cut there.
        assert_eq!(
            why(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            r#"no PROXY header (the connection starts with "GET / HTTP/1.1\r\n")"#
        );
        // A ClientHello (TLS 1.0 record version, as clients write it).
        let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xaa\xbb";
        assert_eq!(
            why(hello),
            "no PROXY header (the connection starts with a TLS handshake: an \
             implicit-FTPS client, or a balancer that does not send the header)"
        );
        // Other bytes in hex, never raw: no control character reaches
        // the log.
        let odd = why(b"\x00\x1b[2J\x07\xff\xfe\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b");
        assert_eq!(
            odd,
            "no PROXY header (the connection starts with the bytes \
             00 1b 5b 32 4a 07 ff fe 01 02 03 04 05 06 07 08)"
        );
        assert!(!odd.chars().any(|c| c.is_control()), "{odd:?}");
        // A v1 line far longer than v1 allows, CR and all: logged cut.
        let mut long = b"PROXY ".to_vec();
        long.extend(std::iter::repeat_n(b'A', 3000));
        long.extend_from_slice(b"\r\n");
        let why = why(&long);
        assert!(why.len() < 300, "{} bytes: {why}", why.len());
        assert!(why.contains("(cut at 107 bytes)"), "{why}");
    }

    #[test]
    fn trusted_balancers() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = ProxyFrom::build(&s(&["10.0.0.0/24", "2001:db8::5"])).unwrap();
        assert!(p.trusts("10.0.0.9".parse().unwrap()));
        assert!(p.trusts("::ffff:10.0.0.9".parse().unwrap()));
        assert!(!p.trusts("10.0.1.9".parse().unwrap()));
        assert!(p.trusts("2001:db8::5".parse().unwrap()));
        assert!(!p.trusts("2001:db8::6".parse().unwrap()));
        assert!(ProxyFrom::build(&[]).unwrap_err().contains("--proxy-from"));
        let e = ProxyFrom::build(&s(&["10.0.0.1/24"])).unwrap_err();
        assert!(e.contains("did you mean 10.0.0.0/24"), "{e}");
    }
}
