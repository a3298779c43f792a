//! What one control round trip costs the serving thread under each way of
//! waiting, with no FTP in it: a client sends `NOOP\r\n` and waits for
//! `200 NOOP ok.\r\n`, 40,000 times, over loopback TCP; the server thread
//! is pinned to the first CPU of the process, the client to the second
//! (when there is one). Printed per round trip: the server thread's CPU
//! time (user and system, from /proc/thread-self/stat, clock ticks;
//! `loadgen::procstat::thread_ticks`) and the client's mean round trip.
//!
//! - `blocking`: read(2) and write(2) on a blocking socket, one thread per
//!   connection (what a process-per-session peer does per command, less
//!   its parsing: the floor);
//! - `tokio-uring, on block_on`: the connection served by the future that
//!   tokio-uring's `Runtime::block_on` runs, waiting on tokio's reactor
//!   (epoll) as ringftp's control reader does (`sys::ReadReadiness`),
//!   reading and writing with non-blocking syscalls;
//! - `tokio-uring, spawned task`: the same in a task spawned on the
//!   runtime's LocalSet, as every ringftp session is: the wake goes from
//!   the reactor to the task's waker, to the LocalSet, to block_on.
//!
//! - `ringftp serve`: the release binary (`target/release/ringftp`, or
//!   `RINGFTP_BIN`), `--cores 1` (its shard pinned to the first CPU), an
//!   anonymous session sending NOOP: the whole process tree's CPU (its
//!   other threads idle), `loadgen::procstat::tree_ticks`, the load
//!   generator's /proc method.
//!
//! - peers: `RINGFTP_FLOOR_PEERS=NAME@ADDR@PID,...` names FTP servers
//!   already running (pinned to the first CPU, anonymous login allowed),
//!   measured the same way over their whole process tree (a forking
//!   server's session process included).
//!
//! The difference between the tokio-uring task and `ringftp serve` is
//! what ringftp's own command path adds to the runtime's. `cargo build
//! --release && cargo bench --bench runtime_floor`; the peers' set-up is
//! in docs/benchmarks.md (thirteenth pass).
#![allow(missing_docs, reason = "a bench binary")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use std::rc::Rc;

use ringftp::engine::sys::ReadReadiness;
use ringftp::loadgen::procstat::{thread_ticks, tree_ticks};

const ROUND_TRIPS: u32 = 40_000;
const REPLY: &[u8] = b"200 NOOP ok.\r\n";

/// µs of CPU per round trip between two (user, system) tick readings.
fn per_trip(before: (u64, u64), after: (u64, u64)) -> (f64, f64) {
    let us = 1e6 / rustix::param::clock_ticks_per_second() as f64 / f64::from(ROUND_TRIPS);
    (
        after.0.saturating_sub(before.0) as f64 * us,
        after.1.saturating_sub(before.1) as f64 * us,
    )
}

fn pin(nth: usize) {
    let set = rustix::thread::sched_getaffinity(None).unwrap();
    let cpus: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&c| set.is_set(c))
        .collect();
    let mut only = rustix::thread::CpuSet::new();
    only.set(cpus[nth % cpus.len()]);
    rustix::thread::sched_setaffinity(None, &only).unwrap();
}

