//! RETR of one large cached file over loopback: ringftp (io_uring splice)
//! against a plain blocking `sendfile(2)` loop serving the same file, both
//! read by the same fast reader (epoll + non-blocking recv into 1 MiB).
//!
//! `cargo bench --bench retr_vs_sendfile` (env: RETR_BENCH_SIZE_MIB, default
//! 1024; RETR_BENCH_REPS, default 3). Prints each run and the median ratio.
//! The machine is shared and noisy, so the two are interleaved in one run.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringftp::engine::sys;

const BUF: usize = 1 << 20;

/// Reads a stream to its end the fast way; returns the bytes read.
fn fast_read(stream: TcpStream) -> u64 {
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

/// The ceiling: accept one connection, sendfile the whole file, close.
fn sendfile_once(file: &Path) -> (u64, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let path = file.to_path_buf();
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        let f = std::fs::File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize;
        let mut off = 0i64;
        while (off as usize) < len {
            let left = len - off as usize;
            let n =
                sys::sendfile_blocking(sock.as_raw_fd(), f.as_raw_fd(), &mut off, left).unwrap();
            if n == 0 {
                break;
            }
        }
    });
    let start = Instant::now();
    let n = fast_read(TcpStream::connect(addr).unwrap());
    let t = start.elapsed();
    server.join().unwrap();
    (n, t)
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_ringftp(root: &Path) -> Server {
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

fn expect(r: &mut BufReader<TcpStream>, code: &str) -> String {
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.len() >= 4 && line.starts_with(code) && line.as_bytes()[3] == b' ' {
            return line;
        }
        assert!(
            line.len() >= 4 && &line[..3] == code,
            "expected {code}, got {line:?}"
        );
    }
}

fn ftp_once(server: &Server, name: &str) -> (u64, Duration) {
    let ctl = TcpStream::connect(server.addr).unwrap();
    let mut w = ctl.try_clone().unwrap();
    let mut r = BufReader::new(ctl);
    expect(&mut r, "220");
    for (cmd, code) in [
        ("USER anonymous", "331"),
        ("PASS bench@", "230"),
        ("TYPE I", "200"),
    ] {
        write!(w, "{cmd}\r\n").unwrap();
        expect(&mut r, code);
    }
    write!(w, "EPSV\r\n").unwrap();
    let line = expect(&mut r, "229");
    let port: u16 = line.split('|').nth(3).unwrap().parse().unwrap();
    let data = TcpStream::connect((server.addr.ip(), port)).unwrap();
    let start = Instant::now();
    write!(w, "RETR {name}\r\n").unwrap();
    expect(&mut r, "150");
    let n = fast_read(data);
    let t = start.elapsed();
    expect(&mut r, "226");
    write!(w, "QUIT\r\n").unwrap();
    (n, t)
}

fn gib_s(n: u64, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64() / (1u64 << 30) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no
    // flag and only wants to know we build.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mib: u64 = std::env::var("RETR_BENCH_SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let reps: usize = std::env::var("RETR_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.bin");
    {
        let mut f = std::fs::File::create(&file).unwrap();
        let chunk: Vec<u8> = (0..BUF).map(|i| (i * 31 % 251) as u8).collect();
        for _ in 0..mib {
            f.write_all(&chunk).unwrap();
        }
    }
    // Warm the page cache so both read from memory.
    std::io::copy(
        &mut std::fs::File::open(&file).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();
    let server = start_ringftp(dir.path());
    let size = mib << 20;
    let (mut ring, mut ceil) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let (n, t) = sendfile_once(&file);
        assert_eq!(n, size);
        ceil.push(gib_s(n, t));
        let (n, t) = ftp_once(&server, "big.bin");
        assert_eq!(n, size);
        ring.push(gib_s(n, t));
        println!(
            "rep {}: sendfile {:.2} GiB/s, ringftp {:.2} GiB/s",
            i + 1,
            ceil[i],
            ring[i]
        );
    }
    let ratios: Vec<f64> = ring.iter().zip(&ceil).map(|(r, c)| r / c).collect();
    println!(
        "{mib} MiB RETR, median of {reps}: sendfile {:.2} GiB/s, ringftp {:.2} GiB/s, ratio {:.3} (median of per-rep ratios {:.3})",
        median(ceil.clone()),
        median(ring.clone()),
        median(ring) / median(ceil),
        median(ratios)
    );
}
