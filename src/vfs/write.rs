//! Changing the tree: uploads, DELE, MKD, RMD, RNFR/RNTO, MFMT, SITE CHMOD.
//!
//! Every operation resolves the *parent directory* of its path with
//! openat2(RESOLVE_IN_ROOT) from the session's root, then acts on the
//! final name relative to that directory fd (unlinkat, mkdirat,
//! renameat2, openat2 O_EXCL). The final component is a plain name —
//! never `.`, `..` or empty — so no operation can reach outside the root,
//! and unlink/rename act on a symlink itself, never on what it points to.
//!
//! Uploads never destroy what is on disk when they fail ([`Upload`]): a
//! file that is replaced is written beside it under a hidden temporary
//! name and renamed over it only when the transfer completes; an APPE that
//! fails is cut back to the original length; a resumed upload (REST N) is
//! cut at N when it starts and keeps what arrived. With --keep-partial a
//! failed upload keeps what arrived instead, under the target's name (a
//! replaced file gives way to it), so that the client can resume it.

use std::cell::Cell;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use super::{dirops, names, path, resolve, Stat, UploadKind, VfsError};
use crate::engine::sys::FdRef;

/// Whether `name` in `dir` is the file `file` (same device and inode; a
/// symlink there is itself, not what it points to).
fn names_file(dir: &FdRef, name: &CString, file: &OwnedFd) -> bool {
    match rustix::fs::fstat(file) {
        Ok(ours) => names_identity(dir, name, (ours.st_dev, ours.st_ino)),
        Err(_) => false,
    }
}

/// Whether `name` in `dir` is the file whose (device, inode) is `id` (a
/// symlink there is itself, not what it points to).
fn names_identity(dir: &FdRef, name: &CString, id: (u64, u64)) -> bool {
    use std::os::fd::AsFd;
    match rustix::fs::statat(
        dir.as_fd(),
        name.as_c_str(),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(at) => (at.st_dev, at.st_ino) == id,
        Err(_) => false,
    }
}

/// An open parent directory and a final name inside it.
pub(crate) struct Parent {
    pub dir: FdRef,
    pub name: CString,
}

fn plain_name(name: &[u8]) -> Result<CString, VfsError> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(VfsError::BadName);
    }
    // An upload's hidden temporary file ([`temp_name`]) is the server's
    // alone: no client writes into it, renames or deletes it mid-upload.
    if name.starts_with(TEMP_PREFIX.as_bytes()) {
        return Err(VfsError::BadName);
    }
    CString::new(name).map_err(|_| VfsError::BadName)
}

/// Opens the directory holding `vpath` and returns it with the final name:
/// the name as sent, unless only its legacy-charset form exists there
/// ([`super::names`]: the client typed a name it was shown).
pub(crate) async fn open_parent(root: &FdRef, vpath: &[u8]) -> Result<Parent, VfsError> {
    let sent = path::file_name(vpath);
    let name = plain_name(sent)?;
    let parent = path::parent(vpath);
    let dir = resolve::open_vpath(root, &parent, libc::O_PATH | libc::O_DIRECTORY).await?;
    let mut found = Parent {
        dir: Rc::new(dir),
        name,
    };
    if let Some(legacy) = names::legacy_name(sent) {
        // Too long as sent may still be a legacy name shown in UTF-8 (see
        // resolve::open_vpath).
        let missing = match lstat_in(&found).await {
            Ok(st) => st.is_none(),
            Err(VfsError::NameTooLong) => true,
            Err(e) => return Err(e),
        };
        if missing {
            let other = Parent {
                dir: found.dir.clone(),
                name: plain_name(&legacy)?,
            };
            if lstat_in(&other).await?.is_some() {
                found = other;
            }
        }
    }
    Ok(found)
}

