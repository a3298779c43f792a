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
use std::os::fd::{AsFd, AsRawFd, RawFd};

use rustix::event::{PollFd, PollFlags, Timespec};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::FdRef;

/// Whether listening socket `listener` has a connection in its backlog
/// right now: poll(2) with no wait. Cheaper than an accept4(2) that finds
/// none: the kernel allocates the new socket's file before it looks at the
/// backlog (`do_accept`) and frees it again on EAGAIN. A listener shut
/// down or in error polls as ready (POLLHUP, POLLERR), so the caller's
/// accept then says what is wrong. False when poll(2) itself fails (EINTR
/// with nothing ready; ENOMEM), as if nothing waited.
pub fn has_waiting_connection(listener: impl AsFd) -> bool {
    let mut fds = [PollFd::new(&listener, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_waiting_connection_is_seen_until_it_is_accepted() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!has_waiting_connection(&listener));
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // The handshake completes in connect() on loopback: the
        // connection is in the backlog before it returns.
        assert!(has_waiting_connection(&listener));
        let _taken = listener.accept().unwrap();
        assert!(!has_waiting_connection(&listener));
    }
}
