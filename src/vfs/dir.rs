//! Reading directories for listings. This runs on the shard's worker
//! threads ([`crate::engine::pool`]), never on a shard thread: getdents and one fstatat
//! per entry take milliseconds on a 10,000-entry directory, and a shard
//! must keep every other session's transfers moving meanwhile.
//!
//! A listing streams: a [`Lister`] reads a directory's names once (sorted,
//! packed in one buffer), then stats and renders them a chunk at a time,
//! so ten clients listing a 20,000-entry directory cost a few MiB, not a
//! copy of every entry and of the whole text per client. `LIST -R` walks
//! subdirectories the same way, one directory open at a time.
//!
//! Symlinks are shown alike by every listing command: a link whose target
//! resolves inside the session's root (with RESOLVE_IN_ROOT, as every
//! client path) is listed — by LIST as a link with its target text, by
//! MLSD as what it points to — and one that dangles is left out of all of
//! them: a client could not use it anyway.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, RawDir, ResolveFlags, SeekFrom};

use super::glob::Pattern;
use super::listing::{self, Entry, EntryKind, ListOptions};
use super::{names, path, resolve, Stat};

/// How symlinks appear in a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Links {
    /// As links, `ls -l` style, with their target text (LIST, STAT).
    Show,
    /// As what they point to (MLSD).
    Follow,
}

/// Entries stat'ed and rendered per [`Lister::next_chunk`] call.
pub(crate) const CHUNK: usize = 512;

/// The names of one directory (without `.` and `..`), sorted, packed in
/// one buffer: each name is followed by a NUL.
struct Names {
    buf: Vec<u8>,
    starts: Vec<u32>,
}

impl Names {
    /// Reads the names of `dir`, keeping those `keep` accepts.
    fn read(dir: &OwnedFd, keep: &dyn Fn(&[u8]) -> bool) -> io::Result<Names> {
        // getdents reads from the fd's position: start from the beginning,
        // so a reused directory fd still lists everything.
        rustix::fs::seek(dir, SeekFrom::Start(0))?;
        // glibc's readdir buffer size; the longest entry (a 255-byte name)
        // takes under 300 bytes of it.
        let mut dents = Vec::with_capacity(32 * 1024);
        let mut entries = RawDir::new(dir, dents.spare_capacity_mut());
        let mut names = Names {
            buf: Vec::new(),
            starts: Vec::new(),
        };
        while let Some(entry) = entries.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || !keep(name) {
                continue;
            }
            names.starts.push(names.buf.len() as u32);
            names.buf.extend_from_slice(name);
            names.buf.push(0);
        }
        let buf = &names.buf;
        names
            .starts
            .sort_unstable_by(|&a, &b| name_at(buf, a).cmp(name_at(buf, b)));
        names.buf.shrink_to_fit();
        names.starts.shrink_to_fit();
        Ok(names)
    }

    fn get(&self, i: usize) -> &CStr {
        let start = self.starts[i] as usize;
        let end = start + name_at(&self.buf, self.starts[i]).len();
        CStr::from_bytes_with_nul(&self.buf[start..=end]).expect("NUL-terminated")
    }
}

fn name_at(buf: &[u8], start: u32) -> &[u8] {
    let rest = &buf[start as usize..];
    &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
}

/// One directory being listed.
struct Open {
    dir: OwnedFd,
    vpath: Vec<u8>,
    /// The directory as the client typed it (the `path:` header of `-R`).
    typed: Vec<u8>,
    depth: usize,
    names: Names,
    next: usize,
}

