//! `IORING_OP_SEND`: replies on the control connection, listings and ASCII
//! downloads on a data connection.

use std::io;

use io_uring::{opcode, types};

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
