//! `cachestat(2)` (Linux 6.5), which rustix does not wrap: whether a
//! download's next chunk is in the page cache, so RETR may `sendfile(2)` it
//! on the shard thread without blocking on the disk.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// What the page cache holds of a range of a file, as far as the kernel
/// will say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residency {
    /// Every page is in the page cache right now.
    Resident,
    /// Some page is not.
    Missing,
    /// The kernel does not say: no cachestat (ENOSYS), a file type it does
    /// not support, or — the usual case for a server that dropped root —
    /// a file this process may not write and does not own: cachestat
    /// answers EPERM there, as mincore(2) hides such pages, so that page
    /// cache contents do not leak to those who could only read the file.
    Unknown,
}

/// What the page cache holds of `file`'s bytes `[offset, offset + len)`
/// right now. A caller that gets anything but [`Residency::Resident`]
/// must not read the range in a way that may block on the disk (it reads
/// through io_uring, or with RWF_NOWAIT). An empty range is resident.
pub fn page_cache_residency(file: BorrowedFd<'_>, offset: u64, len: u64) -> Residency {
    if len == 0 {
        return Residency::Resident;
    }
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return Residency::Unknown;
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
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return Residency::Unknown;
    }
    if stat.nr_cache >= pages {
        Residency::Resident
    } else {
        Residency::Missing
    }
}