/// What to list and how; see [`Lister::new`].
pub(crate) struct ListSpec {
    pub links: Links,
    /// Render options (format, `-a`, NLST prefix, facts, permissions).
    pub opts: ListOptions,
    /// Only names matching this (a wildcard listing).
    pub pattern: Option<Pattern>,
    /// Only directories, and symlinks that lead to one: a pattern typed
    /// with a trailing `/` (`LIST */`), which in the shell matches only
    /// directories (POSIX pathname resolution, XBD 4.13).
    pub dirs_only: bool,
    /// `LIST -R`: `dir:` headers, and subdirectories listed after their
    /// parent, down to `max_depth`.
    pub recursive: bool,
    /// `LIST -R`: descend this many levels below the listed directory
    /// (`--list-max-depth`; 0 lists the directory alone, and says so when
    /// it has subdirectories).
    pub max_depth: usize,
    /// `--list-max-entries`.
    pub max_entries: usize,
}

/// A directory listing produced a chunk at a time, on the blocking pool.
pub(crate) struct Lister {
    root: Arc<OwnedFd>,
    spec: ListSpec,
    current: Option<Open>,
    /// Subdirectories still to list (`-R`), last first.
    todo: Vec<(Vec<u8>, Vec<u8>, usize)>,
    entries_left: usize,
    /// Entries were left unlisted at `--list-max-entries`.
    truncated: bool,
    depth_hit: bool,
    /// `-R`: subdirectories that could not be opened or read (not those
    /// that vanished meanwhile), left out of the listing.
    unreadable: usize,
    recursive: bool,
    /// Entries rendered so far.
    listed: usize,
    /// An anonymous session's listing: where its symlinks lead is checked.
    published: Option<PublishedLinks>,
}

/// For an anonymous session's listing, whether a symlink leads somewhere
/// published: its target's real location (`/proc/self/fd`) must lie under
/// world-searchable directories only, as [`super::world::check`] demands
/// when the link is used, so a link is listed only when it can be used.
#[derive(Default)]
struct PublishedLinks {
    /// Where a link's target really is.
    locator: super::world::Locator,
    /// Directories (absolute virtual paths) found searchable or not.
    searchable: std::collections::HashMap<Vec<u8>, bool>,
}

impl PublishedLinks {
    /// Whether `target` (opened through a link) lies under world-searchable
    /// directories only. Where `/proc` cannot be read: true, as
    /// `world::check` then does.
    fn leads_to_published(&mut self, root: &OwnedFd, target: &OwnedFd) -> bool {
        use super::world::{self, Located};
        use std::os::fd::AsFd;
        let vreal = match self.locator.locate(root.as_fd(), target.as_fd()) {
            Located::At(vreal) => vreal,
            Located::Outside => return false,
            Located::Unknown => return true,
        };
        let all = world::ancestors(&vreal).all(|dir| {
            *self.searchable.entry(dir.to_vec()).or_insert_with(|| {
                open_in_root(root, dir, OFlags::PATH)
                    .ok()
                    .and_then(|fd| rustix::fs::fstat(&fd).ok())
                    .is_some_and(|st| world::searchable(&Stat::from(&st)))
            })
        });
        all
    }
}

impl Lister {
    /// Starts listing the open directory `dir` (virtual path `vpath`,
    /// typed by the client as `typed`) under the session root `root`.
    /// Reads its names; errors here come before any data connection.
    pub(crate) fn new(
        root: Arc<OwnedFd>,
        dir: OwnedFd,
        vpath: Vec<u8>,
        typed: Vec<u8>,
        spec: ListSpec,
    ) -> io::Result<Lister> {
        let recursive = spec.recursive;
        let published = spec.opts.published_only.then(PublishedLinks::default);
        let mut l = Lister {
            root,
            published,
            entries_left: spec.max_entries,
            spec,
            current: None,
            todo: Vec::new(),
            listed: 0,
            truncated: false,
            depth_hit: false,
            unreadable: 0,
            recursive,
        };
        l.current = Some(l.open_dir(dir, vpath, typed, 0)?);
        Ok(l)
    }

