//! The shared harness of the integration tests: start the real `ringftp`
//! binary (on loopback, or inside a network namespace) with its own
//! temporary root and its own passive ports, talk to it with a small raw
//! FTP control client, run real FTP clients (curl, lftp, wget, Python's
//! ftplib) as subprocesses under `timeout`, and compare what they got with
//! the source byte for byte.
//!
//! One file per concern:
//! - [`server`]: [`ServerBuilder`] and [`Server`], the process under test
//!   (plain or in a network namespace), killed on drop.
//! - [`ports`]: passive port blocks, leased machine-wide so that no two
//!   servers share a port.
//! - [`ftp`]: the raw control client and the reply and address codecs.
//! - [`clients`]: real clients as subprocesses, here or in a namespace.
//! - [`tree`]: the [`Fixture`] directories, test data and tree comparison.
//! - [`accounts`]: users files and password hashes.
//! - [`gauge`]: the server's fds and memory from /proc, and the
//!   "nothing leaked" check of the hostile, overload and shutdown tests.
//! - [`netns`]: threads and sockets inside a network namespace.
//!
//! Every child process dies with the test process (PR_SET_PDEATHSIG), so a
//! test binary killed by a CI timeout leaves nothing behind.
#![allow(
    unreachable_pub,
    reason = "the harness is shared by every test binary; each uses part of it"
)]
#![allow(dead_code, unused_imports)]

pub mod accounts;
pub mod clients;
pub mod ftp;
pub mod gauge;
pub mod netns;
pub mod ports;
pub mod server;
pub mod tree;

pub use accounts::*;
pub use clients::*;
pub use ftp::*;
pub use gauge::*;
pub use netns::*;
pub use ports::*;
pub use server::*;
pub use tree::*;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ringftp");

/// How long a reply or a data read may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Polls `cond` every 10 ms until it holds; panics naming `what` after
/// `limit`. The limit is a bound on a hang, not a measurement: make it
/// generous.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
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
