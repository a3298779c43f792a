//! STOR of 1 GiB over loopback: ringftp (io_uring splice socket -> pipe ->
//! file) against a plain loop of `recv` into 1 MiB and `write(2)` into a
//! file on the same filesystem, both fed by the same sender (blocking
//! writes of 1 MiB). The two are interleaved in one run; the output is
//! each run and the median ratio.
//!
//! `cargo bench --bench stor_vs_write` (env: STOR_BENCH_SIZE_MIB, default
//! 1024; STOR_BENCH_REPS, default 3).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// The reference: accept one connection, recv + write(2) until EOF.
fn write_loop_once(file: &Path, size: u64) -> (u64, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let path = file.to_path_buf();
    let start = Instant::now();
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        let mut f = std::fs::File::create(path).unwrap();
        let mut buf = vec![0u8; BUF];
        let mut total = 0u64;
        loop {
            let n = sock.read(&mut buf).unwrap();
            if n == 0 {
                return total;
            }
            f.write_all(&buf[..n]).unwrap();
            total += n as u64;
        }
    });
    send_bytes(TcpStream::connect(addr).unwrap(), size);
    let n = server.join().unwrap();
    (n, start.elapsed())
}

fn ftp_once(server: &Server, size: u64) -> (u64, Duration) {
    let mut c = Control::login(server, "bench", "bench");
    let data = c.epsv();
    let start = Instant::now();
    c.send("STOR up.bin");
    c.expect("150");
    send_bytes(data, size);
    c.expect("226");
    let t = start.elapsed();
    c.send("QUIT");
    (size, t)
}

fn main() {
    if !benching() {
        return;
    }
    let mib = env_or("STOR_BENCH_SIZE_MIB", 1024);
    let reps = env_or("STOR_BENCH_REPS", 3) as usize;
    let size = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("bench");
    std::fs::create_dir(&home).unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"bench\"\npassword = \"{}\"\nhome = \"/bench\"\npermissions = [\"list\", \"read\", \"write\"]\n",
            ringftp::auth::password::hash(b"bench").unwrap()
        ),
    )
    .unwrap();
    let server = start_ringftp(dir.path(), &["--users", users.to_str().unwrap()]);
    let reference = dir.path().join("reference.bin");
    let uploaded = home.join("up.bin");
    let (mut ring, mut plain) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let _ = std::fs::remove_file(&reference);
        let (n, t) = write_loop_once(&reference, size);
        assert_eq!(n, size);
        plain.push(gib_s(n, t));
        let _ = std::fs::remove_file(&uploaded);
        let (n, t) = ftp_once(&server, size);
        assert_eq!(std::fs::metadata(&uploaded).unwrap().len(), size);
        ring.push(gib_s(n, t));
        println!(
            "rep {}: write loop {:.2} GiB/s, ringftp STOR {:.2} GiB/s",
            i + 1,
            plain[i],
            ring[i]
        );
    }
    let ratios: Vec<f64> = ring.iter().zip(&plain).map(|(r, c)| r / c).collect();
    println!(
        "{mib} MiB STOR, median of {reps}: write loop {:.2} GiB/s, ringftp {:.2} GiB/s, median per-rep ratio {:.3}",
        median(plain),
        median(ring),
        median(ratios)
    );
}
