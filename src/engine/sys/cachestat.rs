//! `cachestat(2)` (Linux 6.5), which rustix does not wrap: whether a
//! download's next chunk is in the page cache, so RETR may `sendfile(2)` it
//! on the shard thread without blocking on the disk.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct Range {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`; all counts are in pages.
#[repr(C)]
#[derive(Default)]
struct CacheStat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// cachestat(2) is 451 on every architecture Linux numbers alike (all but
/// alpha); the libc crate does not name it for x86_64 yet.
const SYS_CACHESTAT: libc::c_long = 451;

/// Set once the kernel answered ENOSYS: it is not asked again.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Which measure tells whether a file's bytes are in the page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// `cachestat(2)`: exact, page by page.
    Cachestat,
    /// One-byte `preadv2(RWF_NOWAIT)` reads (see [`page_cache_holds`]).
    Probes,
    /// None needed: the file lives on a filesystem that keeps its bytes in
    /// memory (tmpfs, ramfs), which the probes found cannot answer
    /// RWF_NOWAIT (EOPNOTSUPP on Linux 6.18's tmpfs). A sendfile from it
    /// waits for no disk (for swap at most, as any memory may).
    Memory,
    /// None answers: RWF_NOWAIT is not supported and the filesystem is not
    /// memory (FUSE, some network filesystems). Every chunk goes through
    /// the ring, and no probe is made again for this file.
    Unknown,
}

/// Who reads the files: the ids the kernel checks permissions against.
struct Reader {
    euid: u32,
    /// The effective gid and the supplementary groups.
    groups: Vec<u32>,
}

thread_local! {
    /// This thread's ids. Privileges are dropped before any thread starts
    /// (`privileges::drop_to`), so they never change after.
    static READER: Reader = Reader {
        euid: rustix::process::geteuid().as_raw(),
        groups: std::iter::once(rustix::process::getegid())
            .chain(rustix::process::getgroups().unwrap_or_default())
            .map(|g| g.as_raw())
            .collect(),
    };
}

impl Residency {
    /// The measure for a file owned by `uid`:`gid` with permission bits
    /// `mode`, as this process reads it. Linux answers cachestat only for
    /// a file the caller owns, may write, or holds CAP_FOWNER over
    /// (`can_do_cachestat`, mm/filemap.c); for anything else it is EPERM,
    /// the usual case once the server has dropped root to serve files
    /// owned by someone else (the refused call was 0.6 % of the server's
    /// CPU in the mirror): those go to the probes without asking. "May
    /// write" is read from the mode bits as the kernel applies them (the
    /// group's if the file's group is one of ours, else the others'); an
    /// ACL can make that guess wrong, which costs one EPERM, after which
    /// the probes answer anyway.
    pub fn for_file(uid: u32, gid: u32, mode: u32) -> Residency {
        READER.with(|r| Residency::for_reader(r, uid, gid, mode))
    }

    /// [`Residency::for_file`] for `reader`.
    fn for_reader(reader: &Reader, uid: u32, gid: u32, mode: u32) -> Residency {
        let write = if reader.groups.contains(&gid) {
            0o020
        } else {
            0o002
        };
        if reader.euid == 0 || reader.euid == uid || mode & write != 0 {
            Residency::Cachestat
        } else {
            Residency::Probes
        }
    }
}

/// Whether every page of `file`'s bytes `[offset, offset + len)` is in the
/// page cache right now. False where the kernel lacks cachestat (then
/// asked no more) or the file type does not support it: the caller then
/// reads through io_uring, which never blocks the thread. An empty range
/// is held.
///
/// `how` says which measure to use ([`Residency::for_file`]); where
/// cachestat answers EPERM all the same (Linux restricts it as it does
/// mincore), the probes decide: `probe_nowait`, RWF_NOWAIT reads of a few
/// bytes of the range. Where the file's filesystem does not support
/// RWF_NOWAIT, `how` becomes [`Residency::Memory`] (tmpfs, ramfs: held)
/// or [`Residency::Unknown`] (not held), so one transfer asks once.
pub fn page_cache_holds(file: BorrowedFd<'_>, offset: u64, len: u64, how: &mut Residency) -> bool {
    if len == 0 {
        return true;
    }
    match how {
        Residency::Memory => return true,
        Residency::Unknown => return false,
        Residency::Probes => return probes_or_learn(file, offset, len, how),
        Residency::Cachestat => {}
    }
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return false;
    }
    // Read from the auxiliary vector once and cached by rustix: this runs
    // for every chunk of every download.
    let page = rustix::param::page_size() as u64;
    let first = offset / page;
    let pages = (offset + len - 1) / page - first + 1;
    let range = Range {
        off: first * page,
        len: pages * page,
    };
    let mut stat = CacheStat::default();
    // SAFETY: cachestat(fd, const struct cachestat_range *, struct
    // cachestat *, flags 0): both structs match the kernel's layout (u64
    // fields, repr(C)) and live across the call; `stat` is exclusively
    // ours, and `file` is a borrowed, open fd.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut CacheStat,
            0u32,
        )
    };
    if r < 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::EPERM) => probes_or_learn(file, offset, len, how),
            Some(libc::ENOSYS) => {
                UNSUPPORTED.store(true, Ordering::Relaxed);
                false
            }
            _ => false,
        };
    }
    stat.nr_cache >= pages
}

