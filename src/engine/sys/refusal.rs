//! Refusing a client when the process has no file descriptor left.
//!
//! accept(2) and io_uring's ACCEPT take an fd number before they look at
//! the backlog, so once the process's fd table is full (EMFILE, ENFILE)
//! a waiting client cannot be accepted to be told so: it waits in the
//! backlog, unanswered, for as long as the shortage lasts. The usual
//! answer (nginx's, and ringftp's until it had several shards) is a spare
//! fd, closed to make room for the accept; but fds are the process's and
//! another thread's open can take the freed slot first, after which that
//! thread's clients hang again.
//!
//! A [`Refuser`] needs no slot of the process's table: it accepts the
//! client into its own io_uring's file table (a "direct descriptor":
//! IORING_OP_ACCEPT with a file index, Linux 5.15), which RLIMIT_NOFILE
//! does not count once registered, sends the 421 (on an implicit-FTPS
//! listener, a TLS alert) and closes the slot through the same ring.
//! Nothing another thread opens can take it.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use io_uring::{opcode, squeue::Flags, types, IoUring};

/// The one slot of the ring's file table a refused client occupies.
const SLOT: u32 = 0;

/// How long a refusal waits for the client it was told of. One waiting
/// when the refusal starts is accepted inline, in microseconds; this
/// bounds the wait when another accept took it in between.
const ACCEPT_WAIT: Duration = Duration::from_millis(1);

/// The longest a refusal blocks its thread, whatever the ring does; past
/// it the ring is given up ([`Refuser::refuse`]'s error).
const RING_WAIT: Duration = Duration::from_millis(500);

/// The ops of one refusal, in order, by their user_data.
const ACCEPT: u64 = 1;
const TIMEOUT: u64 = 2;
const SEND: u64 = 3;
const CLOSE: u64 = 4;
const OPS: usize = 4;

/// What the ring's ops point at: kept on the heap for as long as the ring
/// may use it (see [`Refuser::refuse`]).
struct Inner {
    ring: IoUring,
    /// For a plain FTP listener: a 421 line.
    reply: Vec<u8>,
    /// For an implicit-FTPS listener: a TLS alert record.
    tls_reply: Vec<u8>,
    accept_wait: types::Timespec,
}

/// An io_uring of its own, with a one-slot file table, that accepts a
/// waiting client, sends it one of two fixed replies and closes it
/// without using an fd of the process's table. One per shard (a ring is used by one thread
/// at a time); it holds one fd, the ring's, from its creation.
pub struct Refuser {
    inner: RefCell<Option<Box<Inner>>>,
}

impl Refuser {
    /// A refuser that answers a client it refuses with `reply` (a whole
    /// FTP reply line, CRLF included), or with `tls_reply` (a TLS alert
    /// record) when the listener is an implicit-FTPS one.
    ///
    /// Errors: io_uring_setup(2)'s (io_uring disabled by
    /// `kernel.io_uring_disabled`, no fd left) or IORING_REGISTER_FILES's
    /// (a kernel before 5.13).
    pub fn new(reply: Vec<u8>, tls_reply: Vec<u8>) -> io::Result<Refuser> {
        let ring = IoUring::new(OPS as u32)?;
        // One empty slot (-1: sparse).
        ring.submitter().register_files(&[-1])?;
        Ok(Refuser {
            inner: RefCell::new(Some(Box::new(Inner {
                ring,
                reply,
                tls_reply,
                accept_wait: types::Timespec::new().nsec(ACCEPT_WAIT.as_nanos() as u32),
            }))),
        })
    }

    /// False once the ring has failed (see [`Refuser::refuse`]).
    pub fn usable(&self) -> bool {
        self.inner.borrow().is_some()
    }

    /// Accepts one connection waiting on `listener` (a listening TCP
    /// socket), sends it the reply (`tls`: the TLS one, for an
    /// implicit-FTPS listener) and closes it, all within the ring's own
    /// file table: what the process's fd table holds does not matter.
    ///
    /// `Ok(true)`: a client was accepted and closed (the send itself may
    /// have failed: a client already gone). `Ok(false)`: nobody came
    /// within [`ACCEPT_WAIT`] (another accept took the client). Blocks the
    /// calling thread for microseconds when a client waits, up to
    /// [`ACCEPT_WAIT`] when none does. An error means the ring failed (or
    /// kept an op past [`RING_WAIT`]): it is given up and every later call
    /// returns an error at once.
    pub fn refuse(&self, listener: &impl AsFd, tls: bool) -> io::Result<bool> {
        let mut slot = self.inner.borrow_mut();
        let Some(inner) = slot.as_mut() else {
            return Err(io::Error::other("the refusal ring failed earlier"));
        };
        match run(inner, listener.as_fd().as_raw_fd(), tls) {
            Ok(refused) => Ok(refused),
            Err(e) => {
                // Ops may still be in flight and point into `inner`: it is
                // leaked, never freed under them.
                if let Some(inner) = slot.take() {
                    Box::leak(inner);
                }
                Err(e)
            }
        }
    }
}

