//! Graceful shutdown: SIGTERM/SIGINT stop accepting, idle sessions get
//! 421, running transfers finish within `--shutdown-grace` and the process
//! exits 0; what is still running when the grace period ends is cut; a
//! second signal exits at once.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// A download running on its own thread: the bytes and the final reply
/// (an error if the connection closed without one).
fn start_download(
    f: Ftp,
    path: &str,
) -> std::thread::JoinHandle<(Vec<u8>, std::io::Result<Reply>, Ftp)> {
    let path = path.to_string();
    let mut f = f;
    let mut data = f.epsv_connect();
    f.expect(&format!("RETR {path}"), 150);
    std::thread::spawn(move || {
        let got = read_all_lenient(&mut data);
        let r = f.try_read_reply();
        (got, r, f)
    })
}

/// A new client's session, if it still gets a greeting.
fn greeted(srv: &Server) -> Option<Ftp> {
    let mut s = TcpStream::connect_timeout(&srv.addr(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if first_line(&mut s).is_some_and(|l| l.starts_with("220")) {
        Some(Ftp::after_greeting(s))
    } else {
        None
    }
}

#[test]
fn sigterm_during_a_large_retr_lets_it_finish_and_exits_0() {
    let fx = Fixture::new();
    let big = pattern(20, 48 << 20);
    fx.write("big.bin", &big);
    fx.standard_tree();
    // Paced to about 3 s so the signal lands mid-transfer.
    let mut srv = Server::builder()
        .cores(2)
        .arg("--shutdown-grace")
        .arg("10")
        .arg("--max-rate-per-session")
        .arg("16MiB")
        .start(&fx);
    let before = baseline(&mut srv, "dir/b.bin");
    let mut idle = srv.login();
    let download = start_download(srv.login(), "big.bin");
    std::thread::sleep(Duration::from_millis(700));
    let signalled = Instant::now();
    srv.signal(libc::SIGTERM);
    // The idle session is told at once.
    let r = idle.read_reply();
    assert_eq!(r.code, 421, "idle session: {r:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "idle 421 after {:?}",
        signalled.elapsed()
    );
    assert!(idle.try_read_reply().is_err(), "idle session still open");
    // No new sessions. Each shard shuts its own listener when it sees the
    // signal; the idle 421 proves one shard has, and a connection that
    // reaches another in the instant before it does is greeted and then
    // drained like any idle session (server::accept::accept_or_stop). So:
    // a greeting is followed by a 421, and the greetings stop.
    let stop_greeting = Instant::now() + Duration::from_secs(10);
    while let Some(mut late) = greeted(&srv) {
        let r = late.read_reply();
        assert_eq!(r.code, 421, "a client greeted after SIGTERM: {r:?}");
        assert!(
            Instant::now() < stop_greeting,
            "new clients still greeted 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The transfer finishes, byte-exact, then its session gets 421.
    let (got, r, mut f) = download.join().unwrap();
    let r = r.expect("the final reply of the transfer");
    assert_eq!(r.code, 226, "{r:?}");
    assert_bytes_eq("big.bin across SIGTERM", &got, &big);
    let r = f.read_reply();
    assert_eq!(r.code, 421, "after the transfer: {r:?}");
    let finished = signalled.elapsed();
    let status = srv
        .wait_exit(Duration::from_secs(8))
        .expect("ringftp still running after its last transfer ended");
    let exited = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        srv.log_text().contains("SIGTERM: shutting down"),
        "the log says why"
    );
    note(
        "shutdown",
        &format!("SIGTERM mid-RETR (48 MiB at 16 MiB/s, --shutdown-grace 10): idle session 421 at once, transfer 226 byte-exact {finished:.1?} after the signal, exit 0 after {exited:.1?}; fds before {}, rss {} KiB", before.fds(), before.rss_kib),
    );
}

#[test]
fn the_grace_period_cuts_what_is_still_running() {
    let fx = Fixture::new();
    fx.write("slow.bin", &pattern(21, 16 << 20));
    let mut srv = Server::builder()
        .arg("--shutdown-grace")
        .arg("1")
        .arg("--max-rate-per-session")
        .arg("1MiB")
        .start(&fx);
    let download = start_download(srv.login(), "slow.bin");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    srv.signal(libc::SIGTERM);
    let (got, r, mut f) = download.join().unwrap();
    let cut = signalled.elapsed();
    let r = r.expect("a reply to the cut transfer");
    assert_eq!(r.code, 426, "{r:?}");
    assert!(got.len() < 16 << 20);
    let r = f.read_reply();
    assert_eq!(r.code, 421, "{r:?}");
    assert!(
        cut >= Duration::from_millis(900) && cut < Duration::from_secs(4),
        "cut after {cut:?}"
    );
    let status = srv
        .wait_exit(Duration::from_secs(8))
        .expect("still running");
    assert_eq!(status.code(), Some(0), "{status:?}");
    note(
        "shutdown_grace",
        &format!(
            "--shutdown-grace 1 with a 16 s download: 426 + 421 after {cut:.1?} ({} bytes sent), exit 0 after {:.1?}",
            got.len(),
            signalled.elapsed()
        ),
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let fx = Fixture::new();
    fx.write("slow.bin", &pattern(22, 16 << 20));
    let mut srv = Server::builder()
        .arg("--shutdown-grace")
        .arg("30")
        .arg("--max-rate-per-session")
        .arg("1MiB")
        .start(&fx);
    let download = start_download(srv.login(), "slow.bin");
    std::thread::sleep(Duration::from_millis(300));
    srv.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(srv.alive(), "the first signal waits for the transfer");
    let t = Instant::now();
    srv.signal(libc::SIGINT);
    let status = srv
        .wait_exit(Duration::from_secs(2))
        .expect("still running after a second signal");
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{status:?}");
    let _ = download.join();
    note(
        "shutdown_twice",
        &format!(
            "SIGTERM then SIGINT during a transfer: exit {:?} after {:.0?}",
            status.code(),
            t.elapsed()
        ),
    );
}

#[test]
fn sigint_on_an_idle_server_is_graceful_too() {
    let fx = Fixture::new();
    fx.standard_tree();
    let mut srv = Server::builder().cores(2).start(&fx);
    let mut a = srv.login();
    let mut b = Ftp::connect(srv.addr());
    let t = Instant::now();
    srv.signal(libc::SIGINT);
    for f in [&mut a, &mut b] {
        let r = f.read_reply();
        assert_eq!(r.code, 421, "{r:?}");
    }
    let status = srv
        .wait_exit(Duration::from_secs(5))
        .expect("still running");
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut rest = Vec::new();
    let _ = a.socket().try_clone().unwrap().read_to_end(&mut rest);
    note(
        "shutdown_idle",
        &format!(
            "SIGINT with two idle sessions: both 421, exit 0 after {:.0?}",
            t.elapsed()
        ),
    );
}
