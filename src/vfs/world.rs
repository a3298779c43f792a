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
//!   world-searchable ([`check`]), and so must every directory above
//!   where a symlink on the way really leads.
//!
//! The directories checked are those the virtual path names (each prefix,
//! following symlinks that stay inside the root) and, when a symlink on
//! the way led elsewhere, those above where the path really ends (read
//! back from the opened fd, `/proc/self/fd`): a link in a public
//! directory does not publish what lies in a private one. The process's
//! own permissions (after the drop to `--user`) still apply on top, in
//! the kernel.
//!
//! The mode tests are pure; [`check`] does the stats. A session remembers
//! the directories it has found searchable ([`Searched`]), so a session
//! that fetches file after file from one tree stats each directory once,
//! not on every request.

use std::cell::RefCell;
use std::ffi::CString;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::{path, resolve, Stat, VfsError};
use crate::engine::sys::FdRef;

const OTHER_READ: u32 = libc::S_IROTH;
const OTHER_SEARCH: u32 = libc::S_IXOTH;

/// What is about to be done with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Read a file, or list a directory.
    Read,
    /// Enter a directory (CWD).
    Enter,
    /// Learn that it exists and its facts (MLST): as [`visible`].
    Look,
}

/// A file anonymous may read, or a directory it may list.
pub(crate) fn readable(st: &Stat) -> bool {
    let need = if st.is_dir() {
        OTHER_READ | OTHER_SEARCH
    } else {
        OTHER_READ
    };
    st.mode & need == need
}

/// A directory anonymous may enter and pass through.
pub(crate) fn searchable(st: &Stat) -> bool {
    st.is_dir() && st.mode & OTHER_SEARCH != 0
}

/// Whether a listing shows an entry to anonymous: files when readable,
/// directories when they can be entered, symlinks as links (what they
/// lead to is checked when it is used).
pub(crate) fn visible(st: &Stat) -> bool {
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
        // A file is refused as "Not a directory." by CWD itself.
        Use::Enter => searchable(st) || !st.is_dir(),
        Use::Look => visible(st),
    }
}

/// Checks, for an anonymous session, that `vpath` (whose stat is `st`)
/// may be used as `usage` and that every directory above it is
/// world-searchable. Directories `searched` already holds are not
/// stat'ed again; the deepest one checked here is added to it.
///
/// Refuses with [`VfsError::Hidden`] (answered like a missing path) when
/// `vpath` is not [`visible`] or lies under a directory that is not
/// world-searchable, so that nothing a listing leaves out can be told
/// apart from a name that does not exist; with [`VfsError::NotPublished`]
/// when it is shown but not usable as `usage` (LIST of a `0711`
/// directory). CWD to a visible file passes here (the caller answers
/// "Not a directory.").
///
/// `opened` is the path's fd (O_PATH will do) when a symlink was followed
/// on the way: its real location is read back, and the directories above
/// it must be world-searchable too. `None` for a path that followed no
/// symlink (its location is `vpath`; reading it back costs a few µs).
pub(crate) async fn check(
    root: &FdRef,
    vpath: &[u8],
    opened: Option<&OwnedFd>,
    st: &Stat,
    usage: Use,
    searched: &Searched,
) -> Result<(), VfsError> {
    if !visible(st) {
        return Err(VfsError::Hidden(None));
    }
    // Paths from `join` are normalized already; anything else is
    // normalized first, so each ancestor is a prefix of the path.
    let normal;
    let vpath = if path::is_normal(vpath) {
        vpath
    } else {
        normal = path::join(b"/", vpath);
        &normal
    };
    check_ancestors(root, vpath, searched).await?;
    if let Some(fd) = opened {
        let located = searched
            .locator
            .borrow_mut()
            .locate(root.as_fd(), fd.as_fd());
        match located {
            Located::At(real) if real != vpath => check_ancestors(root, &real, searched).await?,
            Located::At(_) | Located::Unknown => {}
            // Moved out of the root since it was opened.
            Located::Outside => return Err(VfsError::Hidden(None)),
        }
    }
    if allows(st, usage) {
        Ok(())
    } else {
        Err(VfsError::NotPublished)
    }
}