    fn open_dir(
        &self,
        dir: OwnedFd,
        vpath: Vec<u8>,
        typed: Vec<u8>,
        depth: usize,
    ) -> io::Result<Open> {
        let all = self.spec.opts.all;
        let pattern = self.spec.pattern.as_ref();
        let keep = |name: &[u8]| {
            // A name with CR or LF would end a listing line early; a
            // dot-file shows only with -a (see listing::render_entries).
            !name.iter().any(|&b| b == b'\r' || b == b'\n')
                && (all || name.first() != Some(&b'.'))
                && pattern.is_none_or(|p| {
                    std::str::from_utf8(&names::display(name)).is_ok_and(|n| p.matches(n))
                })
        };
        let names = Names::read(&dir, &keep)?;
        Ok(Open {
            dir,
            vpath,
            typed,
            depth,
            names,
            next: 0,
        })
    }

    /// Appends the next lines of the listing (up to [`CHUNK`] entries) to
    /// `out`; false once the listing is complete. A subdirectory of `-R`
    /// that vanished or cannot be read is skipped, as `ls -R` goes on.
    pub(crate) fn next_chunk(&mut self, out: &mut Vec<u8>) -> bool {
        if self.entries_left == 0 {
            self.truncated |= self.current.is_some() || !self.todo.is_empty();
            self.current = None;
            self.todo.clear();
            return false;
        }
        match self.current.take() {
            None => {
                let Some((vpath, typed, depth)) = self.todo.pop() else {
                    return false;
                };
                let flags = OFlags::RDONLY | OFlags::DIRECTORY;
                let open = open_in_root(&self.root, &vpath, flags)
                    .map_err(io::Error::from)
                    .and_then(|dir| self.open_dir(dir, vpath, typed, depth));
                match open {
                    Ok(open) => {
                        out.extend_from_slice(b"\r\n");
                        push_header(out, &open.typed);
                        self.current = Some(open);
                    }
                    // Gone (or no longer a directory) since its parent was
                    // read: nothing to say.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
                    // `ls -R` says "cannot open directory" and goes on; the
                    // 226 says how many (see `cut`).
                    Err(_) => self.unreadable += 1,
                }
            }
            Some(mut cur) => {
                if cur.next == 0 && cur.depth == 0 && self.recursive {
                    push_header(out, &cur.typed);
                }
                // Up to CHUNK names, and no more entries than the cap has
                // left: only the entries the client is shown count (an
                // anonymous session's unpublished ones do not), and only
                // they are descended into.
                let end = cur.names.starts.len().min(cur.next + CHUNK);
                let mut entries: Vec<Entry> = Vec::new();
                while cur.next < end && entries.len() < self.entries_left {
                    let found = entry(
                        &self.root,
                        &cur,
                        cur.names.get(cur.next),
                        self.spec.links,
                        self.spec.dirs_only,
                        self.published.as_mut(),
                    );
                    cur.next += 1;
                    if let Some(e) = found.filter(|e| !listing::hidden(e, &self.spec.opts)) {
                        entries.push(e);
                    }
                }
                self.entries_left -= entries.len();
                self.listed += entries.len();
                listing::render_entries(&entries, &self.spec.opts, out);
                if self.recursive {
                    self.queue_subdirs(&cur, &entries);
                }
                if cur.next < cur.names.starts.len() {
                    self.current = Some(cur);
                }
            }
        }
        self.current.is_some() || !self.todo.is_empty()
    }

