//! Sends on sockets: replies on the control connection, listings and
//! ASCII downloads on a data connection. One non-blocking send(2) first
//! ([`send_now`]), then `IORING_OP_SEND` for what waits for room.

use std::io;
use std::os::fd::AsFd;

use io_uring::{opcode, types};
use rustix::io::Errno;
use rustix::net::SendFlags;

use super::{buf_op, tail, FdRef};

/// `send(2)` of `buf[from..]` on a socket, with MSG_NOSIGNAL. Returns the
/// bytes sent and the buffer.
pub async fn send(fd: FdRef, buf: Vec<u8>, from: usize) -> (io::Result<u32>, Vec<u8>) {
    let (ptr, len) = tail(&buf, from);
    let sqe = opcode::Send::new(types::Fd(fd.as_raw_fd()), ptr, len)
        .flags(libc::MSG_NOSIGNAL)
        .build();
    buf_op(fd, buf, sqe).submit().await
}

/// `send(2)` of `buf[range]` (clamped to the buffer) with MSG_NOSIGNAL.
/// Returns the bytes sent and the buffer.
pub async fn send_range(
    fd: FdRef,
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
) -> (io::Result<u32>, Vec<u8>) {
    let end = range.end.min(buf.len());
    let start = range.start.min(end);
    let (ptr, _) = tail(&buf, start);
    let len = (end - start).min(u32::MAX as usize) as u32;
    let sqe = opcode::Send::new(types::Fd(fd.as_raw_fd()), ptr, len)
        .flags(libc::MSG_NOSIGNAL)
        .build();
    buf_op(fd, buf, sqe).submit().await
}

/// One non-blocking `send(2)` of `buf` (MSG_DONTWAIT | MSG_NOSIGNAL) on
/// the shard thread, no io_uring round trip; what the socket took is
/// removed from `buf`. True when it took all of it (almost always for a
/// reply or a listing chunk), false when the rest must wait for room
/// ([`send_all`]); EAGAIN and EINTR are "took nothing".
pub fn send_now(fd: impl AsFd, buf: &mut Vec<u8>) -> io::Result<bool> {
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    let sent = match rustix::net::send(fd, buf, flags) {
        Ok(n) => n,
        Err(Errno::AGAIN | Errno::INTR) => 0,
        Err(e) => return Err(e.into()),
    };
    buf.drain(..sent);
    Ok(buf.is_empty())
}

/// Sends all of `buf` on a socket (a loop of [`send`]). A send that moves
/// nothing is `WriteZero`.
pub async fn send_all(fd: FdRef, buf: Vec<u8>) -> io::Result<()> {
    let mut from = 0;
    let mut buf = buf;
    while from < buf.len() {
        let (res, b) = send(fd.clone(), buf, from).await;
        buf = b;
        match res? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => from += n as usize,
        }
    }
    Ok(())
}
