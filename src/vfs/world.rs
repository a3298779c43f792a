//! What anonymous sessions may see: only what is published to the world
//! (vsftpd's `anon_world_readable_only`, on by default there too).
//!
//! The server process may be able to read far more than it should publish
//! (it may run as root, or own private files), so for anonymous sessions
//! the permission bits for "other" decide, whoever the process is:
//! - a file is readable (RETR, SIZE, MDTM, MLST, shown in listings) when
//!   it is world-readable (`o+r`);
//! - a directory can be entered or passed through (CWD, any path beneath
//!   it) when it is world-searchable (`o+x`), and listed when it is also
//!   world-readable (`o+r`);
//! - every directory on the way from `/` to a path must be
//!   world-searchable ([`check`]).
//!
//! The directories checked are those the virtual path names (each prefix,
//! following symlinks that stay inside the root); a symlink's target is
//! checked as itself, not the directories its text passes through. The
//! process's own permissions (after the drop to `--user`) still apply on
//! top, in the kernel.
//!
//! The mode tests are pure; [`check`] does the stats.

use super::{path, resolve, Stat, VfsError};
use crate::engine::sys::FdRef;

const OTHER_READ: u32 = libc::S_IROTH;
const OTHER_SEARCH: u32 = libc::S_IXOTH;

/// What is about to be done with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Read a file, or list a directory.
    Read,
    /// Enter a directory (CWD).
    Enter,
    /// Learn that it exists and its facts (MLST): as [`visible`].
    Look,
}

/// A file anonymous may read, or a directory it may list.
pub fn readable(st: &Stat) -> bool {
    let need = if st.is_dir() {
        OTHER_READ | OTHER_SEARCH
    } else {
        OTHER_READ
    };
    st.mode & need == need
}

/// A directory anonymous may enter and pass through.
pub fn searchable(st: &Stat) -> bool {
    st.is_dir() && st.mode & OTHER_SEARCH != 0
}

/// Whether a listing shows an entry to anonymous: files when readable,
/// directories when they can be entered, symlinks as links (what they
/// lead to is checked when it is used).
pub fn visible(st: &Stat) -> bool {
    if st.is_symlink() {
        true
    } else if st.is_dir() {
        searchable(st)
    } else {
        st.mode & OTHER_READ != 0
    }
}

fn allows(st: &Stat, usage: Use) -> bool {
    match usage {
        Use::Read => readable(st),
        Use::Enter => searchable(st),
        Use::Look => visible(st),
    }
}

/// Checks, for an anonymous session, that `vpath` (whose stat is `st`)
/// may be used as `usage` and that every directory above it is
/// world-searchable. Refuses with [`VfsError::NotPublished`].
pub async fn check(root: &FdRef, vpath: &[u8], st: &Stat, usage: Use) -> Result<(), VfsError> {
    if !allows(st, usage) {
        return Err(VfsError::NotPublished);
    }
    for dir in ancestors(vpath) {
        let st = resolve::stat(root, &dir).await?;
        if !searchable(&st) {
            return Err(VfsError::NotPublished);
        }
    }
    Ok(())
}

/// The directories above an absolute virtual path, from `/` down:
/// `/a/b/c` -> `/`, `/a`, `/a/b`; none for `/` itself.
pub fn ancestors(vpath: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut p = vpath.to_vec();
    while p != b"/" {
        p = path::parent(&p);
        out.push(p.clone());
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: u32, perm: u32) -> Stat {
        Stat {
            mode: kind | perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            dev: 0,
            ino: 0,
        }
    }

    #[test]
    fn modes() {
        let f = |p| st(libc::S_IFREG, p);
        let d = |p| st(libc::S_IFDIR, p);
        // (stat, readable, searchable, visible)
        let table = [
            (f(0o644), true, false, true),
            (f(0o600), false, false, false),
            (f(0o640), false, false, false),
            (f(0o604), true, false, true),
            (d(0o755), true, true, true),
            (d(0o711), false, true, true),
            (d(0o700), false, false, false),
            (d(0o754), false, false, false),
            (st(libc::S_IFLNK, 0o777), true, false, true),
            (st(libc::S_IFIFO, 0o600), false, false, false),
        ];
        for (i, (s, r, x, v)) in table.into_iter().enumerate() {
            assert_eq!(
                (readable(&s), searchable(&s), visible(&s)),
                (r, x, v),
                "row {i}: {:o}",
                s.mode
            );
        }
    }

    #[test]
    fn ancestor_paths() {
        assert_eq!(ancestors(b"/"), Vec::<Vec<u8>>::new());
        assert_eq!(ancestors(b"/a"), vec![b"/".to_vec()]);
        assert_eq!(
            ancestors(b"/a/b/c"),
            vec![b"/".to_vec(), b"/a".to_vec(), b"/a/b".to_vec()]
        );
    }
}