/// Checks that every directory above the normalized absolute virtual path
/// `vpath` is world-searchable, skipping those `searched` holds and
/// remembering the deepest one checked.
async fn check_ancestors(root: &FdRef, vpath: &[u8], searched: &Searched) -> Result<(), VfsError> {
    // One key per directory above `vpath` (and one for `vpath` itself,
    // last, unused here), hashed in one pass.
    let keys = searched.keys(vpath);
    let above = &keys[..keys.len() - 1];
    // The parent covered means every directory above it is: one lookup
    // for a session back in a directory it has used.
    if above.last().is_some_and(|&k| searched.covers_key(k)) {
        return Ok(());
    }
    let mut deepest = None;
    for (i, dir) in ancestors(vpath)
        .enumerate()
        .skip_while(|&(i, _)| searched.covers_key(above[i]))
    {
        let st = resolve::stat(root, dir).await.map_err(hide_revealing)?;
        if !searchable(&st) {
            return Err(VfsError::Hidden(None));
        }
        deepest = Some(i);
    }
    if let Some(i) = deepest {
        // Every directory above it was covered or just passed.
        searched.remember_keys(&above[..=i]);
    }
    Ok(())
}

/// Where opened fds really are under a session's root, read back from
/// `/proc/self/fd` (a few µs each: only for paths that followed a
/// symlink); the root's own path is read once.
#[derive(Debug, Default)]
pub(crate) struct Locator {
    /// The root's real path, once read (`None` inside: unreadable).
    root_real: Option<Option<Vec<u8>>>,
}

/// Where [`Locator::locate`] found an fd.
pub(crate) enum Located {
    /// At this absolute virtual path under the root.
    At(Vec<u8>),
    /// Outside the root (moved out after it was opened).
    Outside,
    /// `/proc` cannot be read: not known (warned once; the symlink check
    /// is then skipped).
    Unknown,
}

impl Locator {
    /// Where `opened` really is under `root`.
    pub(crate) fn locate(&mut self, root: BorrowedFd<'_>, opened: BorrowedFd<'_>) -> Located {
        let root_real = self.root_real.get_or_insert_with(|| fd_path(root));
        let (Some(root_real), Some(real)) = (root_real.as_deref(), fd_path(opened)) else {
            warn_no_proc();
            return Located::Unknown;
        };
        let rest = if root_real == b"/" {
            &real[..]
        } else {
            match real.strip_prefix(root_real) {
                Some(rest) => rest,
                None => return Located::Outside,
            }
        };
        match rest {
            [] => Located::At(b"/".to_vec()),
            [b'/', ..] => Located::At(rest.to_vec()),
            _ => Located::Outside,
        }
    }
}

/// The path the kernel has for `fd` (`/proc/self/fd/N`).
fn fd_path(fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::readlink(link, Vec::new())
        .ok()
        .map(CString::into_bytes)
}

fn warn_no_proc() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "cannot read /proc/self/fd: anonymous sessions' symlinks into unpublished directories are not checked"
        )
    });
}

/// For an anonymous session's lookup: an error that a missing name would
/// not give becomes [`VfsError::Hidden`] (answered as missing, the cause
/// kept for the log), or it would tell a hidden name from a missing one:
/// EACCES (the server's own user may not search a directory on the way),
/// ENOTDIR (a hidden file used as a directory, `secret.txt/x`), ELOOP or
/// EXDEV (a symlink loop, or a link out of the root: such a link is left
/// out of listings like a dangling one). Other errors pass unchanged.
pub(crate) fn hide_revealing(e: VfsError) -> VfsError {
    match e {
        VfsError::PermissionDenied | VfsError::NotADirectory | VfsError::Escapes => {
            VfsError::Hidden(Some(Box::new(e)))
        }
        e => e,
    }
}

/// The directories a session has found world-searchable: each one
/// remembered with every directory above it (a directory is only
/// remembered after its whole chain from `/` passed), so that whether a
/// directory is covered is one hash lookup. A directory is kept as a
/// 64-bit keyed hash of its path (SipHash with this session's random
/// keys: two paths that collide, letting one pass as the other, are a
/// 2^-64 chance per pair that a client cannot aim at), so a chain costs 8
/// bytes a directory however long its paths: at most
/// [`Searched::MAX_DIRS`] (about 36 KiB with the table's slack, enough for
/// any path the kernel resolves; the 16 paths kept before could take 64
/// KiB); when a new chain would not fit, it starts over. A session that
/// fetches files from all over a tree (a mirror's sync tool, the load
/// generator's mirror scenario: 111 directories) then stats each
/// directory once, not on most requests (an openat2, a statx and a close
/// each: the mirror's opens per file went from 2.02 to 1.27 in a 400-file
/// run of each session when the last 16 were kept in a list,
/// docs/benchmarks.md, nineteenth pass).
///
/// What a session has seen stays true for that session: a directory made
/// private (`chmod o-x`) while a session that already passed through it
/// is connected stays passable for that session until it logs in again or
/// its set starts over (new sessions see the change at once). The kernel
/// still applies the server process's own permissions on every open.
/// vsftpd checks no directory at all for `anon_world_readable_only`, only
/// files.
#[derive(Debug, Default)]
pub(crate) struct Searched {
    dirs: RefCell<std::collections::HashSet<u64, std::hash::BuildHasherDefault<Prehashed>>>,
    /// The keys of the paths' hashes.
    keys: std::collections::hash_map::RandomState,
    /// Where paths that followed a symlink really end.
    locator: RefCell<Locator>,
}

