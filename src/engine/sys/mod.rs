//! Every `unsafe` block in ringftp lives under this module.
//!
//! These kinds of thing need it:
//! - io_uring operations tokio-uring 0.5 does not offer ([`op`]: splice,
//!   openat2, the *at file operations, connect from a pre-bound socket,
//!   poll, and sends/receives on our own buffers), one file per op;
//! - the few raw syscalls the `rustix` crate does not wrap:
//!   [`page_cache_holds`] (`cachestat(2)`), [`tcp_progress`] (`TCP_INFO`)
//!   and [`cpu_time_us`] (`getrusage(2)`), and kernel TLS ([`ktls`]:
//!   `setsockopt` with `<linux/tls.h>` structures, `sendmsg` with a
//!   record-type control message);
//! - [`Refuser`]: a small io_uring of a shard's own whose ops point into
//!   buffers it keeps, to answer clients 421 when the process has no fd
//!   left;
//! - [`ReadReadiness`]: registering a socket with tokio's reactor, which
//!   tokio asks callers to vouch for (the fd stays open while registered);
//! - [`compat`]: a few fd-number (`RawFd`) entry points kept for their
//!   callers, each one `rustix` call behind a borrowed fd.
//!
//! Every other syscall is a safe `rustix` call made where it is needed
//! (pipes, splice and sendfile on the shard thread, statat, readlinkat,
//! directory reading, affinity, rlimits). Everything exported here is a
//! safe function; callers never write `unsafe` themselves (the crate root
//! denies it).
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;

mod bind;
mod cachestat;
pub mod compat;
mod inq;
pub mod ktls;
pub mod op;
mod pipe;
mod readiness;
mod refusal;
mod rusage;
mod tcp_info;

pub use bind::bind_address_no_port;
pub use cachestat::{page_cache_holds, read_cached, Residency};
pub use compat::{
    clock_ticks_per_second, count_open_fds, openat2_blocking, peek, raise_fd_limit, recv_now, Peek,
    COUNTED_FDS,
};
pub use inq::{enable_inq, recv_noting_inq};
pub use op::{
    accept, connect, discard_now, discard_once, mkdirat, openat2, poll_readable, poll_writable,
    read_at, read_vectored_at, recv, renameat, send, send_all, send_now, send_range, splice,
    splice_to_offset, unlinkat, write_append, write_at, write_vectored_at,
};
pub use pipe::Pipe;
pub use readiness::{has_waiting_connection, ReadReadiness};
pub use refusal::Refuser;
pub use rusage::{cpu_time_us, thread_cpu_time_us};
pub use tcp_info::tcp_progress;

/// Anything that owns an open fd (`OwnedFd`, `File`, `socket2::Socket`, a
/// [`Pipe`] end): what an io_uring op holds on to, and what a `rustix` call
/// borrows. Implemented for every type that is both `AsFd` and `AsRawFd`.
pub trait OpFd: AsFd + AsRawFd {}

impl<T: AsFd + AsRawFd + ?Sized> OpFd for T {}

/// A shared handle on an fd that an in-flight io_uring op may still use.
///
/// Each op keeps a clone until its completion arrives, so the fd stays open
/// (and its number unused) for as long as the kernel may touch it, even
/// when the future that submitted the op was dropped.
pub type FdRef = Rc<dyn OpFd>;

/// `statfs(2)` `f_type` of TMPFS_MAGIC (`<linux/magic.h>`).
pub const TMPFS_MAGIC: u32 = 0x0102_1994;
/// `statfs(2)` `f_type` of RAMFS_MAGIC (`<linux/magic.h>`).
pub const RAMFS_MAGIC: u32 = 0x8584_58F6;

/// The `statfs(2)` `f_type` of the filesystem `fd` lives on (one of the
/// 32-bit magics of `<linux/magic.h>`; the field is a C long, a u32 on
/// s390x); None when fstatfs fails.
pub fn fs_type(fd: impl AsFd) -> Option<u32> {
    rustix::fs::fstatfs(fd).ok().map(|st| st.f_type as u32)
}

/// setsockopt(2) with `value`'s first `len` bytes (a whole `repr(C)`
/// struct, a c_int, or a byte string and its length): for the options
/// neither rustix nor socket2 wraps (TCP_INQ, IP_BIND_ADDRESS_NO_PORT,
/// kTLS).
pub(super) fn setsockopt<T>(
    fd: std::os::fd::BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    len: usize,
) -> std::io::Result<()> {
    // SAFETY: `value` points to `len` initialised bytes (callers pass a
    // whole `repr(C)` struct or c_int, or a byte string and its length), which the
    // kernel only reads during the call; `fd` is a valid borrowed socket.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            len as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
