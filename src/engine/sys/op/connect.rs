//! `IORING_OP_CONNECT`: active-mode data connections and the load
//! generator's clients.

use std::io;
use std::net::SocketAddr;

use io_uring::{opcode, types};

use super::{plain, FdRef};

/// Stable data of a connect op: the socket and the address the kernel
/// reads.
struct ConnectData {
    _sock: FdRef,
    _addr: Box<socket2::SockAddr>,
}

/// `connect(2)` of an already created (and possibly bound) socket on the
/// shard's ring. Used for active-mode data channels, where the socket may
/// need binding to port L-1 before it connects.
pub async fn connect(sock: FdRef, addr: SocketAddr) -> io::Result<()> {
    let addr = Box::new(socket2::SockAddr::from(addr));
    let sqe = opcode::Connect::new(types::Fd(sock.as_raw_fd()), addr.as_ptr(), addr.len()).build();
    let data = ConnectData {
        _sock: sock,
        _addr: addr,
    };
    plain(data, sqe).submit().await.map(|_| ())
}
