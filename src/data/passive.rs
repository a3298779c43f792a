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
//! Behind a balancer (`--proxy-protocol`) each passive connection carries
//! its own PROXY header, and the RFC 2577 data-theft check compares the
//! client it names with the control connection's client.
//!
//! A listener that served a transfer is kept for the session's next
//! PASV/EPSV ([`KeptListener`]), which announces the same port again:
//! socket, bind (the kernel checks the port against its TIME_WAIT
//! connections), listen and close were a tenth of the server's CPU in a
//! mirror where every file takes a PASV. Connections already waiting on a
//! reused listener are closed before the new 227/229 ([`PassiveListener::
//! drain`]), as closing the old listener did; one whose handshake is still
//! under way then is not (a client that keeps an abandoned connection
//! attempt open, or a host at the client's address that races for the
//! port, which it could do with a new listener too). A second PASV before
//! a transfer still replaces its listener with a new one. A kept listener
//! holds its port; when a shard's slice has no free port left, a PASV
//! takes one from a kept listener instead of answering 425.
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
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::ports::PortRange;
use super::DataConn;
use crate::engine::sys::{self, FdRef};
use crate::metrics::ShardMetrics;
use crate::proto::addr::same_host;
use crate::proxy_protocol::{self, ProxyFrom};

/// A shard's slice of the passive range and which ports it has leased.
pub(crate) struct PortSlice {
    range: PortRange,
    state: RefCell<SliceState>,
    /// Where the shard counts its ports, leases and exhaustion.
    metrics: Arc<ShardMetrics>,
    /// The shard's sessions' [`KeptListener`]s, in the order they were
    /// made: a PASV that finds no free port gives up the first that holds
    /// a listener.
    keepers: RefCell<Vec<Weak<KeptListener>>>,
}

struct SliceState {
    next: usize,
    in_use: Vec<bool>,
}

impl PortSlice {
    /// The slice `range`, counted in `metrics` (`ringftp_passive_ports*`).
    pub(crate) fn new(range: PortRange, metrics: Arc<ShardMetrics>) -> Rc<PortSlice> {
        metrics.pasv_ports.set(range.len() as u64);
        Rc::new(PortSlice {
            range,
            state: RefCell::new(SliceState {
                next: 0,
                in_use: vec![false; range.len()],
            }),
            metrics,
            keepers: RefCell::new(Vec::new()),
        })
    }

    /// A new, empty [`KeptListener`] for one session, which a PASV may
    /// empty when the slice has no free port.
    pub(crate) fn keeper(&self) -> Rc<KeptListener> {
        let k = Rc::new(KeptListener {
            listener: RefCell::new(None),
            metrics: self.metrics.clone(),
        });
        let mut keepers = self.keepers.borrow_mut();
        // Forget the keepers of sessions that have ended, whenever the
        // list would grow: it stays within twice the live sessions.
        if keepers.len() == keepers.capacity() {
            keepers.retain(|w| w.strong_count() > 0);
        }
        keepers.push(Rc::downgrade(&k));
        k
    }

    /// Closes the first kept listener of the shard, freeing its port;
    /// false when no session keeps one.
    fn give_up_a_kept_listener(&self) -> bool {
        let victim = self
            .keepers
            .borrow()
            .iter()
            .filter_map(Weak::upgrade)
            .find(|k| k.holds());
        match victim.and_then(|k| k.take()) {
            Some(l) => {
                tracing::debug!(
                    port = l.addr.port(),
                    "a kept passive listener gives its port up"
                );
                true
            }
            None => false,
        }
    }

    pub(crate) fn range(&self) -> PortRange {
        self.range
    }

    #[cfg(test)]
    /// Ports leased right now.
    pub(crate) fn leased(&self) -> usize {
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
        self.metrics.pasv_leased.inc();
        PortLease {
            slice: self.clone(),
            idx,
        }
    }
}

/// A port of the slice, given back when dropped.
pub(crate) struct PortLease {
    slice: Rc<PortSlice>,
    idx: usize,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.slice.state.borrow_mut().in_use[self.idx] = false;
        self.slice.metrics.pasv_leased.dec();
    }
}

/// Why no passive listener could be opened.
#[derive(Debug)]
pub(crate) enum PassiveError {
    /// Every port of the shard's slice is leased or bound by someone else.
    Exhausted,
    Io(io::Error),
}

/// A listening passive data socket, waiting for the client.
pub(crate) struct PassiveListener {
    sock: Rc<Socket>,
    pub addr: SocketAddr,
    _lease: PortLease,
}

impl PassiveListener {
    /// Binds a port of `slice` on `ip` (the control connection's local
    /// address, so the data channel uses the same interface and family).
    /// With no port free, the port of another session's kept listener is
    /// taken; [`PassiveError::Exhausted`] when none is kept either.
    pub(crate) fn bind(slice: &Rc<PortSlice>, ip: IpAddr) -> Result<PassiveListener, PassiveError> {
        loop {
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
            if !slice.give_up_a_kept_listener() {
                break;
            }
        }
        slice.metrics.pasv_exhausted.inc();
        Err(PassiveError::Exhausted)
    }