/// Stat of the final name in `parent` without following a symlink there.
async fn lstat_in(parent: &Parent) -> Result<Option<Stat>, VfsError> {
    match resolve::openat(
        &parent.dir,
        parent.name.clone(),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )
    .await
    {
        Ok(fd) => {
            let meta = std::fs::File::from(fd)
                .metadata()
                .map_err(VfsError::from_io)?;
            Ok(Some(Stat::from(&meta)))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(VfsError::from_io(e)),
    }
}

/// DELE: removes a file (or a symlink, as itself).
pub(crate) async fn delete_file(root: &FdRef, vpath: &[u8]) -> Result<(), VfsError> {
    let p = open_parent(root, vpath).await?;
    if let Some(st) = lstat_in(&p).await? {
        if st.is_dir() {
            return Err(VfsError::IsADirectory);
        }
    }
    dirops::unlink(p.dir, p.name, 0)
        .await
        .map_err(VfsError::from_io)
}

/// MKD.
pub(crate) async fn make_dir(root: &FdRef, vpath: &[u8]) -> Result<(), VfsError> {
    let p = open_parent(root, vpath).await?;
    dirops::mkdir(p.dir, p.name, 0o755)
        .await
        .map_err(VfsError::from_io)
}

/// RMD: removes an empty directory.
pub(crate) async fn remove_dir(root: &FdRef, vpath: &[u8]) -> Result<(), VfsError> {
    if vpath == b"/" {
        return Err(VfsError::PermissionDenied);
    }
    let p = open_parent(root, vpath).await?;
    dirops::unlink(p.dir, p.name, libc::AT_REMOVEDIR)
        .await
        .map_err(VfsError::from_io)
}

/// Checks that `vpath` exists (RNFR), without following a final symlink;
/// with `directory`, that it is a directory itself (rename(2) of `link/`
/// answers ENOTDIR even where the link leads to one).
pub(crate) async fn exists(root: &FdRef, vpath: &[u8], directory: bool) -> Result<(), VfsError> {
    let p = open_parent(root, vpath).await?;
    match lstat_in(&p).await? {
        Some(st) if directory && !st.is_dir() => Err(VfsError::NotADirectory),
        Some(_) => Ok(()),
        None => Err(VfsError::NotFound),
    }
}

/// RNFR/RNTO. Both paths are inside the same session root, so a rename can
/// never move anything in from or out to another user's home. With
/// `directory` (either argument ended in `/`) both names go to rename(2)
/// with a trailing `/`: it then renames only a directory (not a symlink
/// to one), and answers ENOTDIR otherwise, in the same call, so nothing
/// can swap a file in after a check.
///
/// rename(2) replaces what is at the target (a file by a file, an empty
/// directory by a directory), which destroys it: only with `may_replace`
/// (the account may `delete`) is it let; otherwise the rename is made with
/// RENAME_NOREPLACE and refused with [`VfsError::WouldReplace`] when the
/// name exists (ProFTPD's `AllowOverwrite off` refuses it too). The flag
/// makes the refusal atomic: a rule by the source's type (a file with
/// `write`, as STOR could replace it) would need a check before the call,
/// and a second session could swap a directory in between.
pub(crate) async fn rename(
    root: &FdRef,
    from: &[u8],
    to: &[u8],
    directory: bool,
    may_replace: bool,
) -> Result<(), VfsError> {
    let mut a = open_parent(root, from).await?;
    let mut b = open_parent(root, to).await?;
    if directory {
        a.name = with_slash(&a.name);
        b.name = with_slash(&b.name);
    }
    let flags = if may_replace {
        0
    } else {
        libc::RENAME_NOREPLACE
    };
    let e = match dirops::rename(
        a.dir.clone(),
        a.name.clone(),
        b.dir.clone(),
        b.name.clone(),
        flags,
    )
    .await
    {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match e.raw_os_error() {
        Some(libc::EEXIST) if !may_replace => refused_replace(&a, &b).await,
        // EINVAL with RENAME_NOREPLACE: a directory into itself, or a
        // filesystem without renameat2's flags (NFS, CIFS, some FUSE ones).
        Some(libc::EINVAL) if !may_replace => {
            if lstat_in(&b).await?.is_some() {
                return Err(VfsError::WouldReplace);
            }
            // Nothing there a moment ago: rename(2) without the flag, which
            // answers EINVAL again only for a directory into itself. (A
            // name created between the two calls is replaced: only on a
            // filesystem that cannot refuse it atomically.)
            dirops::rename(a.dir, a.name, b.dir, b.name, 0)
                .await
                .map_err(rename_error)
        }
        _ => Err(rename_error(e)),
    }
}

/// RENAME_NOREPLACE found `b` taken: what the client is told. The same
/// file under both names (`RNTO` to its own name, a hard link) is a
/// rename(2) that does nothing, so it succeeds as it does for an account
/// that may replace; a file onto a directory, or the reverse, gets the
/// error rename(2) would give; anything else [`VfsError::WouldReplace`].
async fn refused_replace(a: &Parent, b: &Parent) -> Result<(), VfsError> {
    let (Some(from), Some(to)) = (lstat_in(a).await?, lstat_in(b).await?) else {
        return Err(VfsError::WouldReplace);
    };
    if (from.dev, from.ino) == (to.dev, to.ino) {
        Ok(())
    } else if to.is_dir() && !from.is_dir() {
        Err(VfsError::IsADirectory)
    } else if from.is_dir() && !to.is_dir() {
        Err(VfsError::NotADirectory)
    } else {
        Err(VfsError::WouldReplace)
    }
}

/// A rename's error as the client is told it.
fn rename_error(e: std::io::Error) -> VfsError {
    match e.raw_os_error() {
        // The only EINVAL renameat2 gives without flags.
        Some(libc::EINVAL) => VfsError::IntoItself,
        _ => VfsError::from_io(e),
    }
}

/// `name` followed by `/`: a path that resolves only to a directory.
fn with_slash(name: &CString) -> CString {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(b'/');
    CString::new(bytes).expect("no NUL: made from a CString")
}

/// Looks up an existing file or directory for a metadata change (O_PATH,
/// following symlinks only inside the root). O_PATH, not O_RDONLY: what
/// chmod(2) and utimensat(2) need is ownership, not read access, so an
/// owner's `0000` file or `0300` directory can still be changed back (as
/// vsftpd's and ProFTPD's chmod(2) and utimes(2) on the path can), and a
/// FIFO or device is never opened.
async fn look_up_for_meta(root: &FdRef, vpath: &[u8]) -> Result<OwnedFd, VfsError> {
    // An upload's hidden temporary file is the server's alone, as for
    // RNFR and DELE ([`plain_name`]).
    if path::file_name(vpath).starts_with(TEMP_PREFIX.as_bytes()) {
        return Err(VfsError::BadName);
    }
    resolve::open_vpath(root, vpath, libc::O_PATH).await
}

/// MFMT: sets the modification time (Unix seconds) and returns the one the
/// file now has (Unix seconds), which the filesystem may have clamped.
/// utimensat(2) with AT_EMPTY_PATH on the O_PATH fd: the access time is
/// left as it is (UTIME_OMIT).
pub(crate) async fn set_mtime(root: &FdRef, vpath: &[u8], secs: i64) -> Result<i64, VfsError> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, UTIME_OMIT};
    let fd = look_up_for_meta(root, vpath).await?;
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(&fd, c"", &times, AtFlags::EMPTY_PATH)
        .map_err(|e| VfsError::from_io(e.into()))?;
    // What the filesystem kept: ext4 clamps a time it cannot store (before
    // 1901 or after 2446 with 256-byte inodes) to its limit, silently.
    let st = rustix::fs::fstat(&fd).map_err(|e| VfsError::from_io(e.into()))?;
    Ok(st.st_mtime)
}

