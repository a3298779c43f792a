//! Waiting for a socket to become readable through tokio's reactor
//! (epoll), which tokio-uring's runtime parks in anyway: the wake-up comes
//! straight from epoll_wait, where an io_uring POLL op's completion first
//! interrupts it as task work and needs a second park to be seen. The
//! registration costs memory for as long as it lives (tokio's per-fd state,
//! a few hundred bytes), so it suits short waits: a passive data listener
//! whose client is late (see `data::passive`), a control connection while
//! its commands come in quick succession. Control connections that idle,
//! for hours and by the ten thousand, wait with POLL ops instead.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::FdRef;

/// The fd as the reactor holds it: the shared handle keeps it open.
struct Held(FdRef);

impl AsRawFd for Held {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A socket registered with the current tokio reactor for readability
/// (edge-triggered); deregistered when dropped.
pub struct ReadReadiness(AsyncFd<Held>);

impl ReadReadiness {
    /// Registers `fd` (one epoll_ctl). Fails outside a tokio runtime, or
    /// when epoll refuses the fd (a regular file).
    pub fn register(fd: FdRef) -> io::Result<ReadReadiness> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other("no tokio reactor on this thread"));
        }
        // SAFETY: `Held` owns a shared handle on the fd, so the fd stays
        // open and names the same file description for as long as the
        // AsyncFd (which owns the `Held`) lives, and `as_raw_fd` always
        // returns that same number.
        let fd = unsafe { AsyncFd::register_with_interest(Held(fd), Interest::READABLE) };
        fd.map(ReadReadiness).map_err(|e| e.into_parts().1)
    }

    /// Waits until the reactor has seen the fd readable (or hung up, or
    /// failed) since the last wait, and forgets that: the caller reads
    /// next, until EAGAIN or a short read. What arrives after that read
    /// raises a new edge, so nothing is missed; what arrives between this
    /// return and the read is read by it, and costs at most one spurious
    /// wake later.
    pub async fn wait(&self) -> io::Result<()> {
        let mut ready = self.0.readable().await?;
        ready.clear_ready();
        Ok(())
    }
}
