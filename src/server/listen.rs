//! Binding the control listeners: one socket per shard per `--listen`
//! address, all in one SO_REUSEPORT group so the kernel spreads new
//! connections over the shards — and no other process in that group
//! unless `--reuse-port` says so.
//!
//! SO_REUSEPORT lets any socket of the same user join a group, so a second
//! `ringftp serve` on the same port would silently take half the clients.
//! Before binding its group, each address is checked:
//!
//! 1. **Probe**: a socket *without* SO_REUSEPORT binds the address. If any
//!    process listens there (with SO_REUSEPORT or not), the bind fails with
//!    EADDRINUSE and start-up stops with "address in use". For port 0 the
//!    probe also picks the port the group then binds.
//! 2. **Lock**: two servers starting in the same instant could both pass
//!    the probe (two bound, non-listening sockets with SO_REUSEADDR do not
//!    conflict). Each server therefore also binds an abstract Unix socket
//!    named after the address (`ringftp/listen/ADDR`) and holds it for its
//!    lifetime: the second one gets EADDRINUSE. Abstract sockets live in
//!    the network namespace, as ports do, and vanish with the process, so
//!    there is no stale lock file to clean up.
//! 3. The probe is closed and every shard's socket binds with
//!    SO_REUSEPORT.
//!
//! `--reuse-port` skips both checks, so a new server joins the group of the
//! one it replaces (see docs/operations.md: zero-downtime restart).

use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;

use socket2::{Domain, Protocol, Socket, Type};

/// The listeners of a server, per shard, and the locks that keep other
/// servers off their addresses (held until the process ends).
pub(super) struct Bound {
    /// `per_shard[shard]` holds one socket per address, in `addrs` order,
    /// each with whether TLS starts at accept (`--listen-implicit`).
    pub per_shard: Vec<Vec<(Socket, bool)>>,
    /// The addresses really bound (port 0 resolved), with the same flag.
    pub addrs: Vec<(SocketAddr, bool)>,
    pub locks: Vec<UnixDatagram>,
}

/// Binds every address in `listen` once per shard.
pub(super) fn bind_all(
    listen: &[(SocketAddr, bool)],
    cores: usize,
    reuse_port: bool,
) -> Result<Bound, String> {
    let mut bound = Bound {
        per_shard: (0..cores).map(|_| Vec::new()).collect(),
        addrs: Vec::new(),
        locks: Vec::new(),
    };
    for &(want, implicit) in listen {
        let addr = if reuse_port {
            want
        } else {
            let (real, lock) = claim("--listen", want)?;
            bound.locks.push(lock);
            real
        };
        let first = bind_control(addr).map_err(|e| explain("--listen", addr, &e, reuse_port))?;
        let real = local(&first).map_err(|e| format!("--listen {want}: {e}"))?;
        bound.per_shard[0].push((first, implicit));
        for shard in bound.per_shard.iter_mut().skip(1) {
            let sock = bind_control(real).map_err(|e| explain("--listen", real, &e, reuse_port))?;
            shard.push((sock, implicit));
        }
        bound.addrs.push((real, implicit));
    }
    Ok(bound)
}

fn local(sock: &Socket) -> std::io::Result<SocketAddr> {
    sock.local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("the listener has no inet address"))
}

fn new_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR so a restart does not wait out TIME_WAIT, IPV6_V6ONLY so
    // `0.0.0.0:P` and `[::]:P` can both be given.
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    Ok(sock)
}

/// Without `--reuse-port`: checks that nothing listens on `want` (a bind
/// without SO_REUSEPORT) and takes the address lock against a second
/// ringftp starting in the same instant. Returns the address as bound
/// (port 0 resolved) and the lock, to hold as long as the listener.
fn claim(flag: &str, want: SocketAddr) -> Result<(SocketAddr, UnixDatagram), String> {
    let probe = probe(want).map_err(|e| explain(flag, want, &e, false))?;
    let real = local(&probe).map_err(|e| format!("{flag} {want}: {e}"))?;
    let lock = lock(real).map_err(|e| format!("{flag} {e}"))?;
    Ok((real, lock))
}

/// A bind without SO_REUSEPORT: fails while any socket listens on `addr`.
fn probe(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = new_socket(addr)?;
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// `--check-config`: whether `addr`'s IP is one this machine can listen
/// on, by a bind to it with port 0 (the port itself a running server may
/// hold); the error in the words start-up would use.
pub(super) fn address_is_local(addr: SocketAddr) -> Result<(), String> {
    let mut any_port = addr;
    any_port.set_port(0);
    new_socket(addr)
        .and_then(|sock| sock.bind(&any_port.into()))
        .map_err(|e| explain("--listen", addr, &e, false))
}

/// The abstract socket that marks `addr` as taken by this process.
fn lock(addr: SocketAddr) -> Result<UnixDatagram, String> {
    let name = format!("ringftp/listen/{addr}");
    let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    UnixDatagram::bind_addr(&sa).map_err(|e| match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "{addr}: address in use: another ringftp is starting on it right now; {}",
            REUSE_HINT
        ),
        _ => format!("{addr}: taking the address lock: {e}"),
    })
}

