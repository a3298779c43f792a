//! A raw FTP control client for the tests that need exact replies or
//! misbehave on purpose, the codecs of the replies and arguments it reads
//! and writes (227, 229, PORT, EPRT, STAT's counters), and raw socket
//! helpers (a connection from another loopback address, a reset, a first
//! line).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

/// One FTP reply: the code and every line (without CRLF).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The byte count of a STAT-during-a-transfer reply, `213 Transfer in
    /// progress: N bytes WORD.` (WORD `sent` or `received`); None for any
    /// other reply.
    pub fn progress(&self, word: &str) -> Option<u64> {
        self.lines[0]
            .strip_prefix("213 Transfer in progress: ")?
            .strip_suffix(&format!(" bytes {word}."))?
            .parse()
            .ok()
    }

    /// All lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A minimal FTP client speaking the control protocol directly, for the
/// tests that need exact replies or misbehave on purpose.
pub struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub peer: SocketAddr,
}

impl Ftp {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Ftp {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        Self::from_stream(s)
    }

    /// Wraps a connected control socket and reads the greeting.
    pub fn from_stream(s: TcpStream) -> Ftp {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        let peer = s.peer_addr().unwrap();
        let mut f = Ftp {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            peer,
        };
        let r = f.read_reply();
        assert_eq!(r.code, 220, "greeting: {r:?}");
        f
    }

    /// Wraps a control socket whose 220 greeting was already read.
    pub fn after_greeting(s: TcpStream) -> Ftp {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let peer = s.peer_addr().unwrap();
        Ftp {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            peer,
        }
    }

    /// USER anonymous / PASS.
    pub fn login(&mut self) {
        self.expect("USER anonymous", 331);
        self.expect("PASS itest@example.com", 230);
    }

    /// Connects from a given local address (e.g. 127.0.0.2, to look like
    /// another client host) and reads the greeting.
    pub fn connect_from(local: IpAddr, addr: SocketAddr) -> Ftp {
        Ftp::from_stream(connect_from(local, addr))
    }

