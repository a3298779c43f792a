//! Passive port blocks for the servers under test, leased machine-wide so
//! that no two servers ever share a port.
//!
//! A server's `--pasv-ports` is a block of consecutive ports from
//! 61000-65535: above Linux's default ephemeral range (32768-60999), so a
//! client's ephemeral port never lands in a server's passive range, and
//! away from ringftp's own default (50000-50999). The control port needs
//! none of this: the server listens on port 0 and prints the port the
//! kernel chose.
//!
//! Blocks are handed out by a registry that every test process on the
//! machine shares, a directory (`/tmp/ringftp-test-ports`) holding one
//! file per block in use, named `LO-HI`, on which the holder keeps an
//! flock(2) for as long as its server runs. To lease a block, a test takes
//! the registry's own lock, drops the files whose holder has died (their
//! flock went with the process), skips the live blocks and every port
//! something already has bound (a probe bind: servers started some other
//! way, other software), and writes its own file. Hence blocks are
//! disjoint between the tests of one binary (parallel threads), between
//! test binaries, and between checkouts testing at the same time, with no
//! table of binaries to keep up to date. A next-fit cursor in the registry
//! spreads the blocks over the range, so a block just given back is not
//! handed out again at once.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The first port the shared registry hands out.
pub const FIRST_PORT: u16 = 61_000;
/// The last port the shared registry hands out.
pub const LAST_PORT: u16 = 65_535;

/// Where the shared registry lives: a fixed path, not `$TMPDIR`, so that
/// processes with different temporary directories still see each other.
const SHARED_DIR: &str = "/tmp/ringftp-test-ports";

/// A block of ports `lo..=hi` leased from a [`Registry`]; given back when
/// dropped (or when the process dies).
#[derive(Debug)]
pub struct PortBlock {
    pub lo: u16,
    pub hi: u16,
    /// The lease file; its flock is the lease.
    file: Option<File>,
    path: PathBuf,
    lock: PathBuf,
}

impl PortBlock {
    /// `LO-HI`, as `--pasv-ports` takes it.
    pub fn arg(&self) -> String {
        format!("{}-{}", self.lo, self.hi)
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        // Under the registry's lock, so no allocator sees the file gone
        // half-way; a failure leaves a file that the next allocator finds
        // unlocked and removes.
        let guard = lock_exclusive(&self.lock);
        let _ = std::fs::remove_file(&self.path);
        drop(self.file.take());
        drop(guard);
    }
}

/// A lease registry: a directory of lease files and the range it hands
/// out.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    first: u16,
    last: u16,
}

/// A block of `n` passive ports no other server on this machine uses while
/// the block lives.
pub fn port_block(n: u16) -> PortBlock {
    Registry::shared().lease(n)
}

impl Registry {
    /// The machine-wide registry of ports 61000-65535.
    pub fn shared() -> Registry {
        Registry::new(Path::new(SHARED_DIR), FIRST_PORT, LAST_PORT)
    }

    /// A registry in `dir` handing out `first..=last` (the harness's own
    /// tests use a private one).
    pub fn new(dir: &Path, first: u16, last: u16) -> Registry {
        assert!(first <= last, "empty port range {first}-{last}");
        Registry {
            dir: dir.to_path_buf(),
            first,
            last,
        }
    }

    /// Leases `n` consecutive ports that no live lease holds and nothing
    /// has bound; panics when the range has no such block.
    #[track_caller]
    pub fn lease(&self, n: u16) -> PortBlock {
        assert!(n > 0, "a block of no ports");
        self.create_dir();
        let lock = self.dir.join(".lock");
        let _guard = lock_exclusive(&lock);
        let live = self.live_leases();
        let cursor = self.dir.join(".cursor");
        let start = std::fs::read_to_string(&cursor)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&c| c >= self.first as u32 && c <= self.last as u32)
            .unwrap_or(self.first as u32);
        let (lo, hi) = self.find(n as u32, start, &live).unwrap_or_else(|| {
            panic!(
                "no {n} free consecutive ports in {}-{} (leases held: {live:?}, see {})",
                self.first,
                self.last,
                self.dir.display()
            )
        });
        let path = self.dir.join(format!("{lo}-{hi}"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot create the port lease {}: {e}", path.display()));
        assert!(
            try_lock_exclusive(&file),
            "the new port lease {} is locked by someone else",
            path.display()
        );
        let next = if hi >= self.last { self.first } else { hi + 1 };
        // Only a hint: a registry written by another user may refuse it.
        let _ = std::fs::write(&cursor, next.to_string());
        PortBlock {
            lo,
            hi,
            file: Some(file),
            path,
            lock,
        }
    }

    fn create_dir(&self) {
        if self.dir.is_dir() {
            return;
        }
        std::fs::create_dir_all(&self.dir).unwrap_or_else(|e| {
            panic!(
                "cannot create the port registry {}: {e}",
                self.dir.display()
            )
        });
        // Shared by every user that runs the tests (sticky, like /tmp).
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o1777));
    }

    /// The blocks whose holders are alive; removes the files of the dead.
    fn live_leases(&self) -> Vec<(u32, u32)> {
        let mut live = Vec::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((lo, hi)) = name
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            else {
                continue;
            };
            let Ok(file) = File::open(entry.path()) else {
                continue; // given back meanwhile
            };
            if try_lock_exclusive(&file) {
                // Nobody holds it: its holder died without giving it back.
                let _ = std::fs::remove_file(entry.path());
            } else {
                live.push((lo, hi));
            }
        }
        live.sort();
        live
    }

    /// Next fit: the first block of `n` ports from `start` on (wrapping
    /// around once) that overlaps no live lease and holds no bound port.
    fn find(&self, n: u32, start: u32, live: &[(u32, u32)]) -> Option<(u16, u16)> {
        let (first, last) = (self.first as u32, self.last as u32);
        let span = last - first + 1;
        let mut lo = start;
        let mut scanned = 0u32;
        while scanned <= span {
            let hi = lo + n - 1;
            if hi > last {
                scanned += last + 1 - lo;
                lo = first;
                continue;
            }
            if let Some(&(_, b)) = live.iter().find(|&&(a, b)| a <= hi && lo <= b) {
                scanned += b + 1 - lo;
                lo = b + 1;
                continue;
            }
            if let Some(p) = (lo..=hi).find(|&p| !port_free(p as u16)) {
                scanned += p + 1 - lo;
                lo = p + 1;
                continue;
            }
            return Some((lo as u16, hi as u16));
        }
        None
    }
}

/// Whether nothing has port `p` bound, over IPv4 and IPv6 (a probe bind
/// with SO_REUSEADDR, as the server's passive listeners use, so a port
/// whose last connection is in TIME_WAIT counts as free).
fn port_free(p: u16) -> bool {
    if TcpListener::bind((Ipv4Addr::UNSPECIFIED, p)).is_err() {
        return false;
    }
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, p)) {
        Ok(_) => true,
        // No IPv6 on this machine: the IPv4 probe is all there is.
        Err(e) => e.kind() != ErrorKind::AddrInUse,
    }
}

/// Takes an exclusive flock on `path` (created if missing), waiting for
/// it; released when the returned file is dropped.
fn lock_exclusive(path: &Path) -> File {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        // flock needs no write access: another user's lock file will do.
        .or_else(|_| File::open(path))
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    // SAFETY: flock on a valid fd owned by `file`.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    file
}

/// Tries to take an exclusive flock on `file` without waiting.
fn try_lock_exclusive(file: &File) -> bool {
    // SAFETY: flock on a valid fd owned by `file`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}
