//! The virtual filesystem: what a client sees as `/` is `--root`.
//!
//! - [`path`]: pure joining and normalization of client paths;
//! - [`resolve`]: opening a virtual path under the root, race-free, with
//!   openat2(RESOLVE_IN_ROOT) on the shard's ring;
//! - [`dir`]: reading a directory into listing entries (off the shard);
//! - [`listing`]: LIST/NLST/MLSD/MLST line formatting (pure);
//! - [`glob`]: wildcards in the last component of a listing path (pure);
//! - [`names`]: how names that are not UTF-8 are shown and found (pure);
//! - [`write`](mod@write): uploads and file management (create, rename, delete...),
//!   all relative to directory fds resolved the same race-free way;
//! - [`dirops`]: where its creates, unlinks, mkdirs and renames run (the
//!   ring's io-wq, or the shard thread when it serves one session);
//! - [`time`]: civil time for MDTM and listings (pure);
//! - [`world`]: what anonymous sessions may see (world-readable only);
//! - [`access`]: what an entry's mode bits allow, for MLSx `perm`.

pub mod access;
pub(crate) mod dir;
pub(crate) mod dirops;
pub(crate) mod glob;
pub mod listing;
pub(crate) mod names;
pub mod path;
pub mod resolve;
pub(crate) mod time;
pub(crate) mod world;
pub(crate) mod write;

use std::io;

/// Why a virtual path could not be used, in the terms a reply needs.
#[derive(Debug)]
pub enum VfsError {
    /// ENOENT: no such file or directory.
    NotFound,
    /// EACCES, EPERM or EROFS: the server's user may not do this.
    PermissionDenied,
    /// The path (through `..` or a symlink) leads outside the root.
    Escapes,
    /// Not a regular file where one is needed: RETR, SIZE or MDTM of a
    /// directory, a FIFO or a device.
    NotAFile,
    /// ENOTDIR: a directory was needed (CWD, or a path component).
    NotADirectory,
    /// EISDIR: a file was needed but the path is a directory.
    IsADirectory,
    /// The name already exists (MKD, STOU, RNTO onto a directory...).
    Exists,
    /// RMD of a directory that still has entries.
    NotEmpty,
    /// ENOSPC or EDQUOT: 452.
    NoSpace,
    /// A name the server will not create (empty, `.`, `..`, `/`).
    BadName,
    /// ENAMETOOLONG: a path component over the filesystem's limit (255
    /// bytes on ext4, XFS, btrfs) or a path over PATH_MAX.
    NameTooLong,
    /// RNTO of a directory into itself or one of its subdirectories
    /// (renameat2(2) EINVAL).
    IntoItself,
    /// Another upload is writing the file in place (APPE, REST + STOR, or
    /// a new file still arriving): 450, RFC 959's "file busy"; the client
    /// may try again once it has ended (see `write::lock_for_writing`).
    Busy,
    /// RNTO onto a name that exists, by an account that may not `delete`
    /// what is there: 550, and nothing renamed.
    WouldReplace,
    /// REST offset (bytes) past the end of the file, whose size is `size`
    /// bytes, for RETR or STOR.
    PastEnd {
        /// The restart offset, bytes.
        offset: u64,
        /// The file's size, bytes. (An account without `read`, which
        /// may not learn it, never gets here: REST + STOR needs `read`.)
        size: u64,
    },
    /// Shown to anonymous sessions but not usable as asked: a directory
    /// they may enter but not list (`0711`, see [`world`]).
    NotPublished,
    /// Not shown to anonymous sessions at all: a file that is not
    /// world-readable, a directory that is not world-searchable, anything
    /// under one, or a path whose lookup failed in a way that would tell a
    /// hidden name from a missing one (EACCES, ENOTDIR, ELOOP: the cause,
    /// kept for the log). The reply is the one for a missing path ("No
    /// such file or directory."), so a client cannot probe for names it
    /// is not shown (ProFTPD's `HideNoAccess`; vsftpd answers both alike
    /// too).
    Hidden(Option<Box<VfsError>>),
    /// EMFILE, ENFILE, ENOMEM or ENOBUFS: the server is out of file
    /// descriptors or memory for now. Kept for the log; the reply is 451
    /// (RFC 959 section 4.2.2, "local error in processing"), a transient
    /// refusal, so a client tries again where a 550 would make a mirror
    /// tool give the file up.
    Exhausted(io::Error),
    /// An upload's hidden temporary file is no longer under its name when
    /// the transfer ends: another session (or process) removed or
    /// replaced it meanwhile, so it is not renamed over the target. The
    /// reply is 451: what the client sent did not land.
    Replaced,
    /// Any other I/O error, kept for the log (the reply says only 550).
    Io(io::Error),
}