/// SITE CHMOD: sets permission bits (at most 0o777: no setuid, setgid or
/// sticky bits from clients). Linux has no fchmod(2) of an O_PATH fd and
/// fchmodat2(2)'s AT_EMPTY_PATH needs 6.6, so the change goes through the
/// fd's `/proc/self/fd` link, which names exactly the file the lookup
/// found (open(2), O_PATH); /proc is what the symlink check of anonymous
/// sessions reads too ([`super::world`]).
pub(crate) async fn chmod(root: &FdRef, vpath: &[u8], mode: u32) -> Result<(), VfsError> {
    use std::os::fd::AsRawFd;
    let fd = look_up_for_meta(root, vpath).await?;
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(link.as_str(), rustix::fs::Mode::from_raw_mode(mode & 0o777))
        .map_err(|e| VfsError::from_io(e.into()))
}

/// How the upload was set up, which decides what a failure undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Writing a file we created: on failure delete it (or keep it).
    Fresh,
    /// Writing a hidden temporary file, renamed over the target on success.
    Temp { target_existed: bool },
    /// STOU with --atomic-uploads: a temporary file, renamed over the empty
    /// file that reserved the unique name.
    TempOverReserved,
    /// REST + STOR into an existing file: what arrives stays; with `cut`,
    /// the file (longer than the offset) is cut at the offset when the
    /// transfer starts.
    Resume { cut: bool },
    /// APPE to an existing file of this length: cut back on failure
    /// (every in-place upload holds the file's lock, [`lock_for_writing`],
    /// so the bytes past it are this upload's).
    Append { original_len: u64 },
}

