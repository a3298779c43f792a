//! `IORING_OP_MKDIRAT`: MKD.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, types};

use super::{at_op, FdRef};

/// `mkdirat(2)` of `name` in `dir` with permission `mode` (umask applies),
/// on the shard's ring.
pub async fn mkdirat(dir: FdRef, name: CString, mode: u32) -> io::Result<()> {
    let sqe = opcode::MkDirAt::new(types::Fd(dir.as_raw_fd()), name.as_ptr())
        .mode(mode)
        .build();
    at_op(dir, name, sqe).await
}