const REUSE_HINT: &str = "stop it or pick another address, or give --reuse-port to share the address on purpose (a zero-downtime restart, see docs/operations.md)";

/// A control listener socket of the shards' group.
fn bind_control(addr: SocketAddr) -> std::io::Result<Socket> {
    let sock = new_socket(addr)?;
    sock.set_reuse_port(true)?;
    sock.bind(&addr.into())?;
    // The kernel caps this at net.core.somaxconn.
    sock.listen(4096)?;
    // Non-blocking for the accept batches; io_uring's ACCEPT handles a
    // non-blocking listener by waiting for readiness itself.
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// The `--metrics-listen` socket, blocking, for the responder thread, and
/// the lock that keeps another ringftp from binding it too. Bound as a
/// control listener is: with SO_REUSEPORT always, so that the new
/// instance of a zero-downtime restart (`--reuse-port`) can bind it beside
/// this one, and, without `--reuse-port`, only after a bind without it
/// found the address free.
pub(super) fn bind_metrics(
    addr: SocketAddr,
    reuse_port: bool,
) -> Result<(std::net::TcpListener, Option<UnixDatagram>), String> {
    let flag = "--metrics-listen";
    let fail = |e: std::io::Error| format!("{flag} {addr}: {e}");
    let (addr, lock) = if reuse_port {
        (addr, None)
    } else {
        let (real, lock) = claim(flag, addr)?;
        (real, Some(lock))
    };
    let sock = new_socket(addr).map_err(fail)?;
    sock.set_reuse_port(true).map_err(fail)?;
    sock.bind(&addr.into())
        .map_err(|e| explain(flag, addr, &e, reuse_port))?;
    sock.listen(128).map_err(fail)?;
    Ok((sock.into(), lock))
}

/// A bind error of `flag`'s listener in the operator's terms.
fn explain(flag: &str, addr: SocketAddr, e: &std::io::Error, reuse_port: bool) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) if reuse_port => format!(
            "{flag} {addr}: address in use, and --reuse-port cannot share it: the process listening there did not set SO_REUSEPORT, or runs as another user"
        ),
        Some(libc::EADDRINUSE) => format!(
            "{flag} {addr}: address in use: another process listens on it; {REUSE_HINT}"
        ),
        Some(libc::EACCES) if addr.port() < 1024 => format!(
            "{flag} {addr}: permission denied: ports below 1024 need privileges. Start ringftp as root (it drops to --user after binding), or allow the binary with `setcap cap_net_bind_service=+ep {}`, or, under systemd, AmbientCapabilities=CAP_NET_BIND_SERVICE (dist/ringftp.service)",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "/usr/bin/ringftp".into())
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "{flag} {addr}: no interface of this machine has that address"
        ),
        _ => format!("{flag} {addr}: {e}"),
    }
}

/// Whether the kernel hands connections queued on a closing listener to
/// another listener of its SO_REUSEPORT group (`net.ipv4.tcp_migrate_req`,
/// Linux 5.14+). `None` when the setting cannot be read.
pub(super) fn migrates_requests() -> Option<bool> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .ok()
        .map(|s| s.trim() != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_group_on_the_same_address_is_refused() {
        let first = bind_all(&[("127.0.0.1:0".parse().unwrap(), false)], 2, false).unwrap();
        let addr = first.addrs[0].0;
        assert_ne!(addr.port(), 0);
        assert_eq!(first.per_shard.len(), 2);
        assert_eq!(local(&first.per_shard[1][0].0).unwrap(), addr);
        let e = bind_all(&[(addr, false)], 2, false).err().unwrap();
        assert!(e.contains("address in use"), "{e}");
        assert!(e.contains("--reuse-port"), "{e}");
        // A wildcard address overlapping it is refused as well.
        let any: SocketAddr = format!("0.0.0.0:{}", addr.port()).parse().unwrap();
        assert!(bind_all(&[(any, true)], 1, false).is_err());
        // On purpose, it joins.
        let second = bind_all(&[(addr, false)], 2, true).unwrap();
        assert_eq!(second.addrs, vec![(addr, false)]);
    }

    #[test]
    fn the_lock_stops_a_simultaneous_start() {
        let probe_a = probe("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = local(&probe_a).unwrap();
        // Two probes of non-listening sockets both succeed...
        let _probe_b = probe(addr).unwrap();
        // ...but only one server takes the lock.
        let _held = lock(addr).unwrap();
        let e = lock(addr).unwrap_err();
        assert!(e.contains("another ringftp is starting"), "{e}");
    }

    #[test]
    fn a_foreign_listener_without_reuseport_is_refused_even_with_reuse_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let e = bind_all(&[(addr, false)], 1, true).err().unwrap();
        assert!(e.contains("did not set SO_REUSEPORT"), "{e}");
    }
}
