//! Opening virtual paths under the root, race-free.
//!
//! Every open goes through openat2(2) relative to the session's root
//! directory fd with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, submitted on
//! the shard's io_uring. The kernel resolves the path as if the root were
//! `/`: `..` stops at it and a symlink's absolute target is taken from it,
//! as in a chroot (an absolute link `-> /sub` inside the tree works, as in
//! vsftpd's and ProFTPD's chroots), so no resolution — through `..`, an
//! absolute link, or a link swapped in while the request runs — can reach
//! outside the root, and there is no window between a check and a use.
//! The kernel answers EAGAIN when a rename raced the resolution; the open
//! is retried.
//!
//! Each open is first tried as a plain openat2(2) on the shard thread with
//! RESOLVE_CACHED added: the kernel then resolves from the dentry cache
//! only and answers EAGAIN rather than touching the disk, so the call
//! cannot block. That is what io_uring's own inline attempt does, minus the
//! ring round trip (an io_uring_enter, an epoll_wait and two task wake-ups
//! per open, measured in docs/benchmarks.md); only an open the cache cannot
//! answer (or one that creates or truncates, which RESOLVE_CACHED refuses)
//! goes to the ring.
//!
//! A path that does not exist as sent is tried once more in its legacy
//! charset form ([`super::names`]), component by component, so a name
//! shown in UTF-8 finds its Latin-1 file wherever it is.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use rustix::fs::{fcntl_setfl, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{names, path, Stat, VfsError};
use crate::engine::sys::{self, FdRef};

/// openat2 resolve flags for every client path: the session's root is `/`.
pub const RESOLVE: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// openat2 resolve flags for an account's home (from the users file): it
/// must lie beneath `--root` without help from a symlink that leaves it
/// (EXDEV), a configuration error the operator is told about.
pub const RESOLVE_HOME: u64 = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;

/// Times an open is retried after EAGAIN (a concurrent rename).
pub(super) const EAGAIN_RETRIES: usize = 4;

fn relative(vpath: &[u8]) -> Result<CString, VfsError> {
    path::relative(vpath).ok_or(VfsError::NotFound)
}

/// Whether an open with `flags` may be tried with RESOLVE_CACHED: the
/// kernel refuses one that creates or truncates (openat2(2), EAGAIN), so
/// those skip the try. O_TMPFILE is `__O_TMPFILE | O_DIRECTORY`: only its
/// own bit says a temporary file, or every directory open would skip it.
fn cacheable(flags: i32) -> bool {
    let tmpfile = libc::O_TMPFILE & !libc::O_DIRECTORY;
    flags & (libc::O_CREAT | libc::O_TRUNC | tmpfile) == 0
}

/// openat2 of `rel` with [`RESOLVE`] | RESOLVE_CACHED on this thread:
/// never waits for the disk. None when the cache cannot answer (EAGAIN:
/// the ring must do it).
fn open_cached(
    dir: &FdRef,
    rel: &CString,
    flags: i32,
    resolve: u64,
) -> Option<std::io::Result<OwnedFd>> {
    if !cacheable(flags) {
        return None;
    }
    let resolve = ResolveFlags::from_bits_retain(resolve) | ResolveFlags::CACHED;
    match rustix::fs::openat2(
        dir,
        rel.as_c_str(),
        OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    ) {
        Err(Errno::AGAIN) => None,
        r => Some(r.map_err(Into::into)),
    }
}

/// Opens `rel` (relative to `dir`) with [`RESOLVE`], retrying EAGAIN:
/// from the dentry cache on this thread when it can, else on the ring.
pub async fn openat(dir: &FdRef, rel: CString, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    openat_resolve(dir, rel, flags, mode, RESOLVE).await
}

/// [`openat`] with these resolve flags instead of [`RESOLVE`].
async fn openat_resolve(
    dir: &FdRef,
    rel: CString,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> std::io::Result<OwnedFd> {
    if let Some(r) = open_cached(dir, &rel, flags, resolve) {
        return r;
    }
    let mut tries = 0;
    loop {
        match sys::openat2(dir.clone(), rel.clone(), flags, mode, resolve).await {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < EAGAIN_RETRIES => {
                tries += 1;
            }
            r => return r,
        }
    }
}

/// Opens the virtual path `vpath` under `root` for `flags`: as sent, or,
/// if that does not exist, in its legacy-charset form. "Does not exist"
/// includes ENAMETOOLONG: a legacy name of 128 bytes or more is shown in
/// UTF-8 as more than 255 bytes, too long for the filesystem as sent.
pub async fn open_vpath(root: &FdRef, vpath: &[u8], flags: i32) -> Result<OwnedFd, VfsError> {
    open_vpath_resolve(root, vpath, flags, RESOLVE).await
}

/// [`open_vpath`], also saying whether a symlink was followed on the way
/// (`true`): tried first with RESOLVE_NO_SYMLINKS, which costs nothing
/// when there is none; only a path with one (ELOOP) is opened again with
/// symlinks followed. What anonymous sessions open: a symlink may lead
/// into a directory they may not see (see [`super::world::check`]).
pub async fn open_vpath_noting_links(
    root: &FdRef,
    vpath: &[u8],
    flags: i32,
) -> Result<(OwnedFd, bool), VfsError> {
    match open_vpath_resolve(root, vpath, flags, RESOLVE | libc::RESOLVE_NO_SYMLINKS).await {
        Err(VfsError::Escapes) => Ok((open_vpath(root, vpath, flags).await?, true)),
        r => r.map(|fd| (fd, false)),
    }
}

async fn open_vpath_resolve(
    root: &FdRef,
    vpath: &[u8],
    flags: i32,
    resolve: u64,
) -> Result<OwnedFd, VfsError> {
    match openat_resolve(root, relative(vpath)?, flags, 0, resolve).await {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENAMETOOLONG)) => {
            let Some(legacy) = legacy_path(root, vpath).await else {
                return Err(VfsError::from_io(e));
            };
            openat_resolve(root, relative(&legacy)?, flags, 0, resolve)
                .await
                // Say what the legacy form met: the path as sent does not
                // exist (or is too long to), so only that form's error
                // means anything: a missing file in a long-named directory
                // is ENOENT, which is what lets a wildcard there be
                // expanded; APPE by the shown name of a legacy-named
                // directory is EISDIR.
                .map_err(VfsError::from_io)
        }
        r => r.map_err(VfsError::from_io),
    }
}

