//! `IORING_OP_OPENAT2`: every open of a client path, relative to the root
//! (or an account's home) with `RESOLVE_BENEATH`.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::{plain, FdRef};

/// Stable data of an openat2 op: the path bytes and the `open_how` the
/// kernel reads when it picks the op up, plus the directory fd.
struct OpenData {
    _dir: FdRef,
    _path: CString,
    _how: Box<types::OpenHow>,
}

/// `openat2(2)` relative to `dir` on the shard's ring. `flags` are `O_*`
/// flags (O_CLOEXEC is always added). `resolve` takes `RESOLVE_*` flags:
/// the virtual filesystem passes RESOLVE_BENEATH so the kernel, not a
/// string check, keeps every path (symlinks included) under the root, even
/// against a symlink swapped in during the request. `mode` is the
/// permission of a file O_CREAT makes (umask applies); ignored otherwise.
pub async fn openat2(
    dir: FdRef,
    path: CString,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = Box::new(
        types::OpenHow::new()
            .flags((flags | libc::O_CLOEXEC) as u64)
            .mode(if flags & libc::O_CREAT != 0 {
                mode as u64
            } else {
                0
            })
            .resolve(resolve),
    );
    let sqe = opcode::OpenAt2::new(
        types::Fd(dir.as_raw_fd()),
        path.as_ptr(),
        &*how as *const types::OpenHow,
    )
    .build();
    let data = OpenData {
        _dir: dir,
        _path: path,
        _how: how,
    };
    let fd = plain(data, sqe).submit().await?;
    // SAFETY: a successful openat2 completion is a new fd that nothing else
    // owns; wrapping it transfers ownership exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
