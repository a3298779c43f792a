//! Network namespaces, for the tests that need a routed network of their
//! own (tests/nat.rs builds one with tests/netns/topology.sh): a thread or
//! a socket inside a namespace. A server is started in one with
//! [`ServerBuilder::netns`](super::ServerBuilder::netns), a client with
//! [`Place::Netns`](super::Place::Netns).

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// Panics unless the test runs as root, with what to do instead: building
/// network namespaces needs CAP_NET_ADMIN and CAP_SYS_ADMIN.
pub fn require_root(what: &str) {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "{what} build network namespaces and need root (uid is {uid}): run `sudo bash tests/run.sh`; CI runs as root"
    );
}

/// Runs `f` on a thread inside the network namespace `ns` (as named by
/// `ip netns`): every socket it creates belongs to that namespace for
/// good.
pub fn within<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = Path::new("/run/netns").join(ns);
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
            // SAFETY: a valid fd for the duration of the call; setns(2)
            // changes only the calling thread's network namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                panic!(
                    "setns({}): {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A TCP connection to `to` made inside the network namespace `ns`.
pub fn connect_in(ns: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    within(ns, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(10))
    })
}

/// A network namespace of its own holding only a loopback at a chosen
/// MTU (the host's is 65,536; an Ethernet path's 1,500), removed on drop.
#[allow(dead_code)]
pub struct Loopback {
    pub name: String,
}

#[allow(dead_code)]
impl Loopback {
    /// Creates the namespace (`ip netns add`) and brings its loopback up
    /// at `mtu`. Needs root.
    pub fn with_mtu(mtu: u32) -> Loopback {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        require_root("tests of a loopback at another MTU");
        let name = format!(
            "rftp-lo-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip (iproute2) runs");
            assert!(
                out.status.success(),
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &name]);
        let ns = Loopback { name };
        let mtu = mtu.to_string();
        ip(&["-n", &ns.name, "link", "set", "lo", "mtu", &mtu, "up"]);
        ns
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
