//! `IORING_OP_ACCEPT`: control connections on the shard's SO_REUSEPORT
//! listener, and passive-mode data connections.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::{plain, FdRef};

/// `accept4(2)` on a listening socket, on the shard's ring. The new socket
/// is close-on-exec; ask it for its peer with `socket2::Socket::peer_addr`.
pub async fn accept(listener: FdRef) -> io::Result<OwnedFd> {
    let sqe = opcode::Accept::new(
        types::Fd(listener.as_raw_fd()),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
    .flags(libc::SOCK_CLOEXEC)
    .build();
    let fd = plain(listener, sqe).submit().await?;
    // SAFETY: a successful accept completion is a new fd owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