/// Reads `file`'s bytes from `offset` into `buf` without waiting for the
/// disk: a `preadv2(RWF_NOWAIT)` read, which copies what the page cache
/// holds from `offset` on and fails with EAGAIN when the first page is
/// not there (it starts the readahead, as a probe does). Returns the bytes
/// read (fewer than `buf.len()` at the end of the file or where a later
/// page is not cached; 0 at or past the end), or `None` when the bytes
/// cannot be had without waiting: not cached, or a file whose filesystem
/// cannot answer and is not memory. `how` learns as in
/// [`page_cache_holds`] (tmpfs: [`Residency::Memory`], read plainly).
/// Other read errors are returned.
pub fn read_cached(
    file: BorrowedFd<'_>,
    buf: &mut [u8],
    offset: u64,
    how: &mut Residency,
) -> io::Result<Option<usize>> {
    let mut bufs = [io::IoSliceMut::new(buf)];
    loop {
        let flags = match how {
            Residency::Memory => rustix::io::ReadWriteFlags::empty(),
            Residency::Unknown => return Ok(None),
            Residency::Probes | Residency::Cachestat => rustix::io::ReadWriteFlags::NOWAIT,
        };
        match rustix::io::preadv2(file, &mut bufs, offset, flags) {
            Ok(n) => return Ok(Some(n)),
            Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP) if flags.contains(rustix::io::ReadWriteFlags::NOWAIT) => {
                *how = unanswered(file);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// [`probe_nowait`]; where the filesystem does not support RWF_NOWAIT,
/// sets `how` to what it is instead ([`Residency::Memory`] or
/// [`Residency::Unknown`]) and answers for that.
fn probes_or_learn(file: BorrowedFd<'_>, offset: u64, len: u64, how: &mut Residency) -> bool {
    match probe_nowait(file, offset, len) {
        Some(held) => held,
        None => {
            *how = unanswered(file);
            *how == Residency::Memory
        }
    }
}

/// What to use for `file`, whose filesystem does not answer RWF_NOWAIT:
/// [`Residency::Memory`] on tmpfs or ramfs, else [`Residency::Unknown`].
fn unanswered(file: BorrowedFd<'_>) -> Residency {
    if in_memory(file) {
        Residency::Memory
    } else {
        Residency::Unknown
    }
}

/// Whether `file` lives on tmpfs or ramfs (fstatfs f_type), whose pages
/// are memory: never read from a disk.
fn in_memory(file: BorrowedFd<'_>) -> bool {
    super::fs_type(file).is_some_and(|t| t == super::TMPFS_MAGIC || t == super::RAMFS_MAGIC)
}

/// Whether `file`'s bytes `[offset, offset + len)` look cached, from
/// one-byte `preadv2(RWF_NOWAIT)` reads (which fail with EAGAIN rather
/// than wait for the disk): of the range's first and last bytes, and of
/// two points between when the range is longer than [`ONE_READAHEAD`].
/// A few tiny reads instead of a copy of the range. A page evicted between
/// the probes is missed, and the sendfile that follows then waits for that
/// one read; readahead and the LRU make such holes rare in a file whose
/// probed pages are all cached. None where the kernel does not support
/// RWF_NOWAIT on this file (EOPNOTSUPP).
fn probe_nowait(file: BorrowedFd<'_>, offset: u64, len: u64) -> Option<bool> {
    let last = offset + len.saturating_sub(1);
    let between = [offset + len / 3, offset + 2 * (len / 3)];
    let between = if len > ONE_READAHEAD {
        &between[..]
    } else {
        &[]
    };
    let page = rustix::param::page_size() as u64;
    let mut probed = u64::MAX;
    for &at in [offset].iter().chain(between).chain([&last]) {
        if at / page == probed {
            continue;
        }
        probed = at / page;
        let mut byte = [0u8; 1];
        let mut bufs = [io::IoSliceMut::new(&mut byte)];
        match rustix::io::preadv2(file, &mut bufs, at, rustix::io::ReadWriteFlags::NOWAIT) {
            // 0: past the end (the file shrank): the send finds that out.
            Ok(_) => {}
            Err(Errno::OPNOTSUPP) => return None,
            Err(_) => return Some(false),
        }
    }
    Some(true)
}

/// The kernel's default readahead window (`read_ahead_kb` 128): a range no
/// longer than this comes into the page cache in one readahead, so its
/// first and last pages stand for the ones between. (In the full tree of
/// `loadtest/compare.sh`, 3,279 of 10,000 files are one page and 9,751 at
/// most 64 KiB: one or two probes each instead of up to four.)
const ONE_READAHEAD: u64 = 128 << 10;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_file_just_written_is_cached_by_either_measure() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 3 << 20]).unwrap();
        for (offset, len) in [(0, 1), (0, 3 << 20), (4095, 2), (1 << 20, 1 << 20)] {
            assert_eq!(
                probe_nowait(f.as_fd(), offset, len),
                Some(true),
                "{offset}+{len}"
            );
            assert!(
                page_cache_holds(f.as_fd(), offset, len, &mut Residency::Cachestat),
                "{offset}+{len}"
            );
        }
        // Past the end: nothing to wait for; the send sees the end.
        assert_eq!(probe_nowait(f.as_fd(), 4 << 20, 10), Some(true));
    }

    #[test]
    fn cachestat_is_asked_only_where_linux_answers_it() {
        let (nobody, nogroup, staff) = (65534, 65534, 50);
        let root = Reader {
            euid: 0,
            groups: vec![0],
        };
        let server = Reader {
            euid: nobody,
            groups: vec![nogroup, staff],
        };
        let ask = |r: &Reader, uid, gid, mode| Residency::for_reader(r, uid, gid, mode);
        use Residency::{Cachestat, Probes};
        // Root, the owner, and a reader that may write it: cachestat.
        assert_eq!(ask(&root, 1000, 1000, 0o600), Cachestat);
        assert_eq!(ask(&server, nobody, 0, 0o400), Cachestat);
        assert_eq!(ask(&server, 0, 0, 0o666), Cachestat);
        assert_eq!(ask(&server, 0, staff, 0o664), Cachestat);
        // Someone else's file it may only read: EPERM, so the probes.
        assert_eq!(ask(&server, 0, 0, 0o644), Probes);
        assert_eq!(ask(&server, 1000, 1000, 0o755), Probes);
        // Group-writable for a group the server is not in (umask 002).
        assert_eq!(ask(&server, 1000, 1000, 0o664), Probes);
        // In the file's group, the group's bits apply, not the others'.
        assert_eq!(ask(&server, 1000, staff, 0o646), Probes);
    }

    #[test]
    fn pages_out_of_the_cache_are_seen_by_either_measure() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 3 << 20]).unwrap();
        f.sync_all().unwrap();
        let evict = |f: &std::fs::File| {
            rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        };
        evict(&f);
        if page_cache_holds(f.as_fd(), 0, 1, &mut Residency::Cachestat) {
            // tmpfs keeps its pages: nothing to test here.
            eprintln!("the temporary directory's filesystem does not evict; skipped");
            return;
        }
        // cachestat first: a probe that fails has started the readahead
        // of what it missed (RWF_NOWAIT waits for no I/O, but starts it).
        for (offset, len) in [(0, 1), (0, 64 << 10), (1 << 20, 1 << 20)] {
            evict(&f);
            assert!(
                !page_cache_holds(f.as_fd(), offset, len, &mut Residency::Cachestat),
                "{offset}+{len}"
            );
            assert_eq!(
                probe_nowait(f.as_fd(), offset, len),
                Some(false),
                "{offset}+{len}"
            );
        }
        evict(&f);
        // A read of the first byte brings in its readahead window, not
        // the end of the file: the probes see the missing last page.
        let mut b = [0u8; 1];
        rustix::io::pread(&f, &mut b, 0).unwrap();
        assert_eq!(probe_nowait(f.as_fd(), 0, 1), Some(true));
        assert!(!page_cache_holds(
            f.as_fd(),
            0,
            3 << 20,
            &mut Residency::Cachestat
        ));
        assert_eq!(probe_nowait(f.as_fd(), 0, 3 << 20), Some(false));
    }

    #[test]
    fn a_cached_read_copies_what_the_cache_holds_and_never_waits() {
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        let mut how = Residency::Probes;
        let mut buf = vec![0u8; 5000];
        for offset in [0u64, 4095, (3 << 20) - 5000] {
            let n = read_cached(f.as_fd(), &mut buf, offset, &mut how).unwrap();
            assert_eq!(n, Some(5000), "at {offset}");
            assert_eq!(buf[..], data[offset as usize..][..5000], "at {offset}");
        }
        // At the end: fewer bytes; past it: none.
        let n = read_cached(f.as_fd(), &mut buf, (3 << 20) - 10, &mut how).unwrap();
        assert_eq!(n, Some(10));
        assert_eq!(
            read_cached(f.as_fd(), &mut buf, 4 << 20, &mut how).unwrap(),
            Some(0)
        );

        f.sync_all().unwrap();
        // The range's first 64 KiB cached, the rest not: what is there.
        let rest = std::num::NonZeroU64::new(1 << 20);
        rustix::fs::fadvise(
            &f,
            (2 << 20) + (64 << 10),
            rest,
            rustix::fs::Advice::DontNeed,
        )
        .unwrap();
        if page_cache_holds(f.as_fd(), (3 << 20) - 1, 1, &mut Residency::Cachestat) {
            eprintln!("the temporary directory's filesystem does not evict; skipped");
            return;
        }
        let mut big = vec![0u8; 1 << 20];
        // (At least the 64 KiB: a large folio astride the cut stays whole.)
        let n = read_cached(f.as_fd(), &mut big, 2 << 20, &mut how)
            .unwrap()
            .expect("the first pages are cached");
        assert!((64 << 10..1 << 20).contains(&n), "read {n} bytes");
        assert_eq!(big[..n], data[2 << 20..][..n]);
        // Out of the cache: nothing read (and no wait).
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        assert_eq!(
            read_cached(f.as_fd(), &mut buf, 1 << 20, &mut how).unwrap(),
            None
        );
        assert_eq!(how, Residency::Probes);
    }

    #[test]
    fn a_memory_filesystem_is_learned_where_the_probes_cannot_answer() {
        // tmpfs answers RWF_NOWAIT with EOPNOTSUPP on Linux 6.18; its pages
        // are memory, so the file is held. Where a kernel's tmpfs does
        // answer, the probes do and nothing is learned.
        let mut f = tempfile::tempfile_in("/dev/shm").expect("/dev/shm is a tmpfs");
        assert!(in_memory(f.as_fd()), "/dev/shm is not tmpfs");
        f.write_all(&vec![7u8; 256 << 10]).unwrap();
        let mut how = Residency::Probes;
        assert!(page_cache_holds(f.as_fd(), 0, 256 << 10, &mut how));
        match probe_nowait(f.as_fd(), 0, 1) {
            None => assert_eq!(how, Residency::Memory),
            Some(_) => assert_eq!(how, Residency::Probes),
        }
        assert!(page_cache_holds(f.as_fd(), 4096, 1, &mut how));
        // A cached read learns the same, and reads.
        let mut how = Residency::Probes;
        let mut buf = vec![0u8; 100];
        let n = read_cached(f.as_fd(), &mut buf, 10, &mut how).unwrap();
        assert_eq!(n, Some(100));
        assert_eq!(buf, vec![7u8; 100]);
        assert_ne!(how, Residency::Unknown);

        // /proc neither answers nor is memory: not held, and not asked
        // again.
        let status = std::fs::File::open("/proc/self/status").unwrap();
        if probe_nowait(status.as_fd(), 0, 1).is_none() {
            let mut how = Residency::Probes;
            assert!(!page_cache_holds(status.as_fd(), 0, 1, &mut how));
            assert_eq!(how, Residency::Unknown);
            assert!(!page_cache_holds(status.as_fd(), 0, 1, &mut how));
            let mut how = Residency::Probes;
            let mut buf = [0u8; 16];
            assert_eq!(
                read_cached(status.as_fd(), &mut buf, 0, &mut how).unwrap(),
                None
            );
            assert_eq!(how, Residency::Unknown);
        }
        assert!(!in_memory(status.as_fd()));
    }
}
