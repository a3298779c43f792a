//! `IORING_OP_RENAMEAT`: RNFR/RNTO, and putting a finished upload in place
//! of its target.

use std::ffi::CString;
use std::io;

use io_uring::{opcode, types};

use super::{plain, AtData, FdRef};

/// `renameat2(2)` on the shard's ring (`flags`: 0 or RENAME_NOREPLACE).
/// Both names are single components of their directories; a symlink is
/// renamed as itself, never followed.
pub async fn renameat(
    old_dir: FdRef,
    old: CString,
    new_dir: FdRef,
    new: CString,
    flags: u32,
) -> io::Result<()> {
    let sqe = opcode::RenameAt::new(
        types::Fd(old_dir.as_raw_fd()),
        old.as_ptr(),
        types::Fd(new_dir.as_raw_fd()),
        new.as_ptr(),
    )
    .flags(flags)
    .build();
    let data = AtData {
        _dirs: (old_dir, Some(new_dir)),
        _names: (old, Some(new)),
    };
    plain(data, sqe).submit().await.map(|_| ())
}
