//! FTP replies: the named reply codes and the wire encoding of a reply.
//!
//! A [`Reply`] is a code plus text that may span several lines (separated by
//! `'\n'`). [`Reply::encode`] turns it into the bytes RFC 959 section 4.2
//! prescribes, so no other module ever writes `"\r\n"` or a `'-'`
//! continuation marker by hand. Nothing here does I/O.

/// Named reply codes (RFC 959 section 4.2.2, RFC 2428, RFC 3659), so the
/// session code reads `codes::CLOSING_DATA` instead of a bare `226`.
pub mod codes {
    /// 120 Service ready in nnn minutes (RFC 959 section 4.2.2).
    pub const SERVICE_READY_SOON: u16 = 120;
    /// 125 Data connection already open; transfer starting (RFC 959 section 4.2.2).
    pub const DATA_OPEN_TRANSFER_STARTING: u16 = 125;
    /// 150 File status okay; about to open data connection (RFC 959
    /// section 4.2.2).
    pub const FILE_STATUS_OK: u16 = 150;
    /// 200 Command okay (RFC 959 section 4.2.2).
    pub const OK: u16 = 200;
    /// 202 Command not implemented, superfluous at this site (RFC 959
    /// section 4.2.2).
    pub const NOT_IMPLEMENTED_SUPERFLUOUS: u16 = 202;
    /// 211 System status, or system help reply (RFC 959 section 4.2.2);
    /// also the FEAT reply (RFC 2389).
    pub const SYSTEM_STATUS: u16 = 211;
    /// 212 Directory status (RFC 959 section 4.2.2).
    pub const DIRECTORY_STATUS: u16 = 212;
    /// 213 File status (RFC 959 section 4.2.2); also the SIZE and MDTM
    /// replies (RFC 3659).
    pub const FILE_STATUS: u16 = 213;
    /// 214 Help message (RFC 959 section 4.2.2).
    pub const HELP: u16 = 214;
    /// 215 NAME system type (RFC 959 section 4.2.2), the SYST reply.
    pub const SYSTEM_TYPE: u16 = 215;
    /// 220 Service ready for new user (RFC 959 section 4.2.2).
    pub const SERVICE_READY: u16 = 220;
    /// 221 Service closing control connection (RFC 959 section 4.2.2).
    pub const CLOSING_CONTROL: u16 = 221;
    /// 225 Data connection open; no transfer in progress (RFC 959 section 4.2.2).
    pub const DATA_OPEN: u16 = 225;
    /// 226 Closing data connection; requested file action successful
    /// (RFC 959 section 4.2.2).
    pub const CLOSING_DATA: u16 = 226;
    /// 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2) (RFC 959 section 4.2.2).
    pub const ENTERING_PASSIVE: u16 = 227;
    /// 229 Entering Extended Passive Mode (|||port|) (RFC 2428 section 3).
    pub const ENTERING_EXTENDED_PASSIVE: u16 = 229;
    /// 230 User logged in, proceed (RFC 959 section 4.2.2).
    pub const LOGGED_IN: u16 = 230;
    /// RFC 2228: AUTH accepted; the TLS handshake follows (RFC 4217).
    pub const SECURITY_DATA_EXCHANGE_COMPLETE: u16 = 234;
    /// 250 Requested file action okay, completed (RFC 959 section 4.2.2).
    pub const FILE_ACTION_OK: u16 = 250;
    /// 257 "PATHNAME" created (RFC 959 section 4.2.2); also the PWD reply.
    pub const PATH_CREATED: u16 = 257;
    /// 331 User name okay, need password (RFC 959 section 4.2.2).
    pub const NEED_PASSWORD: u16 = 331;
    /// 332 Need account for login (RFC 959 section 4.2.2).
    pub const NEED_ACCOUNT: u16 = 332;
    /// 350 Requested file action pending further information (RFC 959
    /// section 4.2.2), e.g. after RNFR or REST.
    pub const FILE_ACTION_PENDING: u16 = 350;
    /// 421 Service not available, closing control connection (RFC 959
    /// section 4.2.2).
    pub const SERVICE_NOT_AVAILABLE: u16 = 421;
    /// 425 Can't open data connection (RFC 959 section 4.2.2).
    pub const CANT_OPEN_DATA: u16 = 425;
    /// 426 Connection closed; transfer aborted (RFC 959 section 4.2.2).
    pub const TRANSFER_ABORTED: u16 = 426;
    /// 450 Requested file action not taken; file unavailable, e.g. busy
    /// (RFC 959 section 4.2.2).
    pub const FILE_ACTION_NOT_TAKEN: u16 = 450;
    /// 451 Requested action aborted: local error in processing (RFC 959
    /// section 4.2.2).
    pub const LOCAL_ERROR: u16 = 451;
    /// 452 Requested action not taken; insufficient storage space in
    /// system (RFC 959 section 4.2.2).
    pub const INSUFFICIENT_STORAGE: u16 = 452;
    /// 500 Syntax error, command unrecognized (RFC 959 section 4.2.2).
    pub const SYNTAX_ERROR: u16 = 500;
    /// 501 Syntax error in parameters or arguments (RFC 959 section 4.2.2).
    pub const SYNTAX_ERROR_ARGS: u16 = 501;
    /// 502 Command not implemented (RFC 959 section 4.2.2).
    pub const NOT_IMPLEMENTED: u16 = 502;
    /// 503 Bad sequence of commands (RFC 959 section 4.2.2).
    pub const BAD_SEQUENCE: u16 = 503;
    /// 504 Command not implemented for that parameter (RFC 959 section 4.2.2).
    pub const NOT_IMPLEMENTED_PARAM: u16 = 504;
    /// RFC 4217 section 9: the data connection cannot be opened with
    /// this PROT setting (PROT C where protection is required).
    pub const PROT_SETTING_REFUSED: u16 = 521;
    /// 522 Network protocol not supported (RFC 2428 section 2): EPRT or
    /// EPSV named an address family this server does not serve.
    pub const NETWORK_PROTOCOL_NOT_SUPPORTED: u16 = 522;
    /// The data connection's TLS negotiation failed or did not resume the
    /// control connection's session (the code vsftpd, ProFTPD and
    /// FileZilla Server give; RFC 4217 section 10).
    pub const DATA_TLS_FAILED: u16 = 522;
    /// RFC 2228: request denied for policy reasons.
    pub const DENIED_FOR_POLICY: u16 = 534;
    /// RFC 2228: requested PROT level not supported by mechanism.
    pub const PROT_LEVEL_NOT_SUPPORTED: u16 = 536;
    /// 530 Not logged in (RFC 959 section 4.2.2).
    pub const NOT_LOGGED_IN: u16 = 530;
    /// 550 Requested action not taken; file unavailable, e.g. not found or
    /// no access (RFC 959 section 4.2.2).
    pub const FILE_UNAVAILABLE: u16 = 550;
    /// 551 Requested action aborted: page type unknown (RFC 959 section 4.2.2).
    pub const PAGE_TYPE_UNKNOWN: u16 = 551;
    /// 552 Requested file action aborted; exceeded storage allocation
    /// (RFC 959 section 4.2.2).
    pub const EXCEEDED_STORAGE: u16 = 552;
    /// 553 Requested action not taken; file name not allowed (RFC 959
    /// section 4.2.2).
    pub const FILE_NAME_NOT_ALLOWED: u16 = 553;
    /// 554 Requested action not taken: invalid REST parameter (RFC 3659
    /// section 5.4), the answer to a RETR or STOR whose restart offset
    /// lies past the end of the file (pure-ftpd and pyftpdlib answer the
    /// same).
    pub const INVALID_REST_PARAMETER: u16 = 554;
}

