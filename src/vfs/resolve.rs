//! Opening virtual paths under the root, race-free.
//!
//! Every open goes through openat2(2) relative to the root directory fd
//! with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, submitted on the shard's
//! io_uring. The kernel then refuses (EXDEV) any resolution that would
//! leave the root — through `..`, an absolute path, or a symlink, including
//! one swapped in while the request runs — so there is no window between a
//! check and a use. Symlinks that stay inside the root resolve normally.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

use super::{path, Stat, VfsError};
use crate::engine::sys::{self, FdRef};

/// openat2 resolve flags for every client path.
pub const RESOLVE: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;

fn relative(vpath: &[u8]) -> Result<CString, VfsError> {
    path::relative(vpath).ok_or(VfsError::NotFound)
}

fn fstat(fd: OwnedFd) -> Result<(OwnedFd, Stat), VfsError> {
    let file = std::fs::File::from(fd);
    let stat = Stat::from(&file.metadata().map_err(VfsError::from_io)?);
    Ok((OwnedFd::from(file), stat))
}

/// Drops O_NONBLOCK from a file opened with it. Files are opened
/// O_NONBLOCK so that a FIFO planted in the tree cannot block the open;
/// once the fd is known to be a regular file the flag goes, so splice
/// reads it normally.
pub(super) fn clear_nonblock(fd: &OwnedFd) -> Result<(), VfsError> {
    let clear = || -> rustix::io::Result<()> {
        let flags = fcntl_getfl(fd)?;
        fcntl_setfl(fd, flags - OFlags::NONBLOCK)
    };
    clear().map_err(|e| VfsError::from_io(e.into()))
}

/// Opens a regular file for reading. A FIFO or device is refused without
/// being opened for real: O_NONBLOCK keeps a FIFO's open from blocking, and
/// the type check follows.
pub async fn open_file(root: &FdRef, vpath: &[u8]) -> Result<(OwnedFd, Stat), VfsError> {
    let rel = relative(vpath)?;
    let fd = sys::openat2(
        root.clone(),
        rel,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
        RESOLVE,
    )
    .await
    .map_err(VfsError::from_io)?;
    let (fd, stat) = fstat(fd)?;
    if stat.is_dir() {
        return Err(VfsError::NotAFile);
    }
    if !stat.is_file() {
        return Err(VfsError::NotAFile);
    }
    clear_nonblock(&fd)?;
    Ok((fd, stat))
}

/// Opens a directory for reading its entries.
pub async fn open_dir(root: &FdRef, vpath: &[u8]) -> Result<OwnedFd, VfsError> {
    let rel = relative(vpath)?;
    sys::openat2(
        root.clone(),
        rel,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        RESOLVE,
    )
    .await
    .map_err(VfsError::from_io)
}

/// Stats a path (following symlinks that stay inside the root).
pub async fn stat(root: &FdRef, vpath: &[u8]) -> Result<Stat, VfsError> {
    let rel = relative(vpath)?;
    let fd = sys::openat2(root.clone(), rel, libc::O_PATH, 0, RESOLVE)
        .await
        .map_err(VfsError::from_io)?;
    Ok(fstat(fd)?.1)
}