impl VfsError {
    /// Classifies an OS error by its errno; unknown errnos become
    /// [`VfsError::Io`].
    pub fn from_io(e: io::Error) -> VfsError {
        match e.raw_os_error() {
            Some(libc::ENOENT) => VfsError::NotFound,
            Some(libc::EACCES) | Some(libc::EPERM) => VfsError::PermissionDenied,
            // openat2 answers EXDEV when resolution would leave the root
            // (RESOLVE_BENEATH: an account's home) and ELOOP for magic
            // links or symlink loops.
            Some(libc::EXDEV) | Some(libc::ELOOP) => VfsError::Escapes,
            Some(libc::ENOTDIR) => VfsError::NotADirectory,
            Some(libc::EISDIR) => VfsError::IsADirectory,
            Some(libc::EEXIST) => VfsError::Exists,
            Some(libc::ENOTEMPTY) => VfsError::NotEmpty,
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => VfsError::NoSpace,
            Some(libc::EROFS) => VfsError::PermissionDenied,
            Some(libc::ENAMETOOLONG) => VfsError::NameTooLong,
            // open(2) of a socket, or of a FIFO for writing without a
            // reader (O_NONBLOCK): not a file to transfer.
            Some(libc::ENXIO) => VfsError::NotAFile,
            _ if VfsError::exhausts(&e) => VfsError::Exhausted(e),
            _ => VfsError::Io(e),
        }
    }

    /// Whether `e` says the server itself is out of file descriptors or
    /// memory (EMFILE, ENFILE, ENOMEM, ENOBUFS): transient, and worth the
    /// operator's attention, wherever it is met (a file, a socket, a pipe).
    pub fn exhausts(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS)
        )
    }

    /// The reply code: 452 for a full disk or quota, 451 when the server
    /// is out of descriptors or memory, 450 for a file another upload is
    /// writing (all transient: the client may try again), 554 for a
    /// restart offset past the end (RFC 3659 section 5.4), else 550.
    pub fn reply_code(&self) -> u16 {
        match self {
            VfsError::PastEnd { .. } => crate::proto::codes::INVALID_REST_PARAMETER,
            VfsError::NoSpace => crate::proto::codes::INSUFFICIENT_STORAGE,
            VfsError::Exhausted(_) | VfsError::Replaced => crate::proto::codes::LOCAL_ERROR,
            VfsError::Busy => crate::proto::codes::FILE_ACTION_NOT_TAKEN,
            _ => crate::proto::codes::FILE_UNAVAILABLE,
        }
    }

    /// The text of the refusal (see [`VfsError::reply_code`] for its
    /// code). An escape attempt reads like any other refusal: the client
    /// learns nothing about what lies outside the root.
    pub fn reply_text(&self) -> std::borrow::Cow<'static, str> {
        let text = match self {
            VfsError::PastEnd { offset, size } => {
                return format!(
                    "Restart offset {offset} is past the end of the file ({size} bytes)."
                )
                .into()
            }
            VfsError::NotFound | VfsError::Hidden(_) => "No such file or directory.",
            VfsError::PermissionDenied | VfsError::Escapes | VfsError::NotPublished => {
                "Permission denied."
            }
            VfsError::NotAFile => "Not a plain file.",
            VfsError::NotADirectory => "Not a directory.",
            VfsError::IsADirectory => "Is a directory.",
            VfsError::Exists => "File exists.",
            VfsError::NotEmpty => "Directory not empty.",
            VfsError::NoSpace => "Insufficient storage space.",
            VfsError::BadName => "Invalid file name.",
            VfsError::NameTooLong => "File name too long.",
            VfsError::IntoItself => "Cannot move a directory into itself.",
            VfsError::Busy => "File busy: another upload is writing it; try again later.",
            VfsError::WouldReplace => "File exists; this account may not replace it.",
            VfsError::Exhausted(_) => "Server out of resources; try again later.",
            VfsError::Replaced => "Upload failed: the file was replaced or removed meanwhile.",
            VfsError::Io(_) => "Could not access the file.",
        };
        text.into()
    }
}

