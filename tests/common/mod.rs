//! The shared harness of the integration tests: start the real `ringftp`
//! binary on a loopback address with its own temporary root and its own
//! passive port range, talk to it with a small raw FTP control client, run
//! real FTP clients (curl, lftp, wget, Python's ftplib) as subprocesses
//! under `timeout`, and compare downloaded bytes with the source.
//!
//! Every server is killed when its [`Server`] is dropped (also while a test
//! panics), and dies with the test process otherwise (PR_SET_PDEATHSIG).

#![allow(dead_code)]

pub mod hostile;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ringftp");

/// How long a reply or a data read may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Passive port ranges
// ---------------------------------------------------------------------------

/// Ports per test binary.
const PORTS_PER_BINARY: u16 = 375;

/// Each test binary owns 375 ports above Linux's default ephemeral range
/// (32768-60999), so a client's ephemeral port never lands in a server's
/// passive range, and away from the ranges the other ringftp tools use
/// (50000-50999 by default, 45000-45999 in the load-generator tests);
/// inside a binary, tests (which run in parallel threads) take disjoint
/// blocks from an atomic counter.
fn binary_base() -> u16 {
    const BINARIES: [&str; 12] = [
        "cli",
        "curl",
        "ftplib",
        "lftp",
        "wget",
        "ipv6",
        "security",
        "zero_copy",
        "concurrency",
        "protocol",
        "xferlog",
        "other",
    ];
    let name = env!("CARGO_CRATE_NAME");
    let idx = BINARIES.iter().position(|b| *b == name).unwrap_or_else(|| {
        // A binary not in the table: a stable slot from its name.
        name.bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
            % BINARIES.len()
    });
    61_000 + PORTS_PER_BINARY * idx as u16
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A block of `n` passive ports no other test of this binary uses:
/// `(lo, hi)` inclusive.
pub fn port_block(n: u16) -> (u16, u16) {
    let off = NEXT_PORT.fetch_add(n, Ordering::SeqCst);
    assert!(
        off + n <= PORTS_PER_BINARY,
        "this test binary used up its {PORTS_PER_BINARY} passive ports"
    );
    let lo = binary_base() + off;
    (lo, lo + n - 1)
}

// ---------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------

/// `len` deterministic pseudo-random bytes (xorshift64*), fast enough for
/// the 80 MiB files of the big-file tests.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Text with LF line ends (for TYPE A tests).
pub fn text_lines(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    s.into_bytes()
}

/// Writes `data` to `root/rel`, creating parent directories.
pub fn write(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, data).unwrap();
    p
}

pub fn mkdir(root: &Path, rel: &str) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    p
}

pub fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// Sets a file's modification time to `unix` seconds.
pub fn set_mtime(path: &Path, unix: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(unix))
        .unwrap();
}

/// The sha256 of `data`, by `sha256sum` (only used for failure messages).
pub fn sha256(data: &[u8]) -> String {
    let mut child = match Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return "(sha256sum unavailable)".into(),
    };
    let mut stdin = child.stdin.take().unwrap();
    let owned = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&owned);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Asserts two byte strings are equal; on mismatch says where they differ
/// and prints both sha256 sums instead of megabytes of bytes.
#[track_caller]
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: content differs: got {} bytes (sha256 {}), want {} bytes (sha256 {}); first difference at offset {first}",
        got.len(),
        sha256(got),
        want.len(),
        sha256(want)
    );
}

/// Reads `got` and `want` and asserts they are byte-for-byte equal.
#[track_caller]
pub fn assert_same_file(got: &Path, want: &Path) {
    let g = std::fs::read(got).unwrap_or_else(|e| panic!("cannot read {}: {e}", got.display()));
    let w = std::fs::read(want).unwrap_or_else(|e| panic!("cannot read {}: {e}", want.display()));
    assert_bytes_eq(&format!("{} vs {}", got.display(), want.display()), &g, &w);
}

