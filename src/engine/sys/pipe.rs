//! The kernel pipe a splice transfer stages its bytes in, and the fd
//! handles io_uring ops hold on it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use rustix::pipe::{fcntl_getpipe_size, fcntl_setpipe_size, pipe_with, PipeFlags};

use super::FdRef;

/// One kernel pipe: the staging buffer of a splice transfer.
///
/// An op on either end keeps *both* ends open until it completes. This
/// matters: a splice from the pipe into a full socket holds the pipe's
/// lock while it waits, and close(2) of the other end takes that lock, so
/// closing it while the splice is stuck would block the shard thread. With
/// both ends held by every op, the pipe closes only after the last op has
/// finished (the socket is shut down first, which ends a stuck splice).
pub struct Pipe {
    pair: Rc<PipePair>,
    /// Bytes the pipe holds when full (what F_SETPIPE_SZ granted).
    pub capacity: u32,
}

struct PipePair {
    read: OwnedFd,
    write: OwnedFd,
}

/// One end of a [`Pipe`], usable as an op's fd; it holds the whole pipe.
struct PipeEnd {
    pair: Rc<PipePair>,
    write: bool,
}

impl AsFd for PipeEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        if self.write {
            self.pair.write.as_fd()
        } else {
            self.pair.read.as_fd()
        }
    }
}

impl AsRawFd for PipeEnd {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

impl Pipe {
    /// A new close-on-exec pipe sized to `want` bytes if the kernel allows
    /// it. When F_SETPIPE_SZ is refused (pipe-max-size, or an unprivileged
    /// user past pipe-user-pages-soft) the pipe keeps the size it has and
    /// transfers just use smaller chunks.
    pub fn new(want: u32) -> io::Result<Pipe> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
        let capacity = match fcntl_setpipe_size(&write, want as usize) {
            Ok(granted) => granted,
            Err(_) => fcntl_getpipe_size(&write)?,
        };
        Ok(Pipe {
            pair: Rc::new(PipePair { read, write }),
            capacity: capacity.min(u32::MAX as usize) as u32,
        })
    }

    /// The read end, for an op (which then holds the whole pipe).
    pub fn read_end(&self) -> FdRef {
        Rc::new(PipeEnd {
            pair: self.pair.clone(),
            write: false,
        })
    }

    /// The write end, for an op (which then holds the whole pipe).
    pub fn write_end(&self) -> FdRef {
        Rc::new(PipeEnd {
            pair: self.pair.clone(),
            write: true,
        })
    }

    /// The read end, borrowed for a call on this thread (a non-blocking
    /// splice into a socket).
    pub fn read_fd(&self) -> BorrowedFd<'_> {
        self.pair.read.as_fd()
    }

    /// The write end, for a splice on this thread.
    pub fn write_fd(&self) -> BorrowedFd<'_> {
        self.pair.write.as_fd()
    }
}
