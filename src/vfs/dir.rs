//! Reading a directory into listing entries. This runs on the blocking
//! pool (`spawn_blocking`), never on a shard thread: getdents and one
//! fstatat per entry take milliseconds on a 10,000-entry directory, and a
//! shard must keep every other session's transfers moving meanwhile.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use super::listing::Entry;
use super::{path, resolve, Stat};
use crate::engine::sys;

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
    let mut names = sys::read_dir_names(&dir)?;
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let Ok(cname) = CString::new(name.clone()) else {
            continue;
        };
        // An entry can vanish between getdents and fstatat: skip it.
        let Ok(st) = sys::fstatat(&dir, &cname, true) else {
            continue;
        };
        let st = Stat::from(&st);
        if !st.is_symlink() {
            out.push(st.entry(name, None));
            continue;
        }
        match links {
            Links::Show => {
                let target = sys::readlinkat(&dir, &cname).ok();
                out.push(st.entry(name, target));
            }
            Links::Follow => {
                let vpath = path::join(dir_vpath, &name);
                let Some(rel) = path::relative(&vpath) else {
                    continue;
                };
                let Ok(fd) =
                    sys::openat2_blocking(root.as_raw_fd(), &rel, libc::O_PATH, resolve::RESOLVE)
                else {
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
