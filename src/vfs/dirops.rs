//! Where the directory-entry calls of uploads and file management run:
//! a file's creation (an `O_CREAT` open), unlink, mkdir and rename.
//!
//! io_uring has no non-blocking try for these: it hands every one to an
//! io-wq worker thread, and the shard sleeps until the worker's
//! completion wakes it. Two thread wake-ups per call, each tens of µs on
//! a VM whose idle vCPU halts (docs/benchmarks.md, fourth and sixteenth
//! passes), were most of what a STOR of a small new file cost beyond
//! pure-ftpd's. When the shard thread serves only the session asking
//! ([`shard::alone`]) and the directory is on a local filesystem
//! ([`local`]), the call runs on the shard thread instead, as it runs in
//! vsftpd's and pure-ftpd's session processes: nobody else waits for it.
//! With other sessions on the shard a call that waits for the disk (an
//! inode table block, a journal commit) would hold up their commands and
//! transfers, and a network filesystem (NFS, CIFS, FUSE) may wait for its
//! server without bound, which would also hold up every connection the
//! kernel hands this shard's listener meanwhile: there the ring keeps the
//! call, off the thread. The result is the same either way; only the
//! thread that makes the syscall differs.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

use super::resolve::{EAGAIN_RETRIES, RESOLVE};
use crate::engine::shard;
use crate::engine::sys::{self, FdRef};

/// `statfs(2)` `f_type` of the filesystems whose metadata calls finish
/// without waiting on anything but the local machine's disks and locks:
/// ext2/3/4, XFS, Btrfs, tmpfs, ramfs, F2FS, overlayfs, ZFS, bcachefs.
/// Any other type (NFS, CIFS, FUSE, Ceph, 9p, one unknown here) is not.
const LOCAL: [u32; 9] = [
    0xEF53,      // EXT2/3/4_SUPER_MAGIC
    0x5846_5342, // XFS_SUPER_MAGIC
    0x9123_683E, // BTRFS_SUPER_MAGIC
    sys::TMPFS_MAGIC,
    sys::RAMFS_MAGIC,
    0xF2F5_2010, // F2FS_SUPER_MAGIC
    0x794C_7630, // OVERLAYFS_SUPER_MAGIC
    0x2FC1_2FC1, // ZFS_SUPER_MAGIC
    0xCA45_1A4E, // BCACHEFS_SUPER_MAGIC
];

/// True when `dir` is on a local filesystem ([`LOCAL`]); false when not,
/// or when fstatfs fails.
pub(crate) fn local(dir: &FdRef) -> bool {
    sys::fs_type(dir).is_some_and(|t| LOCAL.contains(&t))
}

/// Whether a call in `dir` runs on this thread (see the module docs).
fn here(dir: &FdRef) -> bool {
    shard::alone() && local(dir)
}

/// Creates and opens `name` in `dir` (`flags` must hold O_CREAT; O_CLOEXEC
/// is added), with permission `mode` less the umask, resolved as
/// [`super::resolve::openat`] resolves (RESOLVE_IN_ROOT, EAGAIN retried).
pub(crate) async fn create(
    dir: &FdRef,
    name: &CString,
    flags: i32,
    mode: u32,
) -> io::Result<OwnedFd> {
    if !here(dir) {
        return super::resolve::openat(dir, name.clone(), flags, mode).await;
    }
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            dir,
            name.as_c_str(),
            OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
            ResolveFlags::from_bits_retain(RESOLVE),
        ) {
            Err(Errno::AGAIN) if tries < EAGAIN_RETRIES => tries += 1,
            r => return r.map_err(Into::into),
        }
    }
}

/// `unlinkat(2)` of `name` in `dir`; `flags` 0 or AT_REMOVEDIR.
pub(crate) async fn unlink(dir: FdRef, name: CString, flags: i32) -> io::Result<()> {
    if here(&dir) {
        let flags = AtFlags::from_bits_retain(flags as u32);
        return rustix::fs::unlinkat(&dir, name.as_c_str(), flags).map_err(Into::into);
    }
    sys::unlinkat(dir, name, flags).await
}