impl std::fmt::Display for VfsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VfsError::Io(e) | VfsError::Exhausted(e) => write!(f, "{e}"),
            VfsError::Replaced => f.write_str(
                "the upload's temporary file was replaced or removed by someone else during the transfer",
            ),
            VfsError::Escapes => f.write_str("path leads outside the root, or a symlink loop"),
            VfsError::NotPublished => f.write_str(
                "not world-readable (anonymous sessions may list only world-readable directories)",
            ),
            VfsError::Hidden(None) => f.write_str(
                "not world-readable, answered as absent (anonymous sessions see only world-readable files and world-searchable directories)",
            ),
            VfsError::Hidden(Some(cause)) => {
                write!(f, "{cause}; answered to anonymous as absent")
            }
            other => f.write_str(other.reply_text().trim_end_matches('.')),
        }
    }
}

/// What kind of upload (STOR, APPE or STOU), as the session asks
/// [`write::begin_upload`] for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// STOR, from `offset` (REST) when above zero.
    Store {
        /// Where in the file writing starts, in bytes.
        offset: u64,
    },
    /// APPE.
    Append,
    /// STOU: a new file with a name the server picks.
    Unique,
}

/// The file facts listings and SIZE/MDTM need, from `stat`.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// `st_mode`: file type (`S_IFMT` bits) and permission bits.
    pub mode: u32,
    /// `st_nlink`: the number of hard links.
    pub nlink: u64,
    /// `st_uid`: the owner's numeric user id.
    pub uid: u32,
    /// `st_gid`: the owner's numeric group id.
    pub gid: u32,
    /// `st_size`: the size in bytes.
    pub size: u64,
    /// `st_mtime`: the modification time, Unix seconds (UTC).
    pub mtime: i64,
    /// `st_dev`: the device the file lives on (with `ino`, its identity).
    pub dev: u64,
    /// `st_ino`: the inode number.
    pub ino: u64,
}

impl Stat {
    /// For unit tests: a stat with this `st_mode` (type and permission
    /// bits), one link, owned by root, everything else zero.
    #[cfg(test)]
    pub(crate) fn with_mode(mode: u32) -> Stat {
        Stat {
            mode,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            dev: 0,
            ino: 0,
        }
    }

    /// A directory (`S_IFDIR`).
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// A regular file (`S_IFREG`).
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    /// A symbolic link (`S_IFLNK`); seen only when the stat did not follow
    /// links.
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    /// The listing's kind for this file type.
    pub fn kind(&self) -> listing::EntryKind {
        match self.mode & libc::S_IFMT {
            libc::S_IFREG => listing::EntryKind::File,
            libc::S_IFDIR => listing::EntryKind::Dir,
            libc::S_IFLNK => listing::EntryKind::Symlink,
            _ => listing::EntryKind::Other,
        }
    }

    /// A listing entry named `name` with these facts.
    pub fn entry(&self, name: Vec<u8>, link_target: Option<Vec<u8>>) -> listing::Entry {
        listing::Entry {
            name,
            kind: self.kind(),
            stat: *self,
            link_target,
        }
    }
}

impl From<&std::fs::Metadata> for Stat {
    fn from(m: &std::fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            mtime: m.mtime(),
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

impl From<&rustix::fs::Stat> for Stat {
    // The kernel's field widths differ between architectures (`st_nlink`
    // is 64-bit on x86_64, 32-bit on aarch64): the casts are no-ops on some.
    #[allow(clippy::unnecessary_cast)]
    fn from(s: &rustix::fs::Stat) -> Stat {
        Stat {
            mode: s.st_mode,
            nlink: s.st_nlink as u64,
            uid: s.st_uid,
            gid: s.st_gid,
            size: s.st_size as u64,
            mtime: s.st_mtime as i64,
            dev: s.st_dev as u64,
            ino: s.st_ino as u64,
        }
    }
}
