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
//! cargo run --release --example reader_bench -- 127.0.0.1:2300 uring epoll blocking
//! ```
use std::io::Read;
use std::net::SocketAddr;
use std::time::Instant;

const BUF: usize = 1 << 20;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .expect("usage: reader_bench HOST:PORT [uring|epoll|blocking]... [xN]")
        .parse()
        .expect("HOST:PORT");
    let methods: Vec<String> = args.collect();
    let reps = 3;
    for method in &methods {
        let mut rates = Vec::new();
        for _ in 0..reps {
            let start = Instant::now();
            let bytes = match method.as_str() {
                "uring" => tokio_uring::start(uring(addr)),
                "epoll" => tokio_uring::start(epoll(addr)),
                "blocking" => blocking(addr),
                other => panic!("unknown reader {other}"),
            };
            let secs = start.elapsed().as_secs_f64();
            rates.push(bytes as f64 / secs / (1u64 << 30) as f64);
        }
        rates.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{method:>8}: median {:.2} GiB/s  (runs: {})",
            rates[rates.len() / 2],
            rates
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
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
