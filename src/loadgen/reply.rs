//! The client side of the control channel's wire format: turning the bytes
//! a server sends into complete replies (RFC 959 section 4.2), with no I/O.
//!
//! A reply is either one line `123 text` or several: a first line `123-text`,
//! any number of lines that may say anything (even start with other digits),
//! and a last line `123 text` with the same code and a space. Servers end
//! lines with CRLF; a bare LF is accepted too, as every real client does.
//! Anything else (a first line that does not start with three digits, or a
//! reply that never ends within [`MAX_REPLY`] bytes) is a protocol error: the
//! load generator counts it and drops the connection instead of waiting.

use std::fmt;

/// Longest reply accepted, all lines together. FEAT and HELP replies are a
/// few hundred bytes; 64 KiB without an end means the peer is not speaking
/// FTP.
pub(crate) const MAX_REPLY: usize = 64 * 1024;

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The three-digit code, 100..=599.
    pub code: u16,
    /// The text of every line after the code and separator, joined by `\n`.
    pub text: String,
}

impl Reply {
    /// 1xx: the server started something (a transfer) and will reply again.
    pub(crate) fn is_preliminary(&self) -> bool {
        self.code / 100 == 1
    }

    /// 2xx: the command succeeded.
    pub(crate) fn is_success(&self) -> bool {
        self.code / 100 == 2
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.code,
            self.text.lines().next().unwrap_or("")
        )
    }
}

/// What was wrong with bytes that are not an FTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Looks for one complete reply at the start of `buf`.
///
/// Returns `Ok(Some((reply, used)))` with the number of bytes it spans,
/// `Ok(None)` when more bytes are needed, or an error when the bytes cannot
/// be a reply.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let mut lines = Lines { buf, pos: 0 };
    let Some(first) = lines.next() else {
        return check_incomplete(buf);
    };
    let code = code_of(first)
        .ok_or_else(|| ProtocolError(format!("not an FTP reply: {:?}", preview(first))))?;
    let mut text = String::from_utf8_lossy(first.get(4..).unwrap_or(b"")).into_owned();
    match first.get(3) {
        // "123" alone or "123 text": a one-line reply.
        None | Some(b' ') => return Ok(Some((Reply { code, text }, lines.pos))),
        Some(b'-') => {}
        Some(_) => {
            return Err(ProtocolError(format!(
                "bad reply separator: {:?}",
                preview(first)
            )))
        }
    }
    loop {
        let Some(line) = lines.next() else {
            return check_incomplete(buf);
        };
        // Only "same code + space" (or the bare code) ends a multi-line
        // reply; "123-" again, or other digits, are just more text.
        let ends = code_of(line) == Some(code) && matches!(line.get(3), None | Some(b' '));
        text.push('\n');
        if ends {
            text.push_str(&String::from_utf8_lossy(line.get(4..).unwrap_or(b"")));
            return Ok(Some((Reply { code, text }, lines.pos)));
        }
        text.push_str(&String::from_utf8_lossy(line));
    }
}

fn check_incomplete(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    if buf.len() >= MAX_REPLY {
        return Err(ProtocolError(format!(
            "reply longer than {MAX_REPLY} bytes"
        )));
    }
    // Fail early on garbage rather than waiting for a line end that a
    // non-FTP peer may never send.
    let head = &buf[..buf.len().min(3)];
    if !head.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError(format!(
            "not an FTP reply: {:?}",
            preview(buf)
        )));
    }
    Ok(None)
}

fn code_of(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'1'..=b'5').contains(&digits[0]) {
        return None;
    }
    Some(digits.iter().fold(0u16, |n, d| n * 10 + (d - b'0') as u16))
}

fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned()
}

/// Complete lines of `buf` without their CRLF / LF; `pos` is where the
/// next line starts. A trailing partial line is not returned.
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let nl = rest.iter().position(|&b| b == b'\n')?;
        self.pos += nl + 1;
        let line = &rest[..nl];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &str) -> (Reply, usize) {
        parse(input.as_bytes()).unwrap().expect("complete reply")
    }

    #[test]
    fn single_lines() {
        let table = [
            ("220 ready\r\n", 220, "ready"),
            ("230 Login successful.\n", 230, "Login successful."),
            ("200\r\n", 200, ""),
            ("226 \r\n", 226, ""),
            (
                "227 Entering Passive Mode (127,0,0,1,195,80).\r\n",
                227,
                "Entering Passive Mode (127,0,0,1,195,80).",
            ),
        ];
        for (input, code, text) in table {
            let (r, used) = one(input);
            assert_eq!(
                (r.code, r.text.as_str(), used),
                (code, text, input.len()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn multi_line_with_continuation_traps() {
        let input = "211-Features:\r\n EPSV\r\n211-not the end\r\n123 other digits\r\n MLST size*;\r\n211 End\r\n220 next";
        let (r, used) = one(input);
        assert_eq!(r.code, 211);
        assert_eq!(
            r.text,
            "Features:\n EPSV\n211-not the end\n123 other digits\n MLST size*;\nEnd"
        );
        assert_eq!(&input[used..], "220 next");
    }

    #[test]
    fn needs_more_bytes() {
        for partial in [
            "",
            "2",
            "22",
            "220",
            "220 rea",
            "123-first\r\n",
            "123-first\r\n123-x\r\n",
            "123-a\r\n123",
        ] {
            assert_eq!(parse(partial.as_bytes()), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn two_replies_back_to_back() {
        let input = b"150 Opening\r\n226 Done\r\n";
        let (first, used) = parse(input).unwrap().unwrap();
        assert_eq!(first.code, 150);
        assert!(first.is_preliminary());
        let (second, used2) = parse(&input[used..]).unwrap().unwrap();
        assert_eq!(second.code, 226);
        assert!(second.is_success());
        assert_eq!(used + used2, input.len());
    }

    #[test]
    fn garbage_is_an_error_early() {
        for bad in [
            "hello\r\n",
            "HTTP/1.1 400",
            "22x ok\r\n",
            "600 nope\r\n",
            "220:colon\r\n",
            "xyz",
        ] {
            assert!(
                parse(bad.as_bytes()).is_err(),
                "{bad:?} should be a protocol error"
            );
        }
    }

    #[test]
    fn endless_reply_is_an_error() {
        let mut input = b"211-start\r\n".to_vec();
        while input.len() < MAX_REPLY {
            input.extend_from_slice(b" more text\r\n");
        }
        assert!(parse(&input).is_err());
    }

    #[test]
    fn display_shows_first_line() {
        let (r, _) = one("550-No such file\r\n550 really\r\n");
        assert_eq!(r.to_string(), "550 No such file");
    }
}
