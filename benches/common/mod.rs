//! Helpers shared by the end-to-end benches: start `ringftp serve`, speak
//! just enough FTP, and report medians.
#![allow(unreachable_pub, reason = "shared by every benchmark binary")]
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Read and write buffer of the bench clients.
pub const BUF: usize = 1 << 20;

/// Reads a stream to its end the fast way (epoll + non-blocking recv into
/// 1 MiB); returns the bytes read.
pub fn fast_read(stream: TcpStream) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async move {
        stream.set_nonblocking(true).unwrap();
        let s = tokio::net::TcpStream::from_std(stream).unwrap();
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        loop {
            s.readable().await.unwrap();
            match s.try_read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            }
        }
    })
}

/// Sends `total` bytes of a fixed 1 MiB pattern with blocking writes, then
/// closes the sending side.
pub fn send_bytes(mut stream: TcpStream, total: u64) {
    let chunk: Vec<u8> = (0..BUF).map(|i| (i * 31 % 251) as u8).collect();
    let mut left = total;
    while left > 0 {
        let n = left.min(BUF as u64) as usize;
        stream.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
}

/// CPU seconds (user + system, all threads) process `pid` has used.
pub fn process_cpu_s(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// CPU seconds the calling thread has used.
pub fn thread_cpu_s() -> f64 {
    let (u, s) = ringftp::engine::sys::thread_cpu_time_us();
    (u + s) as f64 / 1e6
}

/// A `ringftp serve` process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release build on `root` with one shard and `extra` flags.
pub fn start_ringftp(root: &Path, extra: &[&str]) -> Server {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/ringftp");
    assert!(
        bin.exists(),
        "build the server first: cargo build --release"
    );
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--pasv-ports",
            "47000-47099",
            "--log-level",
            "warn",
        ])
        .arg("--root")
        .arg(root)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    Server { child, addr }
}

/// A logged-in control connection.
pub struct Control {
    w: TcpStream,
    r: BufReader<TcpStream>,
    server: SocketAddr,
}

impl Control {
    pub fn login(server: &Server, user: &str, pass: &str) -> Control {
        let ctl = TcpStream::connect(server.addr).unwrap();
        let w = ctl.try_clone().unwrap();
        let mut c = Control {
            w,
            r: BufReader::new(ctl),
            server: server.addr,
        };
        c.expect("220");
        c.cmd(&format!("USER {user}"), "331");
        c.cmd(&format!("PASS {pass}"), "230");
        c.cmd("TYPE I", "200");
        c
    }

    /// Waits for a final reply with `code`; returns its line.
    pub fn expect(&mut self, code: &str) -> String {
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).unwrap();
            assert!(
                line.len() >= 4 && &line[..3] == code,
                "expected {code}, got {line:?}"
            );
            if line.as_bytes()[3] == b' ' {
                return line;
            }
        }
    }

    pub fn send(&mut self, cmd: &str) {
        write!(self.w, "{cmd}\r\n").unwrap();
    }

    pub fn cmd(&mut self, cmd: &str, code: &str) -> String {
        self.send(cmd);
        self.expect(code)
    }

    /// EPSV, then a connected data socket.
    pub fn epsv(&mut self) -> TcpStream {
        let line = self.cmd("EPSV", "229");
        let port: u16 = line.split('|').nth(3).unwrap().parse().unwrap();
        TcpStream::connect((self.server.ip(), port)).unwrap()
    }
}

pub fn gib_s(n: u64, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64() / (1u64 << 30) as f64
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// `cargo bench` passes --bench; `cargo test --benches` runs a bench with no
/// flag and only wants to know it builds.
pub fn benching() -> bool {
    std::env::args().any(|a| a == "--bench")
}

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
