//! `IORING_OP_SPLICE`: file or socket -> pipe, and pipe -> file at an
//! offset. The kernel runs a splice that would block on io-wq workers, so a
//! disk read or a slow socket never stalls the shard thread.

use std::io;

use io_uring::{opcode, types};

use super::{plain, FdRef};

/// `splice(2)` on the shard's ring: moves up to `len` bytes from `fd_in`
/// (at `off_in`, or its current position when `None`) into `fd_out`. One of
/// the two must be a pipe. Returns the bytes moved; 0 means end of input.
pub async fn splice(fd_in: FdRef, off_in: Option<u64>, fd_out: FdRef, len: u32) -> io::Result<u32> {
    let sqe = opcode::Splice::new(
        types::Fd(fd_in.as_raw_fd()),
        // -1 means "no offset": use (and advance) the file position; it is
        // the only legal value for a pipe or a socket.
        off_in.map(|o| o as i64).unwrap_or(-1),
        types::Fd(fd_out.as_raw_fd()),
        -1,
        len,
    )
    .flags(libc::SPLICE_F_MOVE)
    .build();
    plain((fd_in, fd_out), sqe).submit().await
}

/// `splice(2)` into a file at an explicit offset (uploads: pipe -> file).
pub async fn splice_to_offset(
    fd_in: FdRef,
    fd_out: FdRef,
    off_out: u64,
    len: u32,
) -> io::Result<u32> {
    let sqe = opcode::Splice::new(
        types::Fd(fd_in.as_raw_fd()),
        -1,
        types::Fd(fd_out.as_raw_fd()),
        off_out as i64,
        len,
    )
    .flags(libc::SPLICE_F_MOVE)
    .build();
    plain((fd_in, fd_out), sqe).submit().await
}