/// Every regular file under `dir` (following symlinks to files), as
/// relative path -> bytes. Directories map to `None` so that empty
/// directories count too.
pub fn tree_contents(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{}: {e} (a dangling link?)", p.display()));
            if meta.is_dir() {
                out.insert(rel, None);
                walk(base, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts that `got` holds exactly the files and directories of `want`,
/// each file byte for byte. `ignore` names (e.g. wget's `.listing`) are
/// skipped in `got`.
#[track_caller]
pub fn assert_same_tree(got: &Path, want: &Path, ignore: &[&str]) {
    let mut g = tree_contents(got);
    g.retain(|k, _| {
        !ignore
            .iter()
            .any(|i| Path::new(k).file_name().is_some_and(|n| n == *i))
    });
    let w = tree_contents(want);
    let gk: Vec<_> = g.keys().collect();
    let wk: Vec<_> = w.keys().collect();
    assert_eq!(
        gk,
        wk,
        "the downloaded tree {} has other names than the source {}",
        got.display(),
        want.display()
    );
    for (k, wv) in &w {
        match (wv, &g[k]) {
            (None, None) => {}
            (Some(wb), Some(gb)) => assert_bytes_eq(k, gb, wb),
            _ => panic!("{k}: a file on one side, a directory on the other"),
        }
    }
}

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

/// Options for starting `ringftp serve`.
pub struct ServerBuilder {
    root: Option<PathBuf>,
    listen: Vec<String>,
    cores: usize,
    ports: u16,
    pasv_range: Option<(u16, u16)>,
    extra: Vec<String>,
    fd_limit: Option<u64>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            root: None,
            listen: vec!["127.0.0.1:0".into()],
            cores: 1,
            ports: 10,
            pasv_range: None,
            extra: Vec::new(),
            fd_limit: None,
        }
    }
}

impl ServerBuilder {
    /// Serve this directory instead of the fresh temporary root.
    pub fn root(mut self, dir: &Path) -> Self {
        self.root = Some(dir.to_path_buf());
        self
    }

    /// Replaces the listen addresses.
    pub fn listen(mut self, addrs: &[&str]) -> Self {
        self.listen = addrs.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn cores(mut self, n: usize) -> Self {
        self.cores = n;
        self
    }

    /// How many passive ports (a fresh block of this binary's range).
    pub fn ports(mut self, n: u16) -> Self {
        self.ports = n;
        self
    }

    /// An extra command-line argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra.push(a.into());
        self
    }

    /// Starts the server with RLIMIT_NOFILE set to `n` (soft and hard, so
    /// the server cannot raise it): for running it out of fds on purpose.
    pub fn fd_limit(mut self, n: u64) -> Self {
        self.fd_limit = Some(n);
        self
    }

    /// Starts the server and waits for its `listening on` lines.
    pub fn start(self, fixture: &Fixture) -> Server {
        let root = self.root.clone().unwrap_or_else(|| fixture.root.clone());
        let (lo, hi) = self.pasv_range.unwrap_or_else(|| port_block(self.ports));
        let log = fixture.work.join(format!(
            "server-{}.log",
            NEXT_LOG.fetch_add(1, Ordering::SeqCst)
        ));
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--root")
            .arg(&root)
            .arg("--cores")
            .arg(self.cores.to_string())
            .arg("--pasv-ports")
            .arg(format!("{lo}-{hi}"))
            .arg("--log-level")
            .arg("debug");
        for l in &self.listen {
            cmd.arg("--listen").arg(l);
        }
        cmd.args(&self.extra);
        cmd.env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        die_with_parent(&mut cmd);
        if let Some(n) = self.fd_limit {
            // SAFETY: setrlimit is async-signal-safe and touches only the
            // struct on this stack.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("cannot start ringftp");

        // Read the `listening on` lines on a thread (so a silent server
        // fails the test instead of hanging it), then keep draining stdout.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let mut addrs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut server = Server {
            child,
            addrs: Vec::new(),
            root,
            log,
            pasv: (lo, hi),
        };
        while addrs.len() < self.listen.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening on ") {
                        addrs.push(
                            a.trim()
                                .parse::<SocketAddr>()
                                .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}")),
                        );
                    }
                }
                Err(_) => panic!(
                    "ringftp printed {} of {} `listening on` lines within 20 s; log:\n{}",
                    addrs.len(),
                    self.listen.len(),
                    server.log_text()
                ),
            }
        }
        server.addrs = addrs;
        server
    }
}

static NEXT_LOG: AtomicU16 = AtomicU16::new(0);