/// An upload in progress: the fd to write and what to do at the end.
pub(crate) struct Upload {
    pub file: Rc<OwnedFd>,
    /// Where the first byte goes.
    pub offset: u64,
    /// The name the file has (or will have) in its directory.
    pub name: Vec<u8>,
    parent: Parent,
    temp: Option<CString>,
    mode: Mode,
    /// The (device, inode) of the file an overwrite replaces, as it was
    /// when the upload began: --keep-partial puts a broken upload's bytes
    /// over that file only, never over a newer one.
    original: Option<(u64, u64)>,
    /// STOU with --atomic-uploads: the empty file that reserves the name,
    /// held open and locked ([`lock_for_writing`]) until the upload is
    /// dropped.
    _reserved: Option<OwnedFd>,
}

thread_local! {
    static TEMP_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// A random tag drawn once per process: nodes of a cluster that write one
/// shared tree (docs/scale-out.md) can run with the same pid, and their
/// temporary names must still differ.
fn process_tag() -> u32 {
    static TAG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *TAG.get_or_init(|| {
        let mut b = [0u8; 4];
        match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b) {
            Ok(()) => u32::from_ne_bytes(b),
            // No randomness: the clock's nanoseconds still tell nodes apart.
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        }
    })
}

/// How every upload's temporary name begins.
const TEMP_PREFIX: &str = ".ringftp-upload.";

/// A hidden name unique to this process (and node) and upload.
fn temp_name() -> CString {
    let n = TEMP_SEQ.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let tid = std::thread::current().id();
    let tid: String = format!("{tid:?}")
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    CString::new(format!(
        "{TEMP_PREFIX}{}-{:08x}.{tid}.{n}.part",
        std::process::id(),
        process_tag()
    ))
    .expect("no NUL")
}

async fn create_excl(dir: &FdRef, name: &CString) -> Result<OwnedFd, VfsError> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY;
    dirops::create(dir, name, flags, 0o644)
        .await
        .map_err(VfsError::from_io)
}