    /// Readies a kept listener to be announced again: closes every
    /// connection already waiting on it (made before this PASV), so the
    /// transfer that follows takes one the client makes after the
    /// announcement. False when the queue could not be emptied (accept
    /// failed: no fd left, say); the listener must then not be announced
    /// — dropping it resets what waits on it. An empty backlog (almost
    /// always) costs one poll(2), not a failing accept.
    pub(crate) fn drain(&self) -> bool {
        if !sys::has_waiting_connection(&*self.sock) {
            return true;
        }
        loop {
            match self.sock.accept() {
                Ok((_stale, from)) => {
                    tracing::debug!(from = ?from.as_socket(), port = self.addr.port(), "closed a data connection made before this PASV");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if is_transient_accept_error(&e) => continue,
                Err(e) => {
                    tracing::debug!(
                        port = self.addr.port(),
                        "a kept passive listener is not reused: {e}"
                    );
                    return false;
                }
            }
        }
    }

    /// Accepts the data connection from `control_peer`. Unless
    /// `allow_foreign`, a connection from any other address is closed at
    /// once (RFC 2577 data theft: a third host racing to the announced
    /// port) and the listener keeps waiting for the real client.
    ///
    /// With `proxy` (`--proxy-protocol`: the trusted balancers and how
    /// long a header may take) a connection must come from a balancer and
    /// start with a PROXY header, and the client it names is the one
    /// compared with `control_peer`; anything else is closed and logged,
    /// and the listener keeps waiting.
    pub(crate) async fn accept(
        &self,
        control_peer: IpAddr,
        allow_foreign: bool,
        proxy: Option<(&ProxyFrom, Duration)>,
    ) -> io::Result<DataConn> {
        let port = self.addr.port();
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
            let from = match addr.as_socket() {
                Some(p) => p,
                None => continue,
            };
            let (sock, peer) = match proxy {
                None => (sock, from),
                Some((trusted, limit)) => match proxied(sock, from, trusted, limit).await {
                    Ok(got) => got,
                    Err(why) => {
                        tracing::warn!(%from, port, "refused passive data connection from {from}: {why} (--proxy-protocol)");
                        continue;
                    }
                },
            };
            if !allow_foreign && !same_host(peer.ip(), control_peer) {
                tracing::warn!(
                    %peer,
                    port,
                    "refused passive data connection from {peer}: not the control connection's peer {control_peer} (RFC 2577; --allow-foreign-data allows it)"
                );
                continue;
            }
            return Ok(DataConn::new(sock, peer));
        }
    }
}

/// One session's passive listener kept between transfers: put back once
/// a data connection has been accepted on it, taken by the session's next
/// PASV/EPSV (which announces its port again), or by another session's
/// PASV when the shard has no free port ([`PassiveListener::bind`]).
/// Counted in `ringftp_passive_ports_kept`.
pub(crate) struct KeptListener {
    listener: RefCell<Option<PassiveListener>>,
    metrics: Arc<ShardMetrics>,
}

impl KeptListener {
    /// Keeps `l` (replacing, and closing, any listener kept before).
    pub(crate) fn put(&self, l: PassiveListener) {
        if self.listener.borrow_mut().replace(l).is_none() {
            self.metrics.pasv_kept.inc();
        }
    }

    /// The kept listener, if it is still kept.
    pub(crate) fn take(&self) -> Option<PassiveListener> {
        let l = self.listener.borrow_mut().take();
        if l.is_some() {
            self.metrics.pasv_kept.dec();
        }
        l
    }

    fn holds(&self) -> bool {
        self.listener.borrow().is_some()
    }
}

impl Drop for KeptListener {
    fn drop(&mut self) {
        if self.listener.get_mut().is_some() {
            self.metrics.pasv_kept.dec();
        }
    }
}

/// A passive connection from balancer `from`: its PROXY header's client
/// (or `from` itself for a `LOCAL` header), or why it is refused.
async fn proxied(
    sock: Socket,
    from: SocketAddr,
    trusted: &ProxyFrom,
    limit: Duration,
) -> Result<(Socket, SocketAddr), String> {
    if !trusted.trusts(from.ip()) {
        return Err(format!("{} is not in --proxy-from", from.ip()));
    }
    let sock = Rc::new(sock);
    let header = proxy_protocol::read_header(&sock, limit).await;
    let client = match header {
        Ok(Some(a)) => a.client,
        Ok(None) => from,
        Err(e) => {
            let _ = sock.shutdown(std::net::Shutdown::Both);
            return Err(e.to_string());
        }
    };
    // The header's ring op has completed and given its handle back.
    let sock = Rc::try_unwrap(sock).map_err(|_| "socket still in use".to_string())?;
    Ok((sock, client))
}

impl Drop for PassiveListener {
    fn drop(&mut self) {
        // shutdown(2) on a listening socket stops it and wakes a pending
        // POLL op (the reactor-less wait in `accept`), so the port is free
        // at once even while that op still holds the fd. When nothing else
        // holds it — the usual case: the client was in the backlog and
        // accept4 took it at once — closing it does the same, one syscall
        // fewer per passive transfer.
        if Rc::strong_count(&self.sock) > 1 {
            let _ = self.sock.shutdown(std::net::Shutdown::Both);
        }
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
    // Non-blocking from the start (SOCK_NONBLOCK): no fcntl pair per PASV.
    let sock = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    sock.set_reuse_address(true)?;
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
        let metrics = Arc::new(ShardMetrics::new(0));
        let slice = PortSlice::new(PortRange { lo: 100, hi: 103 }, metrics.clone());
        assert_eq!(metrics.pasv_ports.get(), 4);
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
        assert_eq!(metrics.pasv_leased.get(), 2);
        drop(a);
        // next starts after the last lease (1): 2, 3, then the freed 0.
        assert_eq!(free(&slice), vec![2, 3, 0]);
        drop(b);
        assert_eq!(slice.leased(), 0);
        assert_eq!(metrics.pasv_leased.get(), 0);
    }
}
