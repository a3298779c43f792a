//! Measures how fast one loopback TCP stream can be read by the three readers
//! the load generator could use for its data channel, so the choice in
//! `src/loadgen/data.rs` rests on a number rather than a guess:
//!
//! - `uring`: tokio-uring `TcpStream::read` (an io_uring READ) into a reused
//!   1 MiB buffer;
//! - `epoll`: tokio readiness (`readable()`, epoll) plus non-blocking
//!   `try_read` into a reused 1 MiB buffer, inside the same tokio-uring
//!   runtime;
//! - `blocking`: a plain blocking `read(2)` loop into 1 MiB.
//!
//! Point it at a sender that writes a whole file per connection with
//! `sendfile(2)` (see loadtest/sendfile_server.py):
//!
//! ```text
//! python3 loadtest/sendfile_server.py /tmp/big1g 2300 &
//! cargo bench --bench reader_bench -- 127.0.0.1:2300 7 uring epoll blocking
//! ```
//!
//! Without a sender to read from (a plain `cargo bench`) it prints its
//! usage and measures nothing.
use std::io::Read;
use std::net::SocketAddr;
use std::time::Instant;

const BUF: usize = 1 << 20;

fn main() {
    // cargo bench adds `--bench`; it is not ours.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let usage = "usage: reader_bench HOST:PORT REPS uring|epoll|blocking...";
    let Some(addr) = args.next() else {
        println!("reader_bench: no sender given, nothing measured ({usage})");
        return;
    };
    let addr: SocketAddr = addr.parse().expect("HOST:PORT");
    let reps: usize = args.next().expect(usage).parse().expect("REPS");
    let methods: Vec<String> = args.collect();
    // Interleaved (uring, epoll, blocking, uring, ...) so that noise from
    // other work on the machine hits every reader alike.
    let mut rates = vec![Vec::new(); methods.len()];
    // CPU seconds the reader spent, and GiB it read, over all its runs.
    let mut cpu = vec![(0.0, 0.0); methods.len()];
    for _ in 0..reps {
        for (i, method) in methods.iter().enumerate() {
            let (user0, sys0) = ringftp::engine::sys::cpu_time_us(false);
            let start = Instant::now();
            let bytes = match method.as_str() {
                "uring" => tokio_uring::start(uring(addr)),
                "epoll" => tokio_uring::start(epoll(addr)),
                "blocking" => blocking(addr),
                other => panic!("unknown reader {other}"),
            };
            let gib = bytes as f64 / (1u64 << 30) as f64;
            rates[i].push(gib / start.elapsed().as_secs_f64());
            let (user1, sys1) = ringftp::engine::sys::cpu_time_us(false);
            cpu[i].0 += (user1 + sys1 - user0 - sys0) as f64 / 1e6;
            cpu[i].1 += gib;
        }
    }
    for ((method, mut r), (cpu_s, gib)) in methods.iter().zip(rates).zip(cpu) {
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let runs: Vec<String> = r.iter().map(|x| format!("{x:.2}")).collect();
        println!(
            "{method:>8}: median {:.2} GiB/s, {:.2} CPU s/GiB  (sorted runs: {})",
            r[r.len() / 2],
            cpu_s / gib,
            runs.join(" ")
        );
    }
}

async fn uring(addr: SocketAddr) -> u64 {
    let s = tokio_uring::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::with_capacity(BUF);
    let mut total = 0u64;
    loop {
        let (res, b) = s.read(buf).await;
        let n = res.unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
        buf = b;
        buf.clear();
    }
}

async fn epoll(addr: SocketAddr) -> u64 {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        s.readable().await.unwrap();
        match s.try_read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
}

fn blocking(addr: SocketAddr) -> u64 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}