    /// USER / PASS with an account; asserts 230.
    #[track_caller]
    pub fn login_as(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// Uploads `data` with `line` (e.g. `STOR f`, `APPE f`) over EPSV;
    /// asserts 150 and 226 and returns the 150 reply.
    #[track_caller]
    pub fn upload(&mut self, line: &str, data: &[u8]) -> Reply {
        let mut conn = self.epsv_connect();
        let opening = self.expect(line, 150);
        conn.write_all(data)
            .unwrap_or_else(|e| panic!("{line}: writing the data connection: {e}"));
        drop(conn);
        let r = self.read_reply();
        assert_eq!(r.code, 226, "{line}: after the data: {r:?}");
        opening
    }

    /// STOR `path` with `data` over EPSV.
    #[track_caller]
    pub fn stor(&mut self, path: &str, data: &[u8]) {
        self.upload(&format!("STOR {path}"), data);
    }

    /// Sends raw bytes on the control connection.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads one (possibly multi-line) reply.
    #[track_caller]
    pub fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    pub fn try_read_reply(&mut self) -> std::io::Result<Reply> {
        let first = self.read_line()?;
        let code = parse_code(&first).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a reply line: {first:?}"),
            )
        })?;
        let mut lines = vec![first.clone()];
        if first.as_bytes().get(3) == Some(&b'-') {
            let end = format!("{code} ");
            loop {
                let l = self.read_line()?;
                let done = l.starts_with(&end) || l == code.to_string();
                lines.push(l);
                if done {
                    break;
                }
            }
        }
        Ok(Reply { code, lines })
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "control connection closed",
            ));
        }
        while matches!(buf.last(), Some(b'\n') | Some(b'\r')) {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Reads one (possibly multi-line) reply as the bytes on the wire,
    /// CRLFs included: for checks of bytes a lossy [`Reply`] would hide
    /// (a doubled 0xFF, a name that is not UTF-8).
    #[track_caller]
    pub fn read_reply_bytes(&mut self) -> Vec<u8> {
        let line = |f: &mut Ftp| {
            let mut buf = Vec::new();
            let n = f
                .reader
                .read_until(b'\n', &mut buf)
                .unwrap_or_else(|e| panic!("reading a reply: {e}"));
            assert!(n > 0, "reading a reply: control connection closed");
            buf
        };
        let first = line(self);
        let mut out = first.clone();
        if first.get(3) == Some(&b'-') {
            let mut end = first[..3].to_vec();
            end.push(b' ');
            loop {
                let l = line(self);
                out.extend_from_slice(&l);
                if l.starts_with(&end) {
                    break;
                }
            }
        }
        out
    }

    /// Sends the bytes `line` + CRLF (a line that is not UTF-8, or holds
    /// Telnet bytes) and reads the reply.
    #[track_caller]
    pub fn cmd_bytes(&mut self, line: &[u8]) -> Reply {
        let mut l = line.to_vec();
        l.extend_from_slice(b"\r\n");
        self.send_raw(&l);
        self.read_reply()
    }

    /// Sends `line` + CRLF and reads the reply.
    #[track_caller]
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// Sends `line` and asserts the reply code.
    #[track_caller]
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} -> {:?}", r.lines);
        r
    }

    /// EPSV; returns the address to connect to (the control peer's IP and
    /// the announced port).
    #[track_caller]
    pub fn epsv(&mut self) -> SocketAddr {
        let r = self.expect("EPSV", 229);
        let port = parse_epsv(&r.lines[0]).unwrap_or_else(|| panic!("bad 229 reply {r:?}"));
        SocketAddr::new(self.peer.ip(), port)
    }

    /// PASV; returns the address the 227 reply announces.
    #[track_caller]
    pub fn pasv(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        parse_pasv(&r.lines[0]).unwrap_or_else(|| panic!("bad 227 reply {r:?}"))
    }

    /// EPSV and connect the data channel.
    #[track_caller]
    pub fn epsv_connect(&mut self) -> TcpStream {
        let a = self.epsv();
        // From the control connection's own address (RFC 2577: the server
        // refuses data connections from another one), which matters when
        // the control connection was bound to e.g. 127.0.0.2.
        let local = self.writer.local_addr().unwrap().ip();
        connect_from(local, a)
    }

    /// Runs a transfer command over EPSV and returns the data bytes, after
    /// asserting 150 before and 226 after.
    #[track_caller]
    pub fn transfer(&mut self, line: &str) -> Vec<u8> {
        let data = self.epsv_connect();
        self.transfer_on(data, line)
    }

    /// Runs a transfer command over the data connection `data` the caller
    /// made (after its PASV/EPSV, or accepted after PORT) and returns the
    /// data bytes, after asserting 150 before and 226 after.
    #[track_caller]
    pub fn transfer_on(&mut self, data: TcpStream, line: &str) -> Vec<u8> {
        self.expect(line, 150);
        self.data_then_226(data, line).0
    }

    /// The end of a transfer whose 150 came: `data` read to its end (with
    /// the test's read timeout), then the final reply, asserted 226.
    /// `what` names the transfer in failure messages. Returns the data
    /// and that reply.
    #[track_caller]
    fn data_then_226(&mut self, mut data: TcpStream, what: &str) -> (Vec<u8>, Reply) {
        data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .unwrap_or_else(|e| panic!("{what}: reading the data connection: {e}"));
        let r = self.read_reply();
        assert_eq!(r.code, 226, "{what}: after the data: {r:?}");
        (buf, r)
    }

    /// Runs a transfer command in active mode: PORT to `l`, the command,
    /// its 150, then the server's connection accepted (it waits in `l`'s
    /// backlog meanwhile) and read to its end, then the 226. Returns the
    /// data bytes and the address the server connected from.
    #[track_caller]
    pub fn transfer_active(&mut self, l: &TcpListener, line: &str) -> (Vec<u8>, SocketAddr) {
        self.expect(&format!("PORT {}", port_arg(l.local_addr().unwrap())), 200);
        self.expect(line, 150);
        let (data, from) = l.accept().unwrap();
        (self.data_then_226(data, line).0, from)
    }

    /// [`transfer`](Self::transfer) of a command line given as bytes;
    /// returns the data and the final reply (a 226, possibly multi-line).
    #[track_caller]
    pub fn transfer_bytes(&mut self, line: &[u8]) -> (Vec<u8>, Reply) {
        let what = String::from_utf8_lossy(line).into_owned();
        let data = self.epsv_connect();
        let r = self.cmd_bytes(line);
        assert_eq!(r.code, 150, "{what:?} -> {r:?}");
        self.data_then_226(data, &what)
    }

    /// EPSV, REST `offset`, RETR (REST must come right before RETR).
    #[track_caller]
    pub fn retr_from(&mut self, path: &str, offset: u64) -> Vec<u8> {
        let data = self.epsv_connect();
        self.expect(&format!("REST {offset}"), 350);
        self.expect(&format!("RETR {path}"), 150);
        self.data_then_226(data, &format!("RETR {path} from {offset}"))
            .0
    }

    /// RETR over EPSV.
    #[track_caller]
    pub fn retr(&mut self, path: &str) -> Vec<u8> {
        self.transfer(&format!("RETR {path}"))
    }

    /// A listing command (LIST, NLST, MLSD with optional argument) as text.
    #[track_caller]
    pub fn listing(&mut self, line: &str) -> String {
        String::from_utf8(self.transfer(line)).expect("listing is not UTF-8")
    }

    /// This session's transfer counters (and its shard), from STAT.
    #[track_caller]
    pub fn stat_counters(&mut self) -> Counters {
        let r = self.expect("STAT", 211);
        parse_counters(&r.text()).unwrap_or_else(|| panic!("no session line in STAT: {r:?}"))
    }

    /// The shard's counters, from STAT; only a named account is shown them.
    #[track_caller]
    pub fn shard_counters(&mut self) -> Counters {
        let r = self.expect("STAT", 211);
        parse_shard_counters(&r.text()).unwrap_or_else(|| panic!("no shard line in STAT: {r:?}"))
    }

    pub fn quit(mut self) {
        let r = self.cmd("QUIT");
        assert_eq!(r.code, 221, "QUIT: {r:?}");
    }

    /// The control socket (e.g. for MSG_OOB).
    pub fn socket(&self) -> &TcpStream {
        &self.writer
    }

    pub fn shutdown(&self) {
        let _ = self.writer.shutdown(Shutdown::Both);
    }
}

