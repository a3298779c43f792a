//! `IORING_OP_UNLINKAT`: DELE, RMD, and removing an upload's temporary
//! file.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, types};

use super::{at_op, FdRef};

/// `unlinkat(2)` of `name` in `dir` on the shard's ring (`AT_REMOVEDIR` in
/// `flags` removes a directory). The final component is never followed.
pub async fn unlinkat(dir: FdRef, name: CString, flags: i32) -> io::Result<()> {
    let sqe = opcode::UnlinkAt::new(types::Fd(dir.as_raw_fd()), name.as_ptr())
        .flags(flags)
        .build();
    at_op(dir, name, sqe).await
}