impl Searched {
    /// Most directories a session remembers: a path the kernel resolves
    /// (under PATH_MAX, 4,096 bytes) has at most 2,048 counting `/`.
    pub(crate) const MAX_DIRS: usize = 2048;

    /// The keys of the directories a normalized absolute path names, in
    /// order: `/`, each one below it on the way, and the path itself
    /// (`/a/b` -> keys of `/`, `/a`, `/a/b`; `/` -> one key), the same
    /// prefixes as [`ancestors`] and then the path. Hashed in one pass, a
    /// piece per path component, so any path's key comes from the same
    /// sequence of writes whichever path it was computed for (what
    /// `Hasher` promises gives equal hashes).
    pub(crate) fn keys(&self, path: &[u8]) -> Vec<u64> {
        // Every ancestor is a prefix of `path`: where each ends.
        let ends = ancestors(path)
            .chain(std::iter::once(path))
            .map(<[u8]>::len);
        let mut h = self.keys.build_hasher();
        let mut from = 0;
        // One key per `/` (the ancestors), and the path's own.
        let mut keys = Vec::with_capacity(path.iter().filter(|&&b| b == b'/').count() + 1);
        for end in ends {
            h.write(&path[from..end]);
            from = end;
            keys.push(h.finish());
        }
        keys
    }

    /// Whether the directory whose key is `key` is remembered, or one
    /// below it.
    pub(crate) fn covers_key(&self, key: u64) -> bool {
        self.dirs.borrow().contains(&key)
    }

    /// Whether directory `dir` (a normalized absolute virtual path) is one
    /// of the remembered directories or above one of them.
    #[cfg(test)]
    fn covers(&self, dir: &[u8]) -> bool {
        self.keys(dir).last().is_some_and(|&k| self.covers_key(k))
    }

    /// Remembers a directory whose whole chain was found searchable, by
    /// the keys of that chain from `/` down ([`Searched::keys`]); nothing
    /// for a chain longer than [`Searched::MAX_DIRS`].
    pub(crate) fn remember_keys(&self, chain: &[u64]) {
        if chain.len() > Self::MAX_DIRS {
            return; // not a path the kernel would resolve
        }
        let mut dirs = self.dirs.borrow_mut();
        let new = chain.iter().filter(|k| !dirs.contains(*k)).count();
        if dirs.len() + new > Self::MAX_DIRS {
            dirs.clear();
        }
        dirs.extend(chain);
    }

    /// Remembers directory `dir` (a normalized absolute path whose whole
    /// chain was found searchable), and so every directory above it.
    #[cfg(test)]
    fn remember(&self, dir: Vec<u8>) {
        self.remember_keys(&self.keys(&dir));
    }

    /// Forgets everything (a new login: another root, another account).
    pub(crate) fn clear(&self) {
        self.locator.take();
        self.dirs.borrow_mut().clear();
    }
}