/// The counters STAT shows: the session's own, or with
/// [`parse_shard_counters`] its shard's (shown to named accounts only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub shard: u32,
    pub spliced: u64,
    /// Of `spliced`, download bytes read past the page cache.
    pub from_disk: u64,
    pub copied: u64,
}

/// Parses the session's line, `ringftp shard N, this session: ... X bytes
/// spliced (zero-copy; D read from disk through a pipe), Y bytes copied`.
pub fn parse_counters(text: &str) -> Option<Counters> {
    counters_of(text.lines().find(|l| l.contains("this session:"))?)
}

/// Parses the shard's line, `ringftp shard N (all sessions): ...`.
pub fn parse_shard_counters(text: &str) -> Option<Counters> {
    counters_of(text.lines().find(|l| l.contains("(all sessions):"))?)
}

fn counters_of(line: &str) -> Option<Counters> {
    let rest = line.split("ringftp shard ").nth(1)?;
    let shard = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let before = |marker: &str| -> Option<u64> {
        let head = rest.split(marker).next()?;
        head.split_whitespace().last()?.parse().ok()
    };
    Some(Counters {
        shard,
        spliced: before(" bytes spliced")?,
        from_disk: before(" read from disk")?,
        copied: before(" bytes copied")?,
    })
}

fn parse_code(line: &str) -> Option<u16> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 3 && b[3] != b' ' && b[3] != b'-' {
        return None;
    }
    line[..3].parse().ok()
}

/// The port of a `229 Entering Extended Passive Mode (|||port|)` line.
pub fn parse_epsv(line: &str) -> Option<u16> {
    let inner = line.split('(').nth(1)?.split(')').next()?;
    let delim = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(delim).collect();
    parts.get(3)?.parse().ok()
}

/// The address of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` line
/// (the six numbers after the reply code, with or without parentheses).
pub fn parse_pasv(line: &str) -> Option<SocketAddr> {
    let rest = line.get(4..)?;
    let open = rest.find(|c: char| c.is_ascii_digit())?;
    let nums: Vec<u16> = rest[open..]
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u16>>>()?;
    if nums.len() != 6 || nums.iter().any(|&n| n > 255) {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0] as u8, nums[1] as u8, nums[2] as u8, nums[3] as u8);
    Some(SocketAddr::new(IpAddr::V4(ip), nums[4] * 256 + nums[5]))
}

/// `PORT h1,h2,h3,h4,p1,p2` for an IPv4 address.
pub fn port_arg(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!(
                "{},{},{},{},{},{}",
                o[0],
                o[1],
                o[2],
                o[3],
                a.port() >> 8,
                a.port() & 0xff
            )
        }
        IpAddr::V6(_) => panic!("PORT cannot carry {a}"),
    }
}

/// `EPRT |1|ip|port|` / `|2|ip|port|`.
pub fn eprt_arg(a: SocketAddr) -> String {
    let proto = if a.is_ipv4() { 1 } else { 2 };
    format!("|{proto}|{}|{}|", a.ip(), a.port())
}

/// Whether a connection arrives at `l` within `wait` (non-blocking poll).
pub fn connection_arrives(l: &TcpListener, wait: Duration) -> Option<TcpStream> {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + wait;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Reads everything from `s` until EOF or a reset; returns the bytes.
pub fn read_all_lenient(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("data connection neither closed nor sent anything within its timeout")
            }
            Err(_) => return out,
        }
    }
}

/// A TCP connection to `to` from the local address `from` (e.g.
/// 127.0.0.2: another client address on loopback), with the test's read
/// and write timeouts.
pub fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    sock.bind(&SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    sock.connect_timeout(&to.into(), IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {from} -> {to}: {e}"));
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Closes `s` with a TCP reset (SO_LINGER 0): what a crashing client or a
/// middlebox does, where a plain close would be a normal end of file.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Sends `bytes` as TCP urgent data (MSG_OOB), as Telnet "Synch" and
/// Python's ftplib `abort()` do.
pub fn send_urgent(s: &TcpStream, bytes: &[u8]) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid fd and buffer for the duration of the call.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_OOB,
        )
    };
    assert_eq!(n, bytes.len() as isize, "send(MSG_OOB)");
}

/// Reads one reply line from a raw stream, or `None` on EOF/reset/timeout.
pub fn first_line(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match s.read(&mut byte) {
            Ok(1) => {
                buf.push(byte[0]);
                if byte[0] == b'\n' {
                    return Some(String::from_utf8_lossy(&buf).trim_end().to_string());
                }
            }
            _ => {
                return (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned());
            }
        }
    }
}
