//! The control-channel line reader: bytes from the socket in, complete
//! command lines out, with memory bounded by the longest line allowed.
//!
//! The control connection is a Telnet NVT stream (RFC 959 section 4.1 and
//! RFC 854), so besides splitting at line ends this strips Telnet
//! commands. That matters for ABOR: RFC 959 section 4.1.3 tells clients to
//! send Telnet IP and Synch (`IAC IP IAC DM`) before it, and a client that
//! does so must still be understood as sending plain `ABOR`.
//!
//! A byte 0xFF in a file name is where Telnet and real clients meet: RFC
//! 854 escapes it as IAC IAC (lftp does), but curl, Python's ftplib and
//! most clients send it raw. So IAC IAC is one data byte 0xFF, and IAC
//! followed by a byte that is not a Telnet command (anything below 240,
//! the line end included) is data too — both bytes are kept, as ProFTPD
//! does. Only IAC followed by a command byte (240-255) is a Telnet command;
//! a Latin-1 name holding `ÿ` followed by a byte of 240 or more cannot be
//! sent raw, only escaped.
//!
//! A peer that never sends a line end must not make the server buffer
//! without limit: a line longer than `max_line` is reported once as
//! [`LineEvent::TooLong`] and its bytes are dropped as they arrive, never
//! stored. No I/O happens here: the caller feeds what it read.

use std::collections::VecDeque;

/// What the reader produced.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// One line, without its line end and with Telnet sequences removed.
    Line(Vec<u8>),
    /// A line exceeded the limit; it is skipped up to its `'\n'`.
    TooLong,
}

/// Telnet "interpret as command" (RFC 854).
const IAC: u8 = 255;
/// WILL, WONT, DO, DONT: the option negotiation verbs, which take one more
/// byte (the option code).
const NEGOTIATION: std::ops::RangeInclusive<u8> = 251..=254;
/// The lowest Telnet command byte (SE); IAC followed by a lower byte is
/// not a command.
const FIRST_COMMAND: u8 = 240;

/// Where the Telnet decoder stands inside the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    Data,
    /// Just saw IAC.
    Command,
    /// Saw IAC WILL/WONT/DO/DONT; the next byte is the option code.
    Option,
}

/// Splits a control-channel byte stream into lines. See the module docs.
pub struct LineReader {
    max_line: usize,
    /// The current, incomplete line, Telnet already stripped.
    partial: Vec<u8>,
    /// Raw bytes of the current line so far (before stripping), which is
    /// what the limit applies to.
    raw_len: usize,
    telnet: Telnet,
    /// Inside a line that was already reported as too long.
    discarding: bool,
    /// Complete events not yet taken.
    ready: VecDeque<LineEvent>,
    /// Bytes held in `ready`.
    ready_bytes: usize,
}

impl LineReader {
    /// A reader that accepts lines of up to `max_line` bytes, not counting
    /// the CRLF (see [`crate::proto::MAX_LINE`]).
    pub fn new(max_line: usize) -> LineReader {
        LineReader {
            max_line,
            partial: Vec::new(),
            raw_len: 0,
            telnet: Telnet::Data,
            discarding: false,
            ready: VecDeque::new(),
            ready_bytes: 0,
        }
    }

