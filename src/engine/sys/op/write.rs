//! `IORING_OP_WRITE`: ASCII uploads write the converted buffer at an
//! offset; the transfer log appends at the end of its file.

use std::io;

use io_uring::{opcode, types};

use super::{buf_op, tail, FdRef};

/// `pwrite(2)` of `buf[from..]` at `offset`. Returns the bytes written and
/// the buffer.
pub async fn write_at(
    fd: FdRef,
    buf: Vec<u8>,
    from: usize,
    offset: u64,
) -> (io::Result<u32>, Vec<u8>) {
    let (ptr, len) = tail(&buf, from);
    let sqe = opcode::Write::new(types::Fd(fd.as_raw_fd()), ptr, len)
        .offset(offset)
        .build();
    buf_op(fd, buf, sqe).submit().await
}

/// `write(2)` of `buf` at the file's position (an O_APPEND file: the end),
/// on the shard's ring, in one request: the bytes written, which a full
/// filesystem makes fewer than `buf.len()`. For the transfer log.
pub async fn write_append(fd: FdRef, buf: Vec<u8>) -> io::Result<usize> {
    let (ptr, len) = tail(&buf, 0);
    // u64::MAX is the -1 offset: "use the file position", which O_APPEND
    // pins to the end, so concurrent shards never overwrite each other.
    let sqe = opcode::Write::new(types::Fd(fd.as_raw_fd()), ptr, len)
        .offset(u64::MAX)
        .build();
    let (res, _) = buf_op(fd, buf, sqe).submit().await;
    res.map(|n| n as usize)
}
