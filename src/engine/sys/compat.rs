//! Entry points kept, with their old signatures, for callers outside the
//! engine (the session driver, the accept loop, the load generator, the
//! users file, the property tests). Each is a `rustix` call or a
//! re-export; a caller that holds the fd as `AsFd` can make the `rustix`
//! call itself and drop its use of these.
//!
//! The fd-number (`RawFd`) functions borrow the number for the duration of
//! the call: the caller must hold that fd open until they return, as every
//! caller does (it owns the socket or directory it passes).

use std::ffi::CString;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::net::RecvFlags;
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Clock ticks a second (`sysconf(_SC_CLK_TCK)`, USER_HZ, from the
/// auxiliary vector): the unit of the CPU times in /proc/PID/stat, which
/// the load generator reads to report the server's CPU use.
pub use rustix::param::clock_ticks_per_second;

/// Borrows fd number `fd` for one call.
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: every caller of this module's RawFd functions holds `fd` open
    // for the duration of the call (see the module doc), and the borrow
    // never leaves the call it was made for.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// The fd numbers [`count_open_fds`] looks at, at most: 0 to 65,535.
pub const COUNTED_FDS: u64 = 1 << 16;

/// How many fds below `below` (at most [`COUNTED_FDS`]) are open now: one
/// fcntl(F_GETFD) per fd number, which answers EBADF for a number that is
/// not open (16-28 ms over 20,000 numbers on the 2-CPU test machine). Not
/// one poll(2) over the numbers, which would take half a millisecond: poll
/// reports an O_PATH fd POLLNVAL, as if it were not open, and an inherited
/// O_PATH fd counts against the limit like any other. For start-up, when
/// the fds in use are the lowest numbers.
pub fn count_open_fds(below: u64) -> u64 {
    count_open_in(0, below.min(COUNTED_FDS) as RawFd)
}

/// How many of the fd numbers `from..end` are open (see
/// [`count_open_fds`]).
fn count_open_in(from: RawFd, end: RawFd) -> u64 {
    (from..end)
        .filter(|&fd| {
            // SAFETY: F_GETFD takes no pointer and changes nothing; a
            // number that is not open only answers EBADF.
            unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
        })
        .count() as u64
}

/// `recv(2)` with MSG_DONTWAIT into `buf`: never blocks (WouldBlock when
/// nothing is there). Returns the bytes received; 0 means end of stream.
/// Used after `poll_readable`, into a shard-wide scratch buffer.
pub fn recv_now(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let (n, _) = rustix::net::recv(borrow(fd), buf, RecvFlags::DONTWAIT)?;
    Ok(n)
}

/// What a MSG_PEEK look at a socket's receive side finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Bytes are waiting.
    Data,
    /// Nothing yet.
    Empty,
    /// The peer closed its side (end of stream) or reset the connection.
    Closed,
}

/// Looks at socket `fd`'s receive side without consuming anything and
/// without blocking.
pub fn peek(fd: RawFd) -> Peek {
    let mut b = [0u8; 1];
    match rustix::net::recv(borrow(fd), &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((0, _)) => Peek::Closed,
        Ok(_) => Peek::Data,
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Peek::Empty,
        Err(_) => Peek::Closed,
    }
}

/// The blocking `openat2(2)` (no mode: `flags` must not create), for code
/// that runs off the shard thread: `flags` are `O_*` flags (O_CLOEXEC is
/// always added), `resolve` `RESOLVE_*` flags.
pub fn openat2_blocking(
    dir: RawFd,
    path: &CString,
    flags: i32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        borrow(dir),
        path.as_c_str(),
        OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::from_bits_retain(resolve),
    )?)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (a server holding
/// thousands of sessions needs it). Returns the new soft limit
/// (`u64::MAX`: unlimited).
pub fn raise_fd_limit() -> io::Result<u64> {
    let lim = getrlimit(Resource::Nofile);
    // None is RLIM_INFINITY, above every number.
    let soft = lim.current.unwrap_or(u64::MAX);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if soft < hard {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: lim.maximum,
                maximum: lim.maximum,
            },
        )?;
        return Ok(hard);
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd};

    /// Counts exactly the open numbers of a range: 40 fds duplicated to
    /// the top of the fd limit (above what the other tests running
    /// beside this one use), half of them O_PATH (which poll(2) would take
    /// for closed ones), then closed again.
    #[test]
    fn counts_the_open_numbers_of_a_range() {
        let limit = getrlimit(Resource::Nofile)
            .current
            .unwrap_or(COUNTED_FDS)
            .min(COUNTED_FDS) as RawFd;
        let from = limit - 100;
        let plain: OwnedFd = std::fs::File::open("/").unwrap().into();
        let path = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let held: Vec<OwnedFd> = (0..40)
            .map(|i| {
                let base = if i % 2 == 0 { &plain } else { &path };
                // SAFETY: F_DUPFD duplicates an fd this test holds open,
                // to the lowest free number at or above its argument.
                let fd = unsafe { libc::fcntl(base.as_raw_fd(), libc::F_DUPFD, from + 2 * i) };
                assert!(fd >= from, "{}", io::Error::last_os_error());
                // SAFETY: `fd` was just made and nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
            .collect();
        assert_eq!(count_open_in(from, limit), 40);
        assert_eq!(count_open_in(from, from + 11), 6);
        drop(held);
        assert_eq!(count_open_in(from, limit), 0);
        assert!(count_open_fds(limit as u64) >= 3);
    }
}