    /// Appends bytes read from the socket. Complete lines become events at
    /// once; only the unfinished tail of the last line is kept, and never
    /// more than `max_line + 1` bytes of it.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.take_segment(&data[..i]);
                    self.end_line();
                    data = &data[i + 1..];
                }
                None => {
                    self.take_segment(data);
                    data = &[];
                }
            }
        }
    }

    /// The next complete line or `TooLong`, in stream order; `None` until
    /// more data is fed.
    pub fn next_event(&mut self) -> Option<LineEvent> {
        let event = self.ready.pop_front()?;
        if let LineEvent::Line(line) = &event {
            self.ready_bytes -= line.len();
        }
        Some(event)
    }

    /// Bytes held: complete lines not yet taken plus the unfinished line.
    /// The caller can stop reading the socket while this is large.
    pub fn buffered(&self) -> usize {
        self.ready_bytes + self.partial.len()
    }

    /// Adds bytes that contain no `'\n'` to the current line.
    fn take_segment(&mut self, seg: &[u8]) {
        if self.discarding || seg.is_empty() {
            return;
        }
        self.raw_len += seg.len();
        // One extra byte is allowed if it is the CR of a CRLF, which is
        // only known to end the line once the LF arrives; if anything but
        // LF follows, the next segment pushes the length over again.
        let over = self.raw_len > self.max_line + 1
            || (self.raw_len == self.max_line + 1 && seg.last() != Some(&b'\r'));
        if over {
            self.push_event(LineEvent::TooLong);
            self.partial = Vec::new();
            self.telnet = Telnet::Data;
            self.discarding = true;
            return;
        }
        if self.telnet == Telnet::Data && !seg.contains(&IAC) {
            self.partial.extend_from_slice(seg);
            return;
        }
        for &b in seg {
            self.telnet = match (self.telnet, b) {
                (Telnet::Data, IAC) => Telnet::Command,
                (Telnet::Data, _) => {
                    self.partial.push(b);
                    Telnet::Data
                }
                // IAC IAC is the escape for a literal 0xFF data byte.
                (Telnet::Command, IAC) => {
                    self.partial.push(IAC);
                    Telnet::Data
                }
                (Telnet::Command, b) if NEGOTIATION.contains(&b) => Telnet::Option,
                // Not a command: a raw 0xFF in a name, kept with its
                // successor.
                (Telnet::Command, b) if b < FIRST_COMMAND => {
                    self.partial.extend_from_slice(&[IAC, b]);
                    Telnet::Data
                }
                // IP, DM, AYT, NOP, ...: the command itself is dropped.
                (Telnet::Command, _) => Telnet::Data,
                (Telnet::Option, _) => Telnet::Data,
            };
        }
    }

    /// A `'\n'` arrived: emit the current line (unless it was too long) and
    /// start the next one. A lone IAC right before the line end is a data
    /// 0xFF (LF is no Telnet command); an option negotiation cut off by the
    /// line end is abandoned rather than allowed to eat the next line's
    /// first byte.
    fn end_line(&mut self) {
        if self.discarding {
            self.discarding = false;
        } else {
            if self.telnet == Telnet::Command {
                self.partial.push(IAC);
            }
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.push_event(LineEvent::Line(line));
        }
        self.raw_len = 0;
        self.telnet = Telnet::Data;
    }

    fn push_event(&mut self, event: LineEvent) {
        if let LineEvent::Line(line) = &event {
            self.ready_bytes += line.len();
        }
        self.ready.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &[u8]) -> LineEvent {
        LineEvent::Line(s.to_vec())
    }

    fn drain(r: &mut LineReader) -> Vec<LineEvent> {
        std::iter::from_fn(|| r.next_event()).collect()
    }

    /// Feeds `input` whole, then one byte at a time, then in 3-byte chunks:
    /// the events must not depend on how the stream was cut.
    fn events_all_ways(max: usize, input: &[u8]) -> Vec<LineEvent> {
        let mut whole = LineReader::new(max);
        whole.feed(input);
        let want = drain(&mut whole);
        for chunk in [1, 3] {
            let mut r = LineReader::new(max);
            let mut got = Vec::new();
            for piece in input.chunks(chunk) {
                r.feed(piece);
                got.extend(drain(&mut r));
            }
            assert_eq!(got, want, "chunk {chunk}, input {input:?}");
        }
        want
    }

    #[test]
    fn splitting_table() {
        let cases: &[(&[u8], Vec<LineEvent>)] = &[
            (b"", vec![]),
            (b"NOOP", vec![]),
            (b"NOOP\r\n", vec![line(b"NOOP")]),
            (b"NOOP\n", vec![line(b"NOOP")]),
            (b"\r\n", vec![line(b"")]),
            (b"\n\n", vec![line(b""), line(b"")]),
            (
                b"USER a\r\nPASS b\r\nSYST\r\n",
                vec![line(b"USER a"), line(b"PASS b"), line(b"SYST")],
            ),
            (b"A\r\nB", vec![line(b"A")]),
            // Only the CR right before LF is part of the line end.
            (b"A\rB\r\n", vec![line(b"A\rB")]),
            (b"A\r\r\n", vec![line(b"A\r")]),
            (b"RETR  x \r\n", vec![line(b"RETR  x ")]),
            (b"\x00\x01\r\n", vec![line(b"\x00\x01")]),
        ];
        for (input, want) in cases {
            assert_eq!(&events_all_ways(64, input), want, "{input:?}");
        }
    }

    #[test]
    fn telnet_table() {
        let cases: &[(&[u8], &[u8])] = &[
            // IP + Synch (IAC IP IAC DM) before ABOR, as RFC 959 4.1.3 asks.
            (b"\xff\xf4\xff\xf2ABOR\r\n", b"ABOR"),
            // IAC IAC is a literal 0xFF (e.g. in a Latin-1 file name).
            (b"RETR a\xff\xffb\r\n", b"RETR a\xffb"),
            // Option negotiation takes one more byte, whatever it is.
            (b"\xff\xfb\x01NOOP\r\n", b"NOOP"),
            (b"\xff\xfe\xffNOOP\r\n", b"NOOP"),
            (b"NO\xff\xfd\x03OP\r\n", b"NOOP"),
            (b"NOOP\xff\xfc\x22\r\n", b"NOOP"),
            // Any other command is two bytes.
            (b"NO\xff\xf1OP\r\n", b"NOOP"),
            (b"\xff\xf6QUIT\r\n", b"QUIT"),
            // A negotiation cut off by the line end does not leak into
            // the next line.
            (b"\xff\xfb\r\nQUIT\r\n", b"QUIT"),
            (b"\xff\xff\xff\xff\r\n", b"\xff\xff"),
            // IAC before a byte that is no Telnet command is data: a raw
            // 0xFF in a Latin-1 name, as curl and ftplib send it.
            (b"SIZE bad\xffname.txt\r\n", b"SIZE bad\xffname.txt"),
            (b"RETR \xff\x00\xef\r\n", b"RETR \xff\x00\xef"),
            (b"RETR caf\xff\r\n", b"RETR caf\xff"),
            (b"RETR caf\xff\n", b"RETR caf\xff"),
            (b"RETR a\xff\xffb\xffc\r\n", b"RETR a\xffb\xffc"),
        ];
        for (input, want) in cases {
            let events = events_all_ways(64, input);
            assert_eq!(events.last(), Some(&line(want)), "{input:?}");
        }
        // A cut-off negotiation leaves an empty line, not a garbled one;
        // a lone IAC at the line end is a data byte.
        assert_eq!(
            events_all_ways(64, b"\xff\xfd\r\nQUIT\r\n"),
            vec![line(b""), line(b"QUIT")]
        );
        assert_eq!(
            events_all_ways(64, b"\xff\r\nQUIT\r\n"),
            vec![line(b"\xff"), line(b"QUIT")]
        );
    }

    #[test]
    fn line_limit_table() {
        let max = 8;
        let cases: &[(&[u8], Vec<LineEvent>)] = &[
            // Exactly max bytes: fine, with CRLF, bare LF or CR CR LF.
            (b"12345678\r\n", vec![line(b"12345678")]),
            (b"12345678\n", vec![line(b"12345678")]),
            // One over: too long, whether or not CR follows.
            (b"123456789\r\n", vec![LineEvent::TooLong]),
            (b"123456789\n", vec![LineEvent::TooLong]),
            // CR in the last allowed slot that is not a line end.
            (b"12345678\rX\r\n", vec![LineEvent::TooLong]),
            (b"12345678\r\r\n", vec![LineEvent::TooLong]),
            // Exactly one TooLong per line, then reading resumes.
            (
                b"0123456789abcdef0123456789\r\nNOOP\r\n",
                vec![LineEvent::TooLong, line(b"NOOP")],
            ),
            (
                b"NOOP\r\n0123456789\r\n0123456789\r\nPWD\r\n",
                vec![
                    line(b"NOOP"),
                    LineEvent::TooLong,
                    LineEvent::TooLong,
                    line(b"PWD"),
                ],
            ),
            // Telnet bytes count against the limit: they cost bandwidth.
            (
                b"\xff\xf1\xff\xf1\xff\xf1\xff\xf1X\r\n",
                vec![LineEvent::TooLong],
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&events_all_ways(max, input), want, "{input:?}");
        }
    }

    #[test]
    fn too_long_is_reported_before_the_line_ends() {
        // The session can answer 500 without waiting for a '\n' that a
        // hostile peer may never send.
        let mut r = LineReader::new(4);
        r.feed(b"123456");
        assert_eq!(r.next_event(), Some(LineEvent::TooLong));
        r.feed(b"789");
        assert_eq!(r.next_event(), None);
        r.feed(b"\r\nOK\r\n");
        assert_eq!(r.next_event(), Some(line(b"OK")));
        assert_eq!(r.next_event(), None);
    }

    #[test]
    fn huge_line_keeps_memory_bounded() {
        let max = 4096;
        let mut r = LineReader::new(max);
        let chunk = [b'A'; 1024];
        let mut events = Vec::new();
        for _ in 0..1024 {
            r.feed(&chunk);
            assert!(r.buffered() <= max + 1, "buffered {}", r.buffered());
            events.extend(drain(&mut r));
        }
        assert!(r.partial.capacity() <= 2 * (max + 1));
        r.feed(b"\r\nQUIT\r\n");
        events.extend(drain(&mut r));
        assert_eq!(events, vec![LineEvent::TooLong, line(b"QUIT")]);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn crlf_split_across_feeds() {
        let mut r = LineReader::new(16);
        r.feed(b"NOOP\r");
        assert_eq!(r.next_event(), None);
        assert_eq!(r.buffered(), 5);
        r.feed(b"\n");
        assert_eq!(r.next_event(), Some(line(b"NOOP")));
        assert_eq!(r.buffered(), 0);
        // A line of exactly max bytes with its CR at max+1 in one feed and
        // the LF in the next.
        let mut r = LineReader::new(4);
        r.feed(b"ABCD\r");
        assert_eq!(r.next_event(), None);
        r.feed(b"\n");
        assert_eq!(r.next_event(), Some(line(b"ABCD")));
    }

    #[test]
    fn many_pipelined_lines() {
        let mut input = Vec::new();
        for i in 0..1000 {
            input.extend_from_slice(format!("RETR file{i}\r\n").as_bytes());
        }
        let mut r = LineReader::new(crate::proto::MAX_LINE);
        r.feed(&input);
        assert_eq!(r.buffered(), input.len() - 2 * 1000);
        let events = drain(&mut r);
        assert_eq!(events.len(), 1000);
        assert_eq!(events[999], line(b"RETR file999"));
        assert_eq!(r.buffered(), 0);
    }
}
