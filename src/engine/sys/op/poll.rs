//! `IORING_OP_POLL_ADD`: waiting for a socket to be readable (the control
//! reader) or writable (the non-blocking RETR path) without holding a
//! buffer.

use std::io;

use io_uring::{opcode, types};

use super::{plain, FdRef};

/// Waits on the shard's ring until `fd` is readable (or has hung up). The
/// op holds no buffer, so an idle control connection costs no read buffer,
/// and dropping the wait loses no data.
pub async fn poll_readable(fd: FdRef) -> io::Result<()> {
    poll(
        fd,
        libc::POLLIN | libc::POLLRDHUP | libc::POLLERR | libc::POLLHUP,
    )
    .await
}

/// Waits on the shard's ring until socket `fd` has room to send (or has
/// failed: the next send reports why).
pub async fn poll_writable(fd: FdRef) -> io::Result<()> {
    poll(fd, libc::POLLOUT | libc::POLLERR | libc::POLLHUP).await
}

async fn poll(fd: FdRef, events: libc::c_short) -> io::Result<()> {
    let sqe = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), events as u32).build();
    plain(fd, sqe).submit().await.map(|_| ())
}