/// Makes the kernel kill a child when the test process dies (a test binary
/// killed by a CI timeout leaves no server behind).
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A running `ringftp serve`; killed on drop.
pub struct Server {
    child: Child,
    /// The addresses from the `listening on` lines, in order.
    pub addrs: Vec<SocketAddr>,
    pub root: PathBuf,
    log: PathBuf,
    /// The passive port range it was given.
    pub pasv: (u16, u16),
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `ftp://ADDR:PORT` for the first listener (IPv6 in brackets).
    pub fn url(&self) -> String {
        format!("ftp://{}", self.addr())
    }

    /// A logged-in control connection.
    pub fn login(&self) -> Ftp {
        let mut f = Ftp::connect(self.addr());
        f.login();
        f
    }

    /// The server's log so far (stderr, at debug level).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asserts the server still serves: the process runs, a new session
    /// logs in, answers NOOP and downloads `path` byte-exact.
    #[track_caller]
    pub fn assert_serving(&mut self, path: &str) {
        assert!(self.alive(), "ringftp exited; log:\n{}", self.log_text());
        let want = std::fs::read(self.root.join(path.trim_start_matches('/'))).unwrap();
        let mut f = self.login();
        f.expect("NOOP", 200);
        let got = f.retr(path);
        assert_bytes_eq(&format!("after-test download of {path}"), &got, &want);
        f.quit();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            print_log_tail(&self.log_text());
        }
    }
}

/// Prints the last 60 lines of a server's log (for a failing test).
pub fn print_log_tail(log: &str) {
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    eprintln!("---- ringftp log (last {} lines) ----", tail.len());
    for l in tail.iter().rev() {
        eprintln!("{l}");
    }
}