/// One reply: a three-digit code and its text. The text may hold several
/// lines separated by `'\n'`; one trailing `'\n'` is ignored so text built
/// line by line (`"a\nb\n"`) encodes the same as `"a\nb"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code, usually one of [`codes`].
    pub code: u16,
    /// The reply text, lines separated by `'\n'`, without the code or CRLF.
    pub text: Vec<u8>,
}

impl Reply {
    /// A reply with `code` and `text` (see [`Reply`] for the text's shape).
    pub fn new(code: u16, text: impl Into<Vec<u8>>) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    /// Appends the wire bytes of this reply to `out`.
    ///
    /// One line: `"226 text\r\n"`. Empty text gives `"200 \r\n"`, as vsftpd
    /// sends: the space keeps the line a complete reply ("code SP") for
    /// clients that look for it. Several lines (RFC 959 section 4.2):
    /// `"211-first\r\n"`, the middle lines verbatim, then `"211 last\r\n"`.
    /// A middle line that starts with a digit gets one leading space, since
    /// a client may otherwise read a line such as `"211 x"` as the end of
    /// the reply. Any `'\r'` inside the text is dropped, so the reply can
    /// never carry a bare CR or LF that would desynchronise the client, and
    /// every 0xFF is sent as IAC IAC (RFC 854).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let text = self.text.strip_suffix(b"\n").unwrap_or(&self.text);
        let mut lines = text.split(|&b| b == b'\n');
        // `split` always yields at least one (possibly empty) item.
        let first = lines.next().unwrap_or_default();
        let mut rest = lines.peekable();
        let code = self.code_digits();
        out.extend_from_slice(&code);
        if rest.peek().is_none() {
            out.push(b' ');
            push_line(out, first);
            out.extend_from_slice(b"\r\n");
            return;
        }
        out.push(b'-');
        push_line(out, first);
        out.extend_from_slice(b"\r\n");
        while let Some(line) = rest.next() {
            if rest.peek().is_none() {
                out.extend_from_slice(&code);
                out.push(b' ');
                push_line(out, line);
            } else {
                // Look past any CR, which is dropped below anyway.
                let lead = line.iter().find(|&&b| b != b'\r');
                if lead.is_some_and(u8::is_ascii_digit) {
                    out.push(b' ');
                }
                push_line(out, line);
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire bytes of this reply in a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 8);
        self.encode(&mut out);
        out
    }