/// The path on disk a client means when it sends names it was shown
/// ([`names::display`]), found component by component from the root: a
/// component that has a legacy-charset form ([`names::legacy_name`]) is
/// kept as sent where that exists, else replaced by its legacy form, so
/// a legacy name inside a UTF-8 directory is found, and the reverse.
/// `None` when no component has a legacy form, or when a directory on
/// the way exists in neither form. Called only once the path as sent was
/// not found; at most two O_PATH opens per such component.
async fn legacy_path(root: &FdRef, vpath: &[u8]) -> Option<Vec<u8>> {
    let comps: Vec<&[u8]> = vpath
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    let forms: Vec<Option<Vec<u8>>> = comps.iter().map(|c| names::legacy_name(c)).collect();
    if forms.iter().all(Option::is_none) {
        return None;
    }
    let exists = |p: Vec<u8>| async move {
        match path::relative(&p) {
            Some(rel) => openat(root, rel, libc::O_PATH, 0).await.is_ok(),
            None => false,
        }
    };
    let last = comps.len() - 1;
    let mut out = Vec::with_capacity(vpath.len());
    for (i, (comp, form)) in comps.iter().zip(forms).enumerate() {
        out.push(b'/');
        let mark = out.len();
        out.extend_from_slice(comp);
        let Some(form) = form else { continue };
        if exists(out.clone()).await {
            continue;
        }
        out.truncate(mark);
        out.extend_from_slice(&form);
        if i < last && !exists(out.clone()).await {
            return None;
        }
    }
    Some(out)
}

/// `fd` back with its stat.
pub(super) fn fstat(fd: OwnedFd) -> Result<(OwnedFd, Stat), VfsError> {
    let file = std::fs::File::from(fd);
    let stat = Stat::from(&file.metadata().map_err(VfsError::from_io)?);
    Ok((OwnedFd::from(file), stat))
}

/// Drops O_NONBLOCK from a file opened with it. Files are opened
/// O_NONBLOCK so that a FIFO planted in the tree cannot block the open;
/// once the fd is known to be a regular file the flag goes, so splice
/// reads it normally. Of the flags F_SETFL changes (O_APPEND, O_ASYNC,
/// O_DIRECT, O_NOATIME, O_NONBLOCK; fcntl(2)) our opens set only
/// O_NONBLOCK, so setting none clears it without reading them first.
pub(super) fn clear_nonblock(fd: &OwnedFd) -> Result<(), VfsError> {
    fcntl_setfl(fd, OFlags::empty()).map_err(|e| VfsError::from_io(e.into()))
}

/// Opens a regular file for reading. A FIFO or device is refused without
/// being opened for real: O_NONBLOCK keeps a FIFO's open from blocking, and
/// the type check follows. With `note_links`, also says whether a symlink
/// was followed on the way (see [`open_vpath_noting_links`]); without, that
/// is always `false`.
pub async fn open_file(
    root: &FdRef,
    vpath: &[u8],
    note_links: bool,
) -> Result<(OwnedFd, Stat, bool), VfsError> {
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let (fd, linked) = if note_links {
        open_vpath_noting_links(root, vpath, flags).await?
    } else {
        (open_vpath(root, vpath, flags).await?, false)
    };
    let (fd, st) = fstat(fd)?;
    if !st.is_file() {
        return Err(VfsError::NotAFile);
    }
    clear_nonblock(&fd)?;
    Ok((fd, st, linked))
}

/// Opens a directory for reading its entries.
pub async fn open_dir(root: &FdRef, vpath: &[u8]) -> Result<OwnedFd, VfsError> {
    open_vpath(root, vpath, libc::O_RDONLY | libc::O_DIRECTORY).await
}