/// A test's temporary directories: `root` (served) and `work` (downloads,
/// server log, scratch). Both are removed on drop.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub work: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        Self::in_dir(
            tempfile::Builder::new()
                .prefix("ringftp-itest-")
                .tempdir()
                .unwrap(),
        )
    }

    /// A fixture under the build's own temporary directory (target/tmp),
    /// on the disk the build lives on even where /tmp is a tmpfs, for
    /// tests that need pages to leave the page cache.
    pub fn on_disk() -> Fixture {
        Self::in_dir(
            tempfile::Builder::new()
                .prefix("ringftp-itest-")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .unwrap(),
        )
    }

    fn in_dir(dir: tempfile::TempDir) -> Fixture {
        let root = dir.path().join("root");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        Fixture {
            _dir: dir,
            root,
            work,
        }
    }

    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        write(&self.root, rel, data)
    }

    /// The bytes of a served file.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root.join(rel)).unwrap()
    }

    /// A path under `work` (not served).
    pub fn out(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }

    /// The standard small tree most tests use:
    ///
    /// ```text
    /// hello.txt                 text, LF line ends
    /// empty                     0 bytes
    /// dir/a.bin                 100 KiB pseudo-random
    /// dir/b.bin                 1 MiB + 3 bytes
    /// dir/sub/deeper/c.txt
    /// with space.txt
    /// héllo wörld.txt
    /// 日本.txt
    /// link-to-a -> dir/a.bin    relative symlink inside the root
    /// ```
    pub fn standard_tree(&self) {
        self.write("hello.txt", &text_lines(50));
        self.write("empty", b"");
        self.write("dir/a.bin", &pattern(1, 100 * 1024));
        self.write("dir/b.bin", &pattern(2, (1 << 20) + 3));
        self.write("dir/sub/deeper/c.txt", b"deep file\n");
        self.write("with space.txt", b"a name with spaces\n");
        self.write(
            "h\u{e9}llo w\u{f6}rld.txt",
            "UTF-8 name: h\u{e9}llo\n".as_bytes(),
        );
        self.write("\u{65e5}\u{672c}.txt", "\u{65e5}\u{672c}\n".as_bytes());
        symlink(&self.root, "link-to-a", "dir/a.bin");
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

// ---------------------------------------------------------------------------
// A raw FTP control client
// ---------------------------------------------------------------------------

/// One FTP reply: the code and every line (without CRLF).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
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
        let sock =
            socket2::Socket::new(socket2::Domain::for_address(a), socket2::Type::STREAM, None)
                .unwrap();
        sock.bind(&SocketAddr::new(local, 0).into())
            .unwrap_or_else(|e| panic!("bind {local}: {e}"));
        sock.connect_timeout(&a.into(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("data connect to {a}: {e}"));
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    /// Runs a transfer command over EPSV and returns the data bytes, after
    /// asserting 150 before and 226 after.
    #[track_caller]
    pub fn transfer(&mut self, line: &str) -> Vec<u8> {
        let mut data = self.epsv_connect();
        self.expect(line, 150);
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .unwrap_or_else(|e| panic!("{line}: reading the data connection: {e}"));
        let r = self.read_reply();
        assert_eq!(r.code, 226, "{line}: after the data: {r:?}");
        buf
    }

    /// EPSV, REST `offset`, RETR (REST must come right before RETR).
    #[track_caller]
    pub fn retr_from(&mut self, path: &str, offset: u64) -> Vec<u8> {
        let mut data = self.epsv_connect();
        self.expect(&format!("REST {offset}"), 350);
        self.expect(&format!("RETR {path}"), 150);
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).unwrap_or_else(|e| {
            panic!("RETR {path} from {offset}: reading the data connection: {e}")
        });
        let r = self.read_reply();
        assert_eq!(
            r.code, 226,
            "RETR {path} from {offset}: after the data: {r:?}"
        );
        buf
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

    /// STAT (no argument): this session's shard and its counters.
    #[track_caller]
    pub fn stat_counters(&mut self) -> Counters {
        let r = self.expect("STAT", 211);
        parse_counters(&r.text()).unwrap_or_else(|| panic!("no shard line in STAT: {r:?}"))
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

/// The per-shard counters STAT shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub shard: u32,
    pub spliced: u64,
    /// Of `spliced`, download bytes read past the page cache.
    pub from_disk: u64,
    pub copied: u64,
}

/// Parses `ringftp shard N: ... X bytes spliced (zero-copy; D read from
/// disk through a pipe), Y bytes copied`.
pub fn parse_counters(text: &str) -> Option<Counters> {
    let line = text.lines().find(|l| l.contains("ringftp shard"))?;
    let rest = line.split("ringftp shard ").nth(1)?;
    let shard = rest.split(':').next()?.trim().parse().ok()?;
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

// ---------------------------------------------------------------------------
// Running real clients
// ---------------------------------------------------------------------------

/// What a client subprocess did.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Asserts exit status 0, showing the output otherwise.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed ({}; 124 = timed out)\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit that is not a timeout.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        let code = self.status.code();
        assert!(
            !self.status.success() && code != Some(124) && code != Some(137),
            "{} should have failed promptly, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout + stderr.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `prog args` under `timeout -k 5 SECS` with stdin closed and
/// without proxy settings from the environment; a hung client is killed
/// and fails the test (exit 124).
pub fn run_client(secs: u64, prog: &str, args: &[&str], cwd: Option<&Path>) -> Run {
    run_client_env(secs, prog, args, cwd, &[])
}

pub fn run_client_env(
    secs: u64,
    prog: &str,
    args: &[&str],
    cwd: Option<&Path>,
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("5")
        .arg(secs.to_string())
        .arg(prog)
        .args(args);
    for v in [
        "ftp_proxy",
        "FTP_PROXY",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::null());
    die_with_parent(&mut cmd);
    let what = format!("{prog} {}", args.join(" "));
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Run {
        what,
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// curl with `-q` (no ~/.curlrc), `-sS`, no proxy and short connect timeout.
pub fn curl(args: &[&str]) -> Run {
    let mut a = vec![
        "-q",
        "-sS",
        "--noproxy",
        "*",
        "--connect-timeout",
        "10",
        "--max-time",
        "60",
    ];
    a.extend_from_slice(args);
    run_client(90, "curl", &a, None)
}

/// lftp settings that make it fail fast instead of retrying forever.
pub const LFTP_SETTINGS: &str = "set cmd:fail-exit yes; set net:max-retries 1; \
     set net:reconnect-interval-base 1; set net:reconnect-interval-max 1; \
     set net:persist-retries 0; set net:timeout 20; set ftp:ssl-allow no; \
     set cmd:interactive no; set xfer:clobber yes";

/// Runs `lftp -c "settings; open URL; SCRIPT"` in `cwd`, with its home
/// (history, rc files) in `home` and a UTF-8 locale (lftp recodes names
/// to the local charset).
pub fn lftp(url: &str, script: &str, cwd: &Path, home: &Path) -> Run {
    let full = format!("{LFTP_SETTINGS}; set file:charset utf-8; open {url}; {script}");
    std::fs::create_dir_all(home).unwrap();
    let home_s = home.to_string_lossy().into_owned();
    run_client_env(
        300,
        "lftp",
        &["-c", &full],
        Some(cwd),
        &[
            ("HOME", &home_s),
            ("LFTP_HOME", &home_s),
            ("LC_ALL", "C.UTF-8"),
            ("LANG", "C.UTF-8"),
        ],
    )
}

/// The path of a Python client script in tests/clients.
pub fn client_script(name: &str) -> String {
    format!("{}/tests/clients/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `python3 tests/clients/NAME args...`.
pub fn python(name: &str, args: &[&str]) -> Run {
    let script = client_script(name);
    let mut a = vec!["-u", script.as_str()];
    a.extend_from_slice(args);
    run_client(180, "python3", &a, None)
}

/// Runs scenario `name` of the Python client `script` (the scenario name
/// is its first argument, `args` the rest); it must exit 0 with `OK` as
/// its last line. Returns its stdout.
pub fn python_scenario(script: &str, name: &str, args: &[&str]) -> String {
    let mut a = vec![name];
    a.extend_from_slice(args);
    let r = python(script, &a);
    r.ok();
    assert_eq!(
        r.stdout.lines().last(),
        Some("OK"),
        "scenario {name} did not finish:\n{}",
        r.all()
    );
    r.stdout
}

/// Runs one scenario of tests/clients/upload_client.py as alice (password
/// `alice-pw`, home `/alice` under the fixture's root); returns its stdout.
pub fn upload_scenario(fx: &Fixture, srv: &Server, name: &str, arg: Option<&str>) -> String {
    let host = srv.addr().ip().to_string();
    let port = srv.port().to_string();
    let home = fx.root.join("alice").to_string_lossy().into_owned();
    let mut args = vec![host.as_str(), &port, "alice", "alice-pw", &home];
    if let Some(a) = arg {
        args.push(a);
    }
    python_scenario("upload_client.py", name, &args)
}

/// Resolves `host:port` (for tests that need a SocketAddr from a string).
pub fn sockaddr(s: &str) -> SocketAddr {
    s.to_socket_addrs().unwrap().next().unwrap()
}

/// Panics unless IPv6 loopback works: the server promises IPv6, so a
/// machine without `::1` fails these tests rather than skipping them.
/// `RINGFTP_SKIP_IPV6=1` skips them explicitly (returns false).
pub fn require_ipv6() -> bool {
    if std::env::var("RINGFTP_SKIP_IPV6").as_deref() == Ok("1") {
        eprintln!("RINGFTP_SKIP_IPV6=1: skipping an IPv6 test");
        return false;
    }
    if let Err(e) = TcpListener::bind("[::1]:0") {
        panic!("IPv6 loopback [::1] is unusable here ({e}); set RINGFTP_SKIP_IPV6=1 to skip the IPv6 tests");
    }
    true
}

// ---------------------------------------------------------------------------
// Accounts (--users)
// ---------------------------------------------------------------------------

/// One `[[user]]` of a users file.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub password: String,
    /// The home as written in the file (a virtual path under --root).
    pub home: String,
    pub perms: Vec<String>,
    /// Extra `key = value` lines (rates, or a deliberately bad field).
    pub extra: Vec<String>,
    /// The `password = ...` value instead of a hash of `password`.
    pub raw_hash: Option<String>,
}

/// Every permission the users file knows.
pub const ALL_PERMS: &[&str] = &[
    "list", "read", "write", "append", "delete", "mkdir", "rename", "chmod",
];

impl Account {
    /// `name` with password `name-pw`, home `/name`, permissions `perms`.
    pub fn new(name: &str, perms: &[&str]) -> Account {
        Account {
            name: name.into(),
            password: format!("{name}-pw"),
            home: format!("/{name}"),
            perms: perms.iter().map(|s| s.to_string()).collect(),
            extra: Vec::new(),
            raw_hash: None,
        }
    }

    /// Every permission.
    pub fn full(name: &str) -> Account {
        Account::new(name, ALL_PERMS)
    }

    pub fn home(mut self, home: &str) -> Account {
        self.home = home.into();
        self
    }

    pub fn password(mut self, pw: &str) -> Account {
        self.password = pw.into();
        self
    }

    pub fn extra(mut self, line: &str) -> Account {
        self.extra.push(line.into());
        self
    }

    /// Writes this string as the `password` field verbatim.
    pub fn raw_hash(mut self, h: &str) -> Account {
        self.raw_hash = Some(h.into());
        self
    }

    fn toml(&self) -> String {
        let hash = self
            .raw_hash
            .clone()
            .unwrap_or_else(|| hash_password(&self.password));
        let perms: Vec<String> = self.perms.iter().map(|p| format!("{p:?}")).collect();
        let mut s = format!(
            "[[user]]\nname = {:?}\npassword = {:?}\nhome = {:?}\npermissions = [{}]\n",
            self.name,
            hash,
            self.home,
            perms.join(", ")
        );
        for l in &self.extra {
            s.push_str(l);
            s.push('\n');
        }
        s.push('\n');
        s
    }
}

/// An argon2id PHC hash of `pw` (ringftp's own `auth::password::hash`, the
/// code behind `ringftp passwd`), computed once per password per process.
pub fn hash_password(pw: &str) -> String {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(h) = cache.lock().unwrap().get(pw) {
        return h.clone();
    }
    let h = ringftp::auth::password::hash(pw.as_bytes()).expect("argon2 hash");
    cache.lock().unwrap().insert(pw.into(), h.clone());
    h
}

/// The text of a users file with `accounts`.
pub fn users_toml(accounts: &[Account]) -> String {
    accounts.iter().map(Account::toml).collect()
}

impl Fixture {
    /// Writes `work/NAME` as a users file for `accounts` and creates each
    /// account's home under the root (a home that must not exist is made
    /// with [`users_toml`] by hand).
    pub fn users_file(&self, name: &str, accounts: &[Account]) -> PathBuf {
        for a in accounts {
            let rel = a.home.trim_start_matches('/');
            if !rel.split('/').any(|c| c == "..") {
                mkdir(&self.root, rel);
            }
        }
        let p = self.work.join(name);
        std::fs::write(&p, users_toml(accounts)).unwrap();
        p
    }
}

impl ServerBuilder {
    /// `--users FILE`.
    pub fn users(self, file: &Path) -> Self {
        self.arg("--users").arg(file.to_string_lossy().into_owned())
    }
}

impl Server {
    /// A control connection logged in as `user`.
    #[track_caller]
    pub fn login_as(&self, user: &str, password: &str) -> Ftp {
        let mut f = Ftp::connect(self.addr());
        f.login_as(user, password);
        f
    }

    /// The process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. libc::SIGHUP) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits until the log contains `needle` `count` times in all; panics
    /// after `wait`.
    #[track_caller]
    pub fn wait_log(&self, needle: &str, count: usize, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let log = self.log_text();
            if log.matches(needle).count() >= count {
                return log;
            }
            if Instant::now() >= deadline {
                panic!("the log has no {count}x {needle:?} after {wait:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Exits with the process: waits for it and returns its status.
    pub fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Ftp {
    /// Connects from a given local address (e.g. 127.0.0.2, to look like
    /// another client host) and reads the greeting.
    pub fn connect_from(local: IpAddr, addr: SocketAddr) -> Ftp {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        sock.bind(&SocketAddr::new(local, 0).into())
            .unwrap_or_else(|e| panic!("bind {local}: {e}"));
        sock.connect_timeout(&addr.into(), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {addr} from {local}: {e}"));
        Ftp::from_stream(sock.into())
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
}

/// `sha256sum` of a file (hex).
pub fn sha256_file(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap_or_else(|e| panic!("sha256sum {}: {e}", p.display()));
    assert!(out.status.success(), "sha256sum {}", p.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// relative path -> sha256 of every regular file under `dir` ("dir" for
/// directories), by `sha256sum`.
pub fn sha256_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else {
                out.insert(rel, sha256_file(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Names in `dir` (not recursive), sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