/// Reads one request (up to its LF) from a non-blocking socket into
/// `buf`; `Ok(false)` when the socket has nothing yet.
fn answer_ready(s: &mut &TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    match s.read(buf) {
        Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => {
            s.write_all(REPLY)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Serves one connection of `ROUND_TRIPS` requests on tokio's reactor,
/// from inside a tokio-uring runtime, waiting as ringftp's control reader
/// does (`sys::ReadReadiness`: edge-triggered readability, then read
/// until the socket is empty).
async fn serve_async(s: TcpStream) {
    s.set_nonblocking(true).unwrap();
    let s = Rc::new(s);
    let ready = ReadReadiness::register(s.clone()).unwrap();
    let mut s = &*s;
    let mut buf = [0u8; 512];
    let mut served = 0;
    while served < ROUND_TRIPS {
        ready.wait().await.unwrap();
        loop {
            match answer_ready(&mut s, &mut buf) {
                Ok(true) => served += 1,
                Ok(false) => break,
                Err(_) => return,
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Way {
    Blocking,
    BlockOn,
    Spawned,
}

/// The client's side: `ROUND_TRIPS` NOOPs on `c`; mean µs each.
fn noops(c: &mut TcpStream) -> f64 {
    let mut buf = [0u8; 64];
    let start = Instant::now();
    for _ in 0..ROUND_TRIPS {
        c.write_all(b"NOOP\r\n").unwrap();
        let mut got = 0;
        while buf[..got].last() != Some(&b'\n') {
            got += c.read(&mut buf[got..]).unwrap();
        }
        assert!(
            buf.starts_with(b"200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..got])
        );
    }
    start.elapsed().as_secs_f64() / f64::from(ROUND_TRIPS) * 1e6
}

/// Reads one reply (its last line: three digits and a space) and returns
/// its code.
fn reply(c: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a reply");
        all.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&all);
        if !text.ends_with('\n') {
            continue;
        }
        if let Some(last) = text
            .lines()
            .find(|l| l.len() > 3 && l.as_bytes()[3] == b' ')
        {
            return last[..3].to_string();
        }
    }
}

/// NOOPs against the FTP server at `addr` whose process tree is `pid`,
/// after an anonymous login: its (user, system) CPU µs per NOOP, and the
/// client's mean round trip.
fn run_server(addr: &str, pid: u32) -> (f64, f64, f64) {
    pin(1);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    assert_eq!(reply(&mut c), "220");
    c.write_all(b"USER anonymous\r\n").unwrap();
    // pure-ftpd logs anonymous in at USER; the others ask for a password.
    if reply(&mut c) == "331" {
        c.write_all(b"PASS x@example.com\r\n").unwrap();
        assert_eq!(reply(&mut c), "230");
    }
    let before = tree_ticks(pid).unwrap();
    let wall = noops(&mut c);
    let (user, sys) = per_trip(before, tree_ticks(pid).unwrap());
    (user, sys, wall)
}

/// [`run_server`] on the ringftp binary; None when there is none.
fn run_ringftp() -> Option<(f64, f64, f64)> {
    let bin = std::env::var_os("RINGFTP_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/ringftp").into());
    if !bin.exists() {
        println!("(no {}: ringftp not measured)", bin.display());
        return None;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut child = std::process::Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--cores", "1", "--root"])
        .arg(root.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let got = run_server(&addr, child.id());
    let _ = child.kill();
    let _ = child.wait();
    Some(got)
}

fn run(way: Way) -> (f64, f64, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        pin(0);
        let (s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let before = thread_ticks().unwrap();
        match way {
            Way::Blocking => {
                let mut s = s;
                let mut buf = [0u8; 512];
                for _ in 0..ROUND_TRIPS {
                    if s.read(&mut buf).unwrap() == 0 {
                        break;
                    }
                    s.write_all(REPLY).unwrap();
                }
            }
            Way::BlockOn => tokio_uring::start(serve_async(s)),
            Way::Spawned => tokio_uring::start(async move {
                tokio_uring::spawn(serve_async(s)).await.unwrap();
            }),
        }
        per_trip(before, thread_ticks().unwrap())
    });
    pin(1);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let wall = noops(&mut c);
    let (user, sys) = server.join().unwrap();
    (user, sys, wall)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it once,
    // short, as a smoke test.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        3
    } else {
        1
    };
    println!("per round trip, µs: server thread user, system; client wall");
    for round in 1..=rounds {
        for (name, way) in [
            ("blocking", Way::Blocking),
            ("tokio-uring, on block_on", Way::BlockOn),
            ("tokio-uring, spawned task", Way::Spawned),
        ] {
            let (user, sys, wall) = run(way);
            println!("round {round} {name:<28} user {user:6.2}  sys {sys:6.2}  wall {wall:6.2}");
        }
        if let Some((user, sys, wall)) = run_ringftp() {
            let name = "ringftp serve";
            println!("round {round} {name:<28} user {user:6.2}  sys {sys:6.2}  wall {wall:6.2}");
        }
        let peers = std::env::var("RINGFTP_FLOOR_PEERS").unwrap_or_default();
        for peer in peers.split(',').filter(|p| !p.is_empty()) {
            let [name, addr, pid] = peer.split('@').collect::<Vec<_>>()[..] else {
                panic!("RINGFTP_FLOOR_PEERS: {peer:?} is not NAME@ADDR@PID");
            };
            let (user, sys, wall) = run_server(addr, pid.parse().unwrap());
            println!("round {round} {name:<28} user {user:6.2}  sys {sys:6.2}  wall {wall:6.2}");
        }
    }
}