    /// The code as three ASCII digits. Codes are always three digits on the
    /// wire (RFC 959 section 4.2); an out-of-range code is a programming
    /// error, clamped so it still encodes as a syntactically valid reply.
    fn code_digits(&self) -> [u8; 3] {
        let c = self.code.clamp(100, 999);
        [
            b'0' + (c / 100) as u8,
            b'0' + (c / 10 % 10) as u8,
            b'0' + (c % 10) as u8,
        ]
    }
}

/// Appends one reply line's text: CR dropped, and every 0xFF doubled,
/// since the control connection is a Telnet stream where 0xFF is IAC and
/// IAC IAC is the data byte 0xFF (RFC 854); a path with a Latin-1 `ÿ` in a
/// 257, MLST or STAT reply then reaches the client intact.
fn push_line(out: &mut Vec<u8>, line: &[u8]) {
    if !line.iter().any(|&b| b == b'\r' || b == 0xff) {
        out.extend_from_slice(line);
        return;
    }
    for &b in line {
        match b {
            b'\r' => {}
            0xff => out.extend_from_slice(&[0xff, 0xff]),
            b => out.push(b),
        }
    }
}

/// Quotes a pathname for a 257 reply (RFC 959 appendix II): wrap it in
/// double quotes and double every embedded `'"'`, so `/a"b` becomes
/// `"/a""b"` and the client can find where the name ends.
pub fn quote_path(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 2);
    out.push(b'"');
    for &b in path {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_table() {
        let cases: &[(u16, &[u8], &[u8])] = &[
            (226, b"Transfer complete.", b"226 Transfer complete.\r\n"),
            // 0xFF is doubled (Telnet IAC IAC), on every line.
            (
                257,
                b"\"/caf\xff\" created",
                b"257 \"/caf\xff\xff\" created\r\n",
            ),
            (
                250,
                b"Listing /\xff\n \xff\xff\nEnd",
                b"250-Listing /\xff\xff\r\n \xff\xff\xff\xff\r\n250 End\r\n",
            ),
            // Empty text: vsftpd's "code SP CRLF".
            (200, b"", b"200 \r\n"),
            // A single trailing '\n' does not make a multi-line reply.
            (200, b"ok\n", b"200 ok\r\n"),
            (
                211,
                b"Features:\n UTF8\n MDTM\nEnd",
                b"211-Features:\r\n UTF8\r\n MDTM\r\n211 End\r\n",
            ),
            (211, b"a\nb", b"211-a\r\n211 b\r\n"),
            (211, b"a\nb\n", b"211-a\r\n211 b\r\n"),
            // A middle line starting with a digit is indented by one space.
            (
                211,
                b"status\n211 fake end\n42 things\nEnd",
                b"211-status\r\n 211 fake end\r\n 42 things\r\n211 End\r\n",
            ),
            // The first and last lines are never indented: they carry the code.
            (213, b"1\n2", b"213-1\r\n213 2\r\n"),
            // CR inside text is dropped everywhere; no bare CR on the wire.
            (200, b"a\rb", b"200 ab\r\n"),
            (200, b"a\r\nb\r\n", b"200-a\r\n200 b\r\n"),
            (211, b"x\n\ry\rz\nw", b"211-x\r\nyz\r\n211 w\r\n"),
            (211, b"x\n\r2\nw", b"211-x\r\n 2\r\n211 w\r\n"),
            // Empty middle lines stay empty lines.
            (214, b"a\n\nb", b"214-a\r\n\r\n214 b\r\n"),
            // Non-UTF-8 bytes pass through (RFC 2640 pathnames are bytes);
            // only 0xFF is escaped, as IAC IAC.
            (257, b"\"/\xe9\" ok", b"257 \"/\xe9\" ok\r\n"),
        ];
        for (code, text, want) in cases {
            let got = Reply::new(*code, text.to_vec()).to_bytes();
            assert_eq!(
                got,
                want.to_vec(),
                "code {code} text {:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn encode_appends() {
        let mut out = b"prefix".to_vec();
        Reply::new(codes::OK, "x").encode(&mut out);
        assert_eq!(out, b"prefix200 x\r\n");
    }

    #[test]
    fn encode_never_emits_bare_cr_or_lf() {
        let texts: &[&[u8]] = &[b"\r", b"\n", b"\r\n\r\n", b"a\n\r\nb\r", b"\n\n\n"];
        for text in texts {
            let bytes = Reply::new(500, text.to_vec()).to_bytes();
            for (i, &b) in bytes.iter().enumerate() {
                if b == b'\r' {
                    assert_eq!(bytes.get(i + 1), Some(&b'\n'), "{bytes:?}");
                }
                if b == b'\n' {
                    assert_eq!(bytes[i - 1], b'\r', "{bytes:?}");
                }
            }
            assert!(bytes.ends_with(b"\r\n"));
        }
    }

    #[test]
    fn odd_codes_still_three_digits() {
        assert_eq!(Reply::new(7, "x").to_bytes(), b"100 x\r\n");
        assert_eq!(Reply::new(1234, "x").to_bytes(), b"999 x\r\n");
    }

    #[test]
    fn quote_path_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/", b"\"/\""),
            (b"", b"\"\""),
            (b"/a\"b", b"\"/a\"\"b\""),
            (b"\"\"", b"\"\"\"\"\"\""),
            (b"/with space ", b"\"/with space \""),
            (b"/\xe4", b"\"/\xe4\""),
        ];
        for (path, want) in cases {
            assert_eq!(quote_path(path), want.to_vec(), "{path:?}");
        }
    }

    #[test]
    fn codes_are_the_rfc_numbers() {
        assert_eq!(codes::CLOSING_DATA, 226);
        assert_eq!(codes::ENTERING_EXTENDED_PASSIVE, 229);
        assert_eq!(codes::NETWORK_PROTOCOL_NOT_SUPPORTED, 522);
        assert_eq!(codes::FILE_NAME_NOT_ALLOWED, 553);
    }
}