    /// `-R`: the subdirectories among `entries` of `cur` go on the to-do
    /// stack — depth first, in name order, after the subdirectories an
    /// earlier chunk of `cur` queued — unless they are below
    /// `--list-max-depth`.
    fn queue_subdirs(&mut self, cur: &Open, entries: &[Entry]) {
        // Bottom to top, the stack holds what is left of the levels above
        // (depth <= cur.depth), then cur's subdirectories, the first on top.
        let at = self
            .todo
            .iter()
            .rposition(|(_, _, d)| *d <= cur.depth)
            .map_or(0, |i| i + 1);
        for e in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
            if cur.depth >= self.spec.max_depth {
                self.depth_hit = true;
                continue;
            }
            // An anonymous session descends only into directories it may
            // list; the others count as unreadable, as a failed open does.
            if self.spec.opts.published_only && !super::world::readable(&e.stat) {
                self.unreadable += 1;
                continue;
            }
            let mut typed = cur.typed.clone();
            if !typed.ends_with(b"/") {
                typed.push(b'/');
            }
            typed.extend_from_slice(&e.name);
            let vpath = path::join(&cur.vpath, &e.name);
            self.todo.insert(at, (vpath, typed, cur.depth + 1));
        }
    }

    /// Why the listing is not the whole tree, if it is not (said in the
    /// 226): cut at `--list-max-entries`, or not descended below
    /// `--list-max-depth`; and, for `-R`, how many subdirectories could
    /// not be read.
    pub(crate) fn cut(&self) -> Option<String> {
        let limit = if self.truncated {
            let n = self.spec.max_entries;
            let entries = if n == 1 { "entry" } else { "entries" };
            Some(format!(
                "Listing cut at {n} {entries} (--list-max-entries)."
            ))
        } else if self.depth_hit {
            let n = self.spec.max_depth;
            let levels = if n == 1 { "level" } else { "levels" };
            Some(format!(
                "Listing not descended below {n} {levels} (--list-max-depth)."
            ))
        } else {
            None
        };
        let unreadable = match self.unreadable {
            0 => None,
            1 => Some("1 directory could not be read.".to_string()),
            n => Some(format!("{n} directories could not be read.")),
        };
        match (limit, unreadable) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b),
        }
    }

    /// Entries rendered so far (`ringftp_listing_entries_total`).
    pub(crate) fn listed(&self) -> usize {
        self.listed
    }
}

fn push_header(out: &mut Vec<u8>, typed: &[u8]) {
    out.extend_from_slice(&names::display(typed));
    out.extend_from_slice(b":\r\n");
}

/// Opens a virtual path under the root, blocking (on the blocking pool),
/// with the same resolution rules as every client path.
fn open_in_root(root: &OwnedFd, vpath: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = path::relative(vpath).ok_or(rustix::io::Errno::INVAL)?;
    rustix::fs::openat2(
        root,
        &rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::from_bits_retain(resolve::RESOLVE),
    )
}

/// The listing entry for `name` in `cur`, or `None` to leave it out: it
/// vanished since getdents, or it is a symlink that does not resolve
/// inside the root, or (`published_only`: an anonymous session) one whose
/// target is not published, or lies in an unpublished directory, which is
/// then answered as missing when used (see [`super::world`]), so the link
/// is left out as a dangling one is. With `dirs_only`, anything that is
/// not a directory or a symlink to one is left out too.
fn entry(
    root: &OwnedFd,
    cur: &Open,
    name: &CStr,
    links: Links,
    dirs_only: bool,
    published: Option<&mut PublishedLinks>,
) -> Option<Entry> {
    let st = rustix::fs::statat(&cur.dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    let st = Stat::from(&st);
    let raw = name.to_bytes().to_vec();
    if !st.is_symlink() {
        return (!dirs_only || st.is_dir()).then(|| st.entry(raw, None));
    }
    let target = open_in_root(root, &path::join(&cur.vpath, &raw), OFlags::PATH).ok()?;
    // What the link leads to: shown by MLSD, checked for anonymous and
    // for a directories-only pattern.
    let target = if links == Links::Follow || published.is_some() || dirs_only {
        let st = Stat::from(&rustix::fs::fstat(&target).ok()?);
        if dirs_only && !st.is_dir() {
            return None;
        }
        if let Some(p) = published {
            if !super::world::visible(&st) || !p.leads_to_published(root, &target) {
                return None;
            }
        }
        Some(st)
    } else {
        None
    };
    match (links, target) {
        (Links::Follow, Some(target)) => Some(target.entry(raw, None)),
        _ => {
            let text = rustix::fs::readlinkat(&cur.dir, name, Vec::new()).ok()?;
            Some(st.entry(raw, Some(CString::into_bytes(text))))
        }
    }
}
