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

/// How many fds below `below` (at most 65,536) are open now: one
/// fcntl(F_GETFD) per fd number, which answers EBADF for a number that is
/// not open. For start-up, when the fds in use are the lowest numbers; a
/// few milliseconds at most.
pub fn count_open_fds(below: u64) -> u64 {
    let end = below.min(1 << 16) as RawFd;
    (0..end)
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