/// Submits accept → (timeout) → send → close as one chain and waits for
/// the four completions.
fn run(inner: &mut Inner, listener: i32, tls: bool) -> io::Result<bool> {
    let slot = types::DestinationSlot::try_from_slot_target(SLOT)
        .map_err(|_| io::Error::other("bad file slot"))?;
    let accept = opcode::Accept::new(
        types::Fd(listener),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
    .file_index(Some(slot))
    .build()
    .flags(Flags::IO_LINK)
    .user_data(ACCEPT);
    // Cancels the accept if nobody comes; the chain then ends there.
    let timeout = opcode::LinkTimeout::new(&inner.accept_wait)
        .build()
        .flags(Flags::IO_LINK)
        .user_data(TIMEOUT);
    let reply = if tls { &inner.tls_reply } else { &inner.reply };
    let send = opcode::Send::new(types::Fixed(SLOT), reply.as_ptr(), reply.len() as u32)
        .flags(libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        .build()
        // The close follows even when the send failed.
        .flags(Flags::IO_HARDLINK)
        .user_data(SEND);
    let close = opcode::Close::new(types::Fixed(SLOT))
        .build()
        .user_data(CLOSE);
    let ops = [accept, timeout, send, close];
    // SAFETY: the entries point at `inner.accept_wait` and at one of
    // `inner.reply` and `inner.tls_reply` (heap buffers `inner` owns and
    // never changes after `new`), all in or owned by the allocation that
    // holds the ring: they stay put
    // and alive until all four ops have completed (waited for below), or,
    // if waiting fails, forever (`Refuser::refuse` leaks them with the
    // ring). `listener` is an open socket the caller borrows for the call;
    // the accept completes or is cancelled before this function returns.
    // The ring's queue is empty between calls, so all four fit.
    unsafe {
        inner
            .ring
            .submission()
            .push_multiple(&ops)
            .map_err(|_| io::Error::other("refusal ring queue full"))?;
    }
    let deadline = Instant::now() + RING_WAIT;
    let mut done = 0;
    let mut accepted = false;
    while done < OPS {
        let left = deadline.saturating_duration_since(Instant::now());
        let wait = types::Timespec::new()
            .sec(left.as_secs())
            .nsec(left.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&wait);
        // The first call submits the chain; every call waits for what is
        // still missing.
        match inner.ring.submitter().submit_with_args(OPS - done, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::ETIME)) => {}
            Err(e) => return Err(e),
        }
        for cqe in inner.ring.completion() {
            done += 1;
            if cqe.user_data() == ACCEPT && cqe.result() >= 0 {
                accepted = true;
            }
        }
        if done < OPS && Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the refusal ring kept an op past its deadline",
            ));
        }
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    const LINE: &[u8] = b"421 Server out of resources, try again later.\r\n";
    const ALERT: &[u8] = &[21, 3, 3, 0, 2, 2, 80];

    /// Waits (up to 10 s, against a hang) until `l` has a connection to
    /// accept, so a refusal never races the client's handshake.
    fn wait_backlog(l: &TcpListener) {
        let mut fds = [rustix::event::PollFd::new(l, rustix::event::PollFlags::IN)];
        let ten = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        assert_eq!(rustix::event::poll(&mut fds, Some(&ten)).unwrap(), 1);
    }

    /// A client connects and is refused: it reads the line (`tls`: the
    /// alert), then EOF.
    fn refused_client_reads(r: &Refuser, l: &TcpListener, tls: bool) {
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        wait_backlog(l);
        assert!(r.refuse(l, tls).unwrap());
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, if tls { ALERT } else { LINE });
    }

    #[test]
    fn a_waiting_client_gets_the_reply_then_eof() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let r = Refuser::new(LINE.to_vec(), ALERT.to_vec()).unwrap();
        for tls in [false, true, false] {
            refused_client_reads(&r, &l, tls);
        }
        // The backlog is empty: nothing was accepted behind our back.
        assert!(l.accept().is_err());
    }

    #[test]
    fn nobody_waiting_returns_false_and_the_ring_stays_usable() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let r = Refuser::new(LINE.to_vec(), ALERT.to_vec()).unwrap();
        assert!(!r.refuse(&l, false).unwrap());
        assert!(!r.refuse(&l, true).unwrap());
        // A client that comes later is still in the backlog for the next
        // accept, not taken by an accept left over from the calls above.
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Err(e) = l.accept() {
            assert!(
                std::time::Instant::now() < deadline,
                "the later client never reached the backlog: {e}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(c);
        refused_client_reads(&r, &l, true);
    }
}