/// A key that is a hash already ([`Searched::keys`]) is its own hash in
/// the set: no second SipHash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here (write_u64); fold anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The directories above a normalized absolute virtual path (see
/// [`path::is_normal`]), from `/` down, as prefixes of it: `/a/b/c` ->
/// `/`, `/a`, `/a/b`; none for `/` itself.
pub(crate) fn ancestors(vpath: &[u8]) -> impl Iterator<Item = &[u8]> {
    let root = (vpath.len() > 1).then_some(&vpath[..1]);
    let below = vpath
        .iter()
        .enumerate()
        .skip(1)
        .filter(|&(_, &b)| b == b'/')
        .map(move |(i, _)| &vpath[..i]);
    root.into_iter().chain(below)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: u32, perm: u32) -> Stat {
        Stat::with_mode(kind | perm)
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
    fn searched_directories_cover_their_ancestors_only() {
        let s = Searched::default();
        assert!(!s.covers(b"/"));
        s.remember(b"/pub/a".to_vec());
        for (dir, covered) in [
            (&b"/"[..], true),
            (b"/pub", true),
            (b"/pub/a", true),
            (b"/pub/a/b", false),
            (b"/pub/ab", false),
            (b"/pu", false),
            (b"/other", false),
        ] {
            assert_eq!(s.covers(dir), covered, "{}", String::from_utf8_lossy(dir));
        }
        // A mirror's worth of directories is kept...
        for i in 0..200 {
            s.remember(format!("/pub/d{:02}/d{:02}", i / 10, i % 10).into_bytes());
        }
        assert!(s.covers(b"/pub/a"), "forgotten while there was room");
        for i in 0..200 {
            let d = format!("/pub/d{:02}/d{:02}", i / 10, i % 10);
            assert!(s.covers(d.as_bytes()), "{d}");
            assert!(s.covers(&d.as_bytes()[..8]), "{d}'s parent");
            assert!(!s.covers(format!("{d}/x").as_bytes()), "{d}/x");
            assert!(!s.covers(format!("{d}x").as_bytes()), "{d}x");
        }
        // ...the deepest path the kernel resolves too, every level of it...
        let deep = "/a".repeat(2047);
        s.remember(deep.clone().into_bytes());
        for depth in [1, 2, 1000, 2047] {
            assert!(s.covers(&deep.as_bytes()[..2 * depth]), "depth {depth}");
        }
        assert!(!s.covers(format!("{deep}/a").as_bytes()));
        assert!(s.dirs.borrow().len() <= Searched::MAX_DIRS);
        let deeper = "/a".repeat(2048).into_bytes();
        s.remember(deeper.clone());
        assert!(!s.covers(&deeper), "longer than a path can be");
        assert!(s.covers(deep.as_bytes()), "forgotten for nothing");
        // ...and the memory stays bounded: when full, it starts over.
        assert!(!s.covers(b"/pub/a"), "never forgotten");
        for i in 0..3000 {
            let d = format!("/x{i}/y");
            s.remember(d.clone().into_bytes());
            assert!(s.covers(d.as_bytes()), "{d}");
            assert!(s.dirs.borrow().len() <= Searched::MAX_DIRS);
        }
        s.clear();
        assert!(!s.covers(b"/"));
    }

    #[test]
    fn a_path_keys_each_directory_as_that_directory_alone_does() {
        let s = Searched::default();
        for p in [
            &b"/"[..],
            b"/a",
            b"/a/b",
            b"/a/b/c",
            b"/\xff\xfe/\x80a/\xc3(",
            b"/a b/\n/c",
        ] {
            let keys = s.keys(p);
            let dirs: Vec<&[u8]> = ancestors(p).chain(std::iter::once(p)).collect();
            assert_eq!(keys.len(), dirs.len(), "{}", String::from_utf8_lossy(p));
            for (k, d) in keys.iter().zip(&dirs) {
                assert_eq!(Some(k), s.keys(d).last(), "{}", String::from_utf8_lossy(d));
            }
        }
        assert_ne!(s.keys(b"/a/b"), s.keys(b"/ab"));
        assert_ne!(
            s.keys(b"/a").last(),
            Searched::default().keys(b"/a").last(),
            "keys per session"
        );
    }

    #[test]
    fn ancestor_paths() {
        let of = |p: &[u8]| ancestors(p).map(<[u8]>::to_vec).collect::<Vec<_>>();
        assert_eq!(of(b"/"), Vec::<Vec<u8>>::new());
        assert_eq!(of(b"/a"), vec![b"/".to_vec()]);
        assert_eq!(
            of(b"/a/b/c"),
            vec![b"/".to_vec(), b"/a".to_vec(), b"/a/b".to_vec()]
        );
        // The same chain as walking up with `parent`, for normalized paths.
        for p in [&b"/x"[..], b"/x/y", b"/x/y/z/w", b"/\xff/a b/c"] {
            assert!(path::is_normal(p));
            let mut up = Vec::new();
            let mut q = p.to_vec();
            while q != b"/" {
                q = path::parent(&q);
                up.push(q.clone());
            }
            up.reverse();
            assert_eq!(of(p), up, "{}", String::from_utf8_lossy(p));
        }
    }
}
