//! Reading a directory into listing entries. This runs on the blocking
//! pool (`spawn_blocking`), never on a shard thread: getdents and one
//! fstatat per entry take milliseconds on a 10,000-entry directory, and a
//! shard must keep every other session's transfers moving meanwhile.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, RawDir, ResolveFlags, SeekFrom};

use super::listing::Entry;
use super::{path, resolve, Stat};

/// How symlinks appear in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// As links, `ls -l` style, with their target text (LIST, STAT).
    Show,
    /// As what they point to (MLSD). A link that dangles or leads outside
    /// the root is left out: its target is none of the client's business.
    Follow,
}

/// The entries of the open directory `dir` (virtual path `dir_vpath`),
/// sorted by name. `root` resolves symlink targets for [`Links::Follow`].
pub fn read_entries(
    root: Arc<OwnedFd>,
    dir: OwnedFd,
    dir_vpath: &[u8],
    links: Links,
) -> io::Result<Vec<Entry>> {
    let mut names = names(&dir)?;
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for cname in names {
        let name = cname.as_bytes().to_vec();
        // An entry can vanish between getdents and fstatat: skip it.
        let Ok(st) = rustix::fs::statat(&dir, &cname, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let st = Stat::from(&st);
        if !st.is_symlink() {
            out.push(st.entry(name, None));
            continue;
        }
        match links {
            Links::Show => {
                let target = rustix::fs::readlinkat(&dir, &cname, Vec::new())
                    .ok()
                    .map(CString::into_bytes);
                out.push(st.entry(name, target));
            }
            Links::Follow => {
                let vpath = path::join(dir_vpath, &name);
                let Some(rel) = path::relative(&vpath) else {
                    continue;
                };
                let Ok(fd) = rustix::fs::openat2(
                    &*root,
                    &rel,
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::from_bits_retain(resolve::RESOLVE),
                ) else {
                    continue;
                };
                let Ok(meta) = std::fs::File::from(fd).metadata() else {
                    continue;
                };
                out.push(Stat::from(&meta).entry(name, None));
            }
        }
    }
    Ok(out)
}

/// The names in the open directory `dir` (without `.` and `..`), in the
/// order the filesystem returns them.
fn names(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // getdents reads from the fd's position: start from the beginning, so
    // a reused directory fd still lists everything.
    rustix::fs::seek(dir, SeekFrom::Start(0))?;
    // glibc's readdir buffer size; the longest entry (a 255-byte name)
    // takes under 300 bytes of it.
    let mut buf = Vec::with_capacity(32 * 1024);
    let mut entries = RawDir::new(dir, buf.spare_capacity_mut());
    let mut names = Vec::new();
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}