/// Sets up an upload to `vpath`. `atomic` is `--atomic-uploads`.
pub(crate) async fn begin_upload(
    root: &FdRef,
    vpath: &[u8],
    kind: UploadKind,
    atomic: bool,
) -> Result<Upload, VfsError> {
    let parent = open_parent(root, vpath).await?;
    // The common STOR, of a new name: create it at once. O_EXCL has the
    // kernel say whether anything is there (a file, a directory, a
    // symlink, even a dangling one: EEXIST), so the lookup below runs only
    // when something is, and a new file costs one open, not two.
    let created = if kind == (UploadKind::Store { offset: 0 }) && !atomic {
        match create_excl(&parent.dir, &parent.name).await {
            Ok(fd) => Some(fd),
            Err(VfsError::Exists) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let existing = match created {
        Some(_) => None,
        None => lstat_in(&parent).await?,
    };
    if existing.as_ref().is_some_and(|st| st.is_dir()) {
        return Err(VfsError::IsADirectory);
    }
    if kind == (UploadKind::Store { offset: 0 }) && existing.as_ref().is_some_and(Stat::is_symlink)
    {
        // STOR replaces a symlink with the uploaded file and leaves its
        // target alone (as rsync does; vsftpd and pure-ftpd would write
        // over the target), but a link to a directory stands for that
        // directory: refused as STOR onto the directory itself is, and so
        // is a link whose target the server's user may not look at (it
        // may be a directory). A dangling link, or a loop, is replaced.
        match resolve::stat(root, vpath).await {
            Ok(st) if st.is_dir() => return Err(VfsError::IsADirectory),
            Err(e @ VfsError::PermissionDenied) => return Err(e),
            _ => {}
        }
    }
    let mut name = path::file_name(vpath).to_vec();
    let (file, offset, temp, mode) = match kind {
        UploadKind::Store { offset } if offset > 0 => {
            if existing.is_none() {
                return Err(VfsError::NotFound);
            }
            // The size of what is opened: through a symlink, the target's.
            let (fd, st) = open_existing(root, vpath).await?;
            if offset > st.size {
                return Err(VfsError::PastEnd {
                    offset,
                    size: st.size,
                });
            }
            // A resumed upload continues the file at `offset`: what lay
            // beyond goes once the transfer starts (see `Upload::cuts`).
            let cut = offset < st.size;
            (fd, offset, None, Mode::Resume { cut })
        }
        UploadKind::Store { .. } if existing.is_none() && !atomic => {
            let made = match created {
                Some(fd) => Ok(fd),
                None => create_excl(&parent.dir, &parent.name).await,
            };
            match made {
                Ok(fd) => (fd, 0, None, Mode::Fresh),
                // Someone created it meanwhile: replace it safely instead.
                Err(VfsError::Exists) => {
                    let t = temp_name();
                    (
                        create_excl(&parent.dir, &t).await?,
                        0,
                        Some(t),
                        Mode::Temp {
                            target_existed: true,
                        },
                    )
                }
                Err(e) => return Err(e),
            }
        }
        UploadKind::Store { .. } => {
            let t = temp_name();
            let fd = create_excl(&parent.dir, &t).await?;
            (
                fd,
                0,
                Some(t),
                Mode::Temp {
                    target_existed: existing.is_some(),
                },
            )
        }
        UploadKind::Append => match existing {
            Some(_) => append_to_existing(root, vpath).await?,
            None => match create_excl(&parent.dir, &parent.name).await {
                Ok(fd) => (fd, 0, None, Mode::Fresh),
                // Another session created it since the lookup: append to
                // that file, as if it had been there (not 550 "exists").
                Err(VfsError::Exists) => append_to_existing(root, vpath).await?,
                Err(e) => return Err(e),
            },
        },
        UploadKind::Unique => {
            let (fd, unique) = reserve_unique(&parent).await?;
            name = unique.as_bytes().to_vec();
            let parent_unique = Parent {
                dir: parent.dir.clone(),
                name: unique,
            };
            if atomic {
                // Readers see at most the empty reserved name, never a
                // half-written file. The reserved file stays open and
                // locked until the upload ends, so no APPE writes into it
                // only to be replaced by the commit.
                lock_for_writing(&fd)?;
                let t = temp_name();
                let temp = create_excl(&parent.dir, &t).await?;
                return Ok(Upload {
                    file: Rc::new(temp),
                    offset: 0,
                    name,
                    parent: parent_unique,
                    temp: Some(t),
                    mode: Mode::TempOverReserved,
                    original: None,
                    _reserved: Some(fd),
                });
            }
            lock_for_writing(&fd)?;
            return Ok(Upload {
                file: Rc::new(fd),
                offset: 0,
                name,
                parent: parent_unique,
                temp: None,
                mode: Mode::Fresh,
                original: None,
                _reserved: None,
            });
        }
    };
    if mode == Mode::Fresh {
        // A new file is written in place too: an APPE of its name from
        // another session, between this create and the end of the upload,
        // must not write into it (a failed lock leaves the file to the
        // upload that holds it).
        lock_for_writing(&file)?;
    }
    // Only an overwrite that found the file when it began has one to
    // replace (one that lost a race for a new name has not).
    let original = match mode {
        Mode::Temp {
            target_existed: true,
        } => existing.as_ref().map(|st| (st.dev, st.ino)),
        _ => None,
    };
    Ok(Upload {
        file: Rc::new(file),
        offset,
        name,
        parent,
        temp,
        mode,
        original,
        _reserved: None,
    })
}

/// APPE to a file that exists: its fd (locked), the offset to write at
/// (its length once the lock is held: through a symlink, the target's), no
/// temporary name, and [`Mode::Append`] with that length.
async fn append_to_existing(
    root: &FdRef,
    vpath: &[u8],
) -> Result<(OwnedFd, u64, Option<CString>, Mode), VfsError> {
    let (fd, st) = open_existing(root, vpath).await?;
    let mode = Mode::Append {
        original_len: st.size,
    };
    Ok((fd, st.size, None, mode))
}

/// Opens an existing regular file for writing in place (following
/// symlinks inside the root), locks it ([`lock_for_writing`]) and returns
/// it with its stat, taken once the lock is held: an APPE's offset is the
/// length the file has when no other upload is writing it.
async fn open_existing(root: &FdRef, vpath: &[u8]) -> Result<(OwnedFd, Stat), VfsError> {
    let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = resolve::open_vpath(root, vpath, flags).await?;
    let (fd, st) = resolve::fstat(fd)?;
    if !st.is_file() {
        return Err(VfsError::NotAFile);
    }
    lock_for_writing(&fd)?;
    resolve::clear_nonblock(&fd)?;
    // Stat again now that the lock is held: the length another upload
    // may have left (the first told only the type).
    resolve::fstat(fd)
}

/// Takes an exclusive flock(2) on a file an upload writes in place (APPE,
/// REST + STOR, a new file), held until the upload's fd closes: a second
/// such upload of the same file gets [`VfsError::Busy`] (450) instead of
/// writing over the first one's bytes. An APPE writes at the length it
/// found (splice(2) cannot write to an O_APPEND file), so two at once
/// used to overwrite each other's data, and a failed one cut back
/// another's acknowledged bytes. flock locks belong to the open file, so
/// they also part two sessions of one process; on NFS the kernel emulates
/// them with process-wide locks, which part ringftp processes (nodes of
/// a shared tree) but not one process's sessions. A filesystem that
/// cannot lock at all (ENOLCK, EOPNOTSUPP) is written without the lock.
fn lock_for_writing(fd: &OwnedFd) -> Result<(), VfsError> {
    use rustix::fs::{flock, FlockOperation};
    match flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(VfsError::Busy),
        Err(rustix::io::Errno::NOLCK | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL) => {
            Ok(())
        }
        Err(e) => Err(VfsError::from_io(e.into())),
    }
}

/// STOU: the requested name if free, else `name.1`, `name.2`, ...
async fn reserve_unique(parent: &Parent) -> Result<(OwnedFd, CString), VfsError> {
    let base = parent.name.as_bytes().to_vec();
    for n in 0..10_000u32 {
        let candidate = if n == 0 {
            parent.name.clone()
        } else {
            let mut c = base.clone();
            c.extend_from_slice(format!(".{n}").as_bytes());
            CString::new(c).map_err(|_| VfsError::BadName)?
        };
        match create_excl(&parent.dir, &candidate).await {
            Ok(fd) => return Ok((fd, candidate)),
            Err(VfsError::Exists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(VfsError::Exists)
}

impl Upload {
    /// True when the upload changes data that was on disk before it: it
    /// replaces an existing file, appends to one, or writes into one at a
    /// restart offset. What a broken upload taken for a finished one
    /// would damage.
    pub(crate) fn touches_existing(&self) -> bool {
        matches!(
            self.mode,
            Mode::Temp {
                target_existed: true
            } | Mode::Resume { .. }
                | Mode::Append { .. }
        )
    }

    /// True when a resumed upload's file is longer than its offset and
    /// must be cut there ([`truncate`]) once the data connection is up,
    /// just before the first byte is read: an upload that never starts
    /// leaves the file as it was, and one that breaks leaves the first
    /// `offset` bytes and what arrived, for SIZE to tell the client where
    /// to resume (pure-ftpd cuts at the offset too; vsftpd writes over the
    /// old bytes in place and keeps the rest).
    pub(crate) fn cuts(&self) -> bool {
        self.mode == Mode::Resume { cut: true }
    }

    /// The transfer completed: a temporary file takes the target's name.
    /// (A resumed upload's file was cut at its offset when the transfer
    /// started, so it ends where the new data ends.) The file and its
    /// directory stay open until the upload is dropped, which the caller
    /// does after its 226; an in-place upload's lock ([`lock_for_writing`])
    /// is given up here, before it.
    ///
    /// Errors: [`VfsError::Replaced`] when the hidden temporary name no
    /// longer holds this upload's file (another session with write access
    /// to the directory removed or replaced it during the transfer): a
    /// file that is not ours is not renamed over the target.
    pub(crate) async fn commit(&self) -> Result<(), VfsError> {
        if let Some(t) = &self.temp {
            // Only this upload writes its hidden temporary name: a file
            // there that is not ours must not take the target's name.
            // (The target itself may change meanwhile: a concurrent upload
            // that finishes first, which this one then replaces.)
            if !names_file(&self.parent.dir, t, &self.file) {
                return Err(VfsError::Replaced);
            }
            dirops::rename(
                self.parent.dir.clone(),
                t.clone(),
                self.parent.dir.clone(),
                self.parent.name.clone(),
                0,
            )
            .await
            .map_err(VfsError::from_io)?;
        }
        unlock(&self.file, self.mode);
        Ok(())
    }

    /// Whether the name an overwrite replaces still holds the file it
    /// held when the upload began (always, for a name STOU reserved).
    fn still_original(&self) -> bool {
        match (self.mode, self.original) {
            (Mode::TempOverReserved, _) => true,
            (_, Some(id)) => names_identity(&self.parent.dir, &self.parent.name, id),
            (_, None) => false,
        }
    }

    /// The transfer failed: undo per the rules above. With `keep_partial`
    /// what arrived stays under the target's name, replacing the file an
    /// overwrite was for (the client resumes it with REST or APPE).
    pub(crate) async fn abort(self, keep_partial: bool) {
        // A stat of the target, needed only to keep a partial.
        let still_original = keep_partial && self.still_original();
        let result = match (self.mode, self.temp) {
            (Mode::Fresh, _) if keep_partial => Ok(()),
            // Only while the name is still this upload's file: a
            // concurrent upload of the same name that completed meanwhile
            // stays.
            (Mode::Fresh, _) if !names_file(&self.parent.dir, &self.parent.name, &self.file) => {
                Ok(())
            }
            (Mode::Fresh, _) => dirops::unlink(self.parent.dir, self.parent.name, 0)
                .await
                .map_err(VfsError::from_io),
            // --keep-partial: what arrived takes the target's name. Over
            // a file it was replacing, as a peer that writes in place
            // leaves it, so the client's resume (SIZE, then REST + STOR or
            // APPE) continues its own bytes, not the old file's; over a
            // name STOU reserved, which is ours.
            (
                Mode::Temp {
                    target_existed: true,
                }
                | Mode::TempOverReserved,
                Some(t),
            ) if still_original => dirops::rename(
                self.parent.dir.clone(),
                t,
                self.parent.dir,
                self.parent.name,
                0,
            )
            .await
            .map_err(VfsError::from_io),
            (Mode::Temp { target_existed }, Some(t)) => {
                if keep_partial && !target_existed {
                    // Give the partial the target name, unless one appeared.
                    match dirops::rename(
                        self.parent.dir.clone(),
                        t.clone(),
                        self.parent.dir.clone(),
                        self.parent.name,
                        libc::RENAME_NOREPLACE,
                    )
                    .await
                    {
                        Ok(()) => Ok(()),
                        Err(_) => dirops::unlink(self.parent.dir, t, 0)
                            .await
                            .map_err(VfsError::from_io),
                    }
                } else {
                    dirops::unlink(self.parent.dir, t, 0)
                        .await
                        .map_err(VfsError::from_io)
                }
            }
            (Mode::TempOverReserved, Some(t)) => {
                let _ = dirops::unlink(self.parent.dir.clone(), t, 0).await;
                dirops::unlink(self.parent.dir, self.parent.name, 0)
                    .await
                    .map_err(VfsError::from_io)
            }
            (Mode::Append { original_len }, _) if !keep_partial => {
                truncate(&self.file, original_len).map_err(VfsError::from_io)
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(
                "cleaning up a failed upload of {}: {e}",
                String::from_utf8_lossy(&self.name)
            );
        }
        unlock(&self.file, self.mode);
    }
}

/// Gives up an in-place upload's lock ([`lock_for_writing`]) once its
/// file is final, before the reply that says so: a client told 226 (or
/// 426) may at once write the file again from another session. The fd
/// itself closes after the reply, as every upload's does.
fn unlock(file: &OwnedFd, mode: Mode) {
    if matches!(
        mode,
        Mode::Fresh | Mode::Resume { .. } | Mode::Append { .. }
    ) {
        // An error leaves the lock to the close, a moment later.
        let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
    }
}

/// Sets `file`'s length to `len` bytes (ftruncate(2)): a failed APPE's cut
/// back, a resumed upload's cut at its offset ([`Upload::cuts`]).
pub(crate) fn truncate(file: &OwnedFd, len: u64) -> std::io::Result<()> {
    // ftruncate has no io_uring opcode before Linux 6.9; it is a metadata
    // update, not I/O, so it runs here.
    std::fs::File::from(file.try_clone()?).set_len(len)
}