/// A path found by [`look_up`].
#[derive(Debug)]
pub struct Found {
    /// What the path is.
    pub stat: Stat,
    /// The O_PATH fd it was found through; `None` for the root, which is
    /// open already. Returned rather than closed so that a caller that
    /// answers from `stat` can close it once its reply is out: the
    /// close(2) is then off the client's wait (docs/benchmarks.md,
    /// "Eleventh pass").
    pub fd: Option<OwnedFd>,
    /// A symlink was followed on the way (only ever `true` from a
    /// [`look_up`] that notes links).
    pub linked: bool,
}

impl Found {
    /// The fd of where the path really ends, when a symlink was followed
    /// on the way (what [`super::world::check`] needs), else `None`.
    pub fn through_link(&self) -> Option<&OwnedFd> {
        self.fd.as_ref().filter(|_| self.linked)
    }
}

/// Looks up a path (following symlinks that stay inside the root): its
/// stat and the fd it was found through (see [`Found`]). With
/// `note_links`, also whether a symlink was followed on the way (see
/// [`open_vpath_noting_links`]; what anonymous sessions need).
pub async fn look_up(root: &FdRef, vpath: &[u8], note_links: bool) -> Result<Found, VfsError> {
    if vpath == b"/" {
        // The root: no link on the way, nothing to open.
        return Ok(Found {
            stat: stat(root, vpath).await?,
            fd: None,
            linked: false,
        });
    }
    let (fd, linked) = if note_links {
        open_vpath_noting_links(root, vpath, libc::O_PATH).await?
    } else {
        (open_vpath(root, vpath, libc::O_PATH).await?, false)
    };
    let (fd, stat) = fstat(fd)?;
    Ok(Found {
        stat,
        fd: Some(fd),
        linked,
    })
}

/// Stats a path (following symlinks that stay inside the root).
pub async fn stat(root: &FdRef, vpath: &[u8]) -> Result<Stat, VfsError> {
    if vpath == b"/" {
        // The root itself is open already: no open, no close (anonymous
        // sessions stat it on every path they use, see `world::check`).
        let st = rustix::fs::fstat(root).map_err(|e| VfsError::from_io(e.into()))?;
        return Ok(Stat::from(&st));
    }
    let fd = open_vpath(root, vpath, libc::O_PATH).await?;
    Ok(fstat(fd)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn only_creating_opens_skip_the_cache() {
        for flags in [
            libc::O_PATH | libc::O_DIRECTORY,
            libc::O_RDONLY | libc::O_DIRECTORY,
            libc::O_PATH | libc::O_NOFOLLOW,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        ] {
            assert!(cacheable(flags), "{flags:#o}");
        }
        for flags in [
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            libc::O_WRONLY | libc::O_TRUNC,
            libc::O_RDWR | libc::O_TMPFILE,
        ] {
            assert!(!cacheable(flags), "{flags:#o}");
        }
    }

    #[test]
    fn clear_nonblock_clears_only_that() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        for (mode, access) in [
            (OFlags::RDONLY, OFlags::RDONLY),
            (OFlags::WRONLY, OFlags::WRONLY),
        ] {
            let fd = rustix::fs::open(
                &path,
                mode | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .unwrap();
            assert!(rustix::fs::fcntl_getfl(&fd)
                .unwrap()
                .contains(OFlags::NONBLOCK));
            clear_nonblock(&fd).unwrap();
            let after = rustix::fs::fcntl_getfl(&fd).unwrap();
            assert!(!after.contains(OFlags::NONBLOCK), "{after:?}");
            assert_eq!(after & OFlags::RWMODE, access, "{after:?}");
            assert!(rustix::io::fcntl_getfd(&fd)
                .unwrap()
                .contains(rustix::io::FdFlags::CLOEXEC));
        }
    }

    /// A directory whose dentry is cached opens on this thread, as a
    /// file does: LIST and every parent directory of STOR, DELE, MKD,
    /// RMD and RNFR need no ring round trip.
    #[test]
    fn a_cached_directory_opens_on_this_thread() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir(tree.path().join("sub")).unwrap();
        std::fs::write(tree.path().join("sub/f"), b"x").unwrap();
        let root: FdRef = Rc::new(std::fs::File::open(tree.path()).unwrap());
        let rel = CString::new("sub").unwrap();
        // The first lookup fills the dentry cache.
        let _ = std::fs::metadata(tree.path().join("sub/f")).unwrap();
        for flags in [
            libc::O_PATH | libc::O_DIRECTORY,
            libc::O_RDONLY | libc::O_DIRECTORY,
        ] {
            let fd = open_cached(&root, &rel, flags, RESOLVE)
                .expect("answered from the dentry cache")
                .unwrap();
            assert!(rustix::fs::fstat(&fd).unwrap().st_mode & libc::S_IFMT == libc::S_IFDIR);
        }
        let missing = CString::new("sub/none").unwrap();
        // A name that is not there is answered too (a negative dentry), or
        // left to the ring; never a wrong file.
        if let Some(r) = open_cached(&root, &missing, libc::O_PATH, RESOLVE) {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENOENT));
        }
    }
}