/// `mkdirat(2)` of `name` in `dir`, permission `mode` less the umask.
pub(crate) async fn mkdir(dir: FdRef, name: CString, mode: u32) -> io::Result<()> {
    if here(&dir) {
        let mode = Mode::from_raw_mode(mode);
        return rustix::fs::mkdirat(&dir, name.as_c_str(), mode).map_err(Into::into);
    }
    sys::mkdirat(dir, name, mode).await
}

/// `renameat2(2)` of `old` in `old_dir` to `new` in `new_dir` (`flags`: 0
/// or RENAME_NOREPLACE); a symlink is renamed as itself.
pub(crate) async fn rename(
    old_dir: FdRef,
    old: CString,
    new_dir: FdRef,
    new: CString,
    flags: u32,
) -> io::Result<()> {
    // One filesystem holds both (else EXDEV), so one check serves both.
    if here(&old_dir) {
        return rustix::fs::renameat_with(
            &old_dir,
            old.as_c_str(),
            &new_dir,
            new.as_c_str(),
            RenameFlags::from_bits_retain(flags),
        )
        .map_err(Into::into);
    }
    sys::renameat(old_dir, old, new_dir, new, flags).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn dir(path: &str) -> FdRef {
        Rc::new(std::fs::File::open(path).expect(path))
    }

    #[test]
    fn local_disks_are_told_from_the_rest() {
        // The test's own files are on a local disk (or tmpfs), and
        // /dev/shm is tmpfs; /proc is neither.
        assert!(local(&dir(env!("CARGO_MANIFEST_DIR"))));
        assert!(local(&dir("/dev/shm")));
        assert!(!local(&dir("/proc")));
        assert!(!local(&dir("/sys")));
    }

    #[test]
    fn the_calls_do_the_same_on_the_thread_and_on_the_ring() {
        tokio_uring::start(async {
            for sessions in [1, 2] {
                let tenants: Vec<_> = (0..sessions).map(|_| shard::Tenant::new()).collect();
                assert_eq!(shard::alone(), sessions == 1);
                let tmp = tempfile::tempdir().unwrap();
                let d = dir(tmp.path().to_str().unwrap());
                let name = |s: &str| CString::new(s).unwrap();
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
                let f = create(&d, &name("a"), flags, 0o640).await.unwrap();
                drop(f);
                let err = create(&d, &name("a"), flags, 0o640).await.unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
                // RESOLVE_IN_ROOT: a symlink to an absolute path stays in dir.
                std::os::unix::fs::symlink("/a-new-name", tmp.path().join("link")).unwrap();
                let f = create(&d, &name("link"), libc::O_WRONLY | libc::O_CREAT, 0o600).await;
                drop(f.unwrap());
                assert!(tmp.path().join("a-new-name").is_file());
                mkdir(d.clone(), name("sub"), 0o750).await.unwrap();
                assert!(tmp.path().join("sub").is_dir());
                rename(d.clone(), name("a"), d.clone(), name("b"), 0)
                    .await
                    .unwrap();
                assert!(tmp.path().join("b").is_file());
                let err = rename(
                    d.clone(),
                    name("b"),
                    d.clone(),
                    name("sub"),
                    libc::RENAME_NOREPLACE,
                )
                .await
                .unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
                unlink(d.clone(), name("b"), 0).await.unwrap();
                unlink(d.clone(), name("sub"), libc::AT_REMOVEDIR)
                    .await
                    .unwrap();
                let err = unlink(d.clone(), name("b"), 0).await.unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
                assert_eq!(
                    std::fs::read_dir(tmp.path()).unwrap().count(),
                    2,
                    "link and a-new-name left"
                );
                drop(tenants);
            }
            assert!(shard::alone());
        });
    }
}
