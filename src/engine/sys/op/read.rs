//! `IORING_OP_READ` at an offset: ASCII downloads read the file into a
//! buffer to convert line ends.

use std::io;

use io_uring::{opcode, types};

use super::{into_spare, FdRef};

/// `pread(2)` at `offset` into the spare capacity of `buf` (after its
/// current length); on success the length grows by the bytes read. 0 means
/// end of file.
pub async fn read_at(fd: FdRef, buf: Vec<u8>, offset: u64) -> (io::Result<u32>, Vec<u8>) {
    let raw = types::Fd(fd.as_raw_fd());
    into_spare(fd, buf, |ptr, len| {
        opcode::Read::new(raw, ptr, len).offset(offset).build()
    })
    .await
}
