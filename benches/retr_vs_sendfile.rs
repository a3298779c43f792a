//! RETR of one large cached file over loopback: ringftp (its RETR path:
//! non-blocking sendfile from the page cache, POLLOUT waits on io_uring)
//! against a plain blocking `sendfile(2)` loop serving the same file, both
//! read by the same fast reader (epoll + non-blocking recv into 1 MiB).
//!
//! `cargo bench --bench retr_vs_sendfile` (env: RETR_BENCH_SIZE_MIB, default
//! 1024; RETR_BENCH_REPS, default 3). Prints each run and the median ratio.
//! The machine is shared and noisy, so the two are interleaved in one run.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The ceiling: accept one connection, sendfile the whole file, close.
/// Returns bytes, time, and the sender's CPU seconds.
fn sendfile_once(file: &Path) -> (u64, Duration, f64) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let path = file.to_path_buf();
    let server = std::thread::spawn(move || {
        let cpu0 = thread_cpu_s();
        let (sock, _) = listener.accept().unwrap();
        let f = std::fs::File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize;
        let mut off = 0u64;
        while (off as usize) < len {
            let left = len - off as usize;
            let n = rustix::fs::sendfile(&sock, &f, Some(&mut off), left).unwrap();
            if n == 0 {
                break;
            }
        }
        thread_cpu_s() - cpu0
    });
    let start = Instant::now();
    let n = fast_read(TcpStream::connect(addr).unwrap());
    let t = start.elapsed();
    let cpu = server.join().unwrap();
    (n, t, cpu)
}

fn ftp_once(server: &Server, name: &str) -> (u64, Duration, f64) {
    let cpu0 = process_cpu_s(server.pid());
    let mut c = Control::login(server, "anonymous", "bench@");
    let data = c.epsv();
    let start = Instant::now();
    c.send(&format!("RETR {name}"));
    c.expect("150");
    let n = fast_read(data);
    let t = start.elapsed();
    c.expect("226");
    c.send("QUIT");
    (n, t, process_cpu_s(server.pid()) - cpu0)
}

fn main() {
    if !benching() {
        return;
    }
    let mib = env_or("RETR_BENCH_SIZE_MIB", 1024);
    let reps = env_or("RETR_BENCH_REPS", 3) as usize;
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
    let server = start_ringftp(dir.path(), &[]);
    let size = mib << 20;
    let (mut ring, mut ceil) = (Vec::new(), Vec::new());
    let (mut ring_cpu, mut ceil_cpu) = (Vec::new(), Vec::new());
    let gib = size as f64 / (1u64 << 30) as f64;
    for i in 0..reps {
        let (n, t, cpu) = sendfile_once(&file);
        assert_eq!(n, size);
        ceil.push(gib_s(n, t));
        ceil_cpu.push(cpu / gib);
        let (n, t, cpu) = ftp_once(&server, "big.bin");
        assert_eq!(n, size);
        ring.push(gib_s(n, t));
        ring_cpu.push(cpu / gib);
        println!(
            "rep {}: sendfile {:.2} GiB/s ({:.3} CPU s/GiB), ringftp {:.2} GiB/s ({:.3} CPU s/GiB)",
            i + 1,
            ceil[i],
            ceil_cpu[i],
            ring[i],
            ring_cpu[i]
        );
    }
    let ratios: Vec<f64> = ring.iter().zip(&ceil).map(|(r, c)| r / c).collect();
    println!(
        "{mib} MiB RETR, median of {reps}: sendfile {:.2} GiB/s, ringftp {:.2} GiB/s, median per-rep ratio {:.3}; \
         sender CPU s/GiB: sendfile {:.3}, ringftp {:.3}",
        median(ceil),
        median(ring),
        median(ratios),
        median(ceil_cpu),
        median(ring_cpu)
    );
}
