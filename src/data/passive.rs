//! Passive data channels (PASV/EPSV).
//!
//! Each shard owns a disjoint slice of `--pasv-ports` ([`PortSlice`]) and
//! hands ports out round-robin, so shards never coordinate. A listener is
//! built with socket2 *without* SO_REUSEPORT — with it (tokio-uring's own
//! `TcpListener::bind` sets it) two sessions could listen on one port and
//! steal each other's connection — but with SO_REUSEADDR, so a port whose
//! last connection sits in TIME_WAIT can be listened on again at once and
//! a small range is not exhausted by closed connections.
//!
//! The listener is non-blocking, and the data connection is accepted with
//! a plain accept4(2) on the shard thread: a client connects right after
//! the 227/229 reply, before it sends RETR or LIST, so the connection is
//! nearly always waiting in the backlog already, and an io_uring ACCEPT
//! would only add a ring round trip. When it is not, the listener waits
//! for readability in tokio's reactor (an io_uring POLL op where the
//! reactor refuses it) and accepts again.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use socket2::{Domain, Protocol, Socket, Type};

use super::ports::PortRange;
use super::DataConn;
use crate::engine::sys::{self, FdRef};
use crate::proto::addr::same_host;

/// A shard's slice of the passive range and which ports it has leased.
pub struct PortSlice {
    range: PortRange,
    state: RefCell<SliceState>,
}

struct SliceState {
    next: usize,
    in_use: Vec<bool>,
}

impl PortSlice {
    pub fn new(range: PortRange) -> Rc<PortSlice> {
        Rc::new(PortSlice {
            range,
            state: RefCell::new(SliceState {
                next: 0,
                in_use: vec![false; range.len()],
            }),
        })
    }

    pub fn range(&self) -> PortRange {
        self.range
    }

    /// Ports leased right now.
    pub fn leased(&self) -> usize {
        self.state.borrow().in_use.iter().filter(|&&b| b).count()
    }

    /// The first port not leased at or after step `tried` of a round that
    /// starts after the last port handed out (so a just-closed port rests
    /// before it is reused): `(step, index into the slice)`. No allocation:
    /// this runs for every PASV.
    fn next_free(&self, tried: usize) -> Option<(usize, usize)> {
        let st = self.state.borrow();
        let n = st.in_use.len();
        (tried..n)
            .map(|i| (i, (st.next + i) % n))
            .find(|&(_, idx)| !st.in_use[idx])
    }

    fn lease(self: &Rc<Self>, idx: usize) -> PortLease {
        let mut st = self.state.borrow_mut();
        st.in_use[idx] = true;
        st.next = (idx + 1) % st.in_use.len();
        PortLease {
            slice: self.clone(),
            idx,
        }
    }
}

/// A port of the slice, given back when dropped.
pub struct PortLease {
    slice: Rc<PortSlice>,
    idx: usize,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.slice.state.borrow_mut().in_use[self.idx] = false;
    }
}

/// Why no passive listener could be opened.
#[derive(Debug)]
pub enum PassiveError {
    /// Every port of the shard's slice is leased or bound by someone else.
    Exhausted,
    Io(io::Error),
}

/// A listening passive data socket, waiting for the client.
pub struct PassiveListener {
    sock: Rc<Socket>,
    pub addr: SocketAddr,
    _lease: PortLease,
}

impl PassiveListener {
    /// Binds a port of `slice` on `ip` (the control connection's local
    /// address, so the data channel uses the same interface and family).
    pub fn bind(slice: &Rc<PortSlice>, ip: IpAddr) -> Result<PassiveListener, PassiveError> {
        let mut tried = 0;
        while let Some((step, idx)) = slice.next_free(tried) {
            tried = step + 1;
            let port = slice.range.lo + idx as u16;
            let addr = SocketAddr::new(ip, port);
            match listen_on(addr) {
                Ok(sock) => {
                    return Ok(PassiveListener {
                        sock: Rc::new(sock),
                        addr,
                        _lease: slice.lease(idx),
                    })
                }
                // Another process holds it: try the next one.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(PassiveError::Io(e)),
            }
        }
        Err(PassiveError::Exhausted)
    }

    /// Accepts the data connection from `control_peer`. Unless
    /// `allow_foreign`, a connection from any other address is closed at
    /// once (RFC 2577 data theft: a third host racing to the announced
    /// port) and the listener keeps waiting for the real client.
    pub async fn accept(&self, control_peer: IpAddr, allow_foreign: bool) -> io::Result<DataConn> {
        let mut ready: Option<sys::ReadReadiness> = None;
        let mut registered = false;
        loop {
            let (sock, addr) = match self.sock.accept() {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !registered {
                        registered = true;
                        ready = sys::ReadReadiness::register(self.sock.clone() as FdRef).ok();
                    }
                    match &ready {
                        Some(r) => r.wait().await?,
                        None => sys::poll_readable(self.sock.clone() as FdRef).await?,
                    }
                    continue;
                }
                Err(e) if is_transient_accept_error(&e) => continue,
                Err(e) => return Err(e),
            };
            let peer = match addr.as_socket() {
                Some(p) => p,
                None => continue,
            };
            if !allow_foreign && !same_host(peer.ip(), control_peer) {
                tracing::warn!(
                    %peer,
                    port = self.addr.port(),
                    "refused passive data connection from {peer}: not the control connection's peer {control_peer} (RFC 2577; --allow-foreign-data allows it)"
                );
                continue;
            }
            return Ok(DataConn::new(sock, peer));
        }
    }
}

impl Drop for PassiveListener {
    fn drop(&mut self) {
        // shutdown(2) on a listening socket stops it and wakes a pending
        // accept (EINVAL), so the port is free at once even while an
        // in-flight accept op still holds the fd.
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// accept(2) errors that concern one connection (it was reset or aborted
/// before it was taken, or a signal came), not the listener: accept again.
fn is_transient_accept_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
        || e.kind() == io::ErrorKind::ConnectionAborted
        || matches!(e.raw_os_error(), Some(libc::EPROTO | libc::ECONNRESET))
}

fn listen_on(addr: SocketAddr) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(8)?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_robin_and_return() {
        let slice = PortSlice::new(PortRange { lo: 100, hi: 103 });
        let free = |s: &PortSlice| {
            let mut out = Vec::new();
            let mut tried = 0;
            while let Some((step, idx)) = s.next_free(tried) {
                out.push(idx);
                tried = step + 1;
            }
            out
        };
        assert_eq!(free(&slice), vec![0, 1, 2, 3]);
        let a = slice.lease(0);
        let b = slice.lease(1);
        assert_eq!(free(&slice), vec![2, 3]);
        assert_eq!(slice.leased(), 2);
        drop(a);
        // next starts after the last lease (1): 2, 3, then the freed 0.
        assert_eq!(free(&slice), vec![2, 3, 0]);
        drop(b);
        assert_eq!(slice.leased(), 0);
    }
}
