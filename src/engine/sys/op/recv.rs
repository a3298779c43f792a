//! `IORING_OP_RECV`: uploads in ASCII mode read the data connection into a
//! buffer.

use std::io;

use io_uring::{opcode, types};

use super::{into_spare, FdRef};

/// `recv(2)` into the spare capacity of `buf` (after its current length);
/// on success the length grows by the bytes received. 0 means end of stream.
pub async fn recv(fd: FdRef, buf: Vec<u8>) -> (io::Result<u32>, Vec<u8>) {
    let raw = types::Fd(fd.as_raw_fd());
    into_spare(fd, buf, |ptr, len| opcode::Recv::new(raw, ptr, len).build()).await
}
