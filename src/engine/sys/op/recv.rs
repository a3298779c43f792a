//! `IORING_OP_RECV`: uploads in ASCII mode read the data connection into a
//! buffer. Also [`discard_now`], the non-blocking drop of what a peer sent
//! that nobody will read.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use io_uring::{opcode, types};
use rustix::io::Errno;
use rustix::net::RecvFlags;

use super::{into_spare, FdRef};

/// `recv(2)` into the spare capacity of `buf` (after its current length);
/// on success the length grows by the bytes received. 0 means end of stream.
pub async fn recv(fd: FdRef, buf: Vec<u8>) -> (io::Result<u32>, Vec<u8>) {
    let raw = types::Fd(fd.as_raw_fd());
    into_spare(fd, buf, |ptr, len| opcode::Recv::new(raw, ptr, len).build()).await
}

/// Drops every byte waiting on TCP socket `fd`'s receive side, without
/// blocking and without copying: `recv(2)` with MSG_TRUNC | MSG_DONTWAIT,
/// which TCP answers by freeing the bytes in the kernel (tcp(7)). One call
/// when nothing is there; it stops at EAGAIN or the peer's end of stream.
/// Errors are the socket's (a reset, say).
pub fn discard_now(fd: impl AsFd) -> io::Result<()> {
    DISCARD.with_borrow_mut(|scratch| loop {
        let flags = RecvFlags::TRUNC | RecvFlags::DONTWAIT;
        match rustix::net::recv(fd.as_fd(), &mut scratch[..], flags) {
            // A full call may have left more behind; a short one (or the
            // end of stream, 0) did not.
            Ok((_, n)) if n == DISCARD_CHUNK => {}
            Ok(_) | Err(Errno::AGAIN) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    })
}

/// The most [`discard_now`] drops per call, bytes.
const DISCARD_CHUNK: usize = 1 << 16;

thread_local! {
    /// [`discard_now`]'s buffer. TCP does not write into it under
    /// MSG_TRUNC (it is never initialised, so its pages are never
    /// touched); its length only bounds how much one call drops. Not on
    /// the stack: a 64 KiB frame is probed page by page on entry, and the
    /// compiler inlined this function into the drop of every session's
    /// `Option<Closing>`, which runs at each command, held connection or
    /// not (0.9 % of a shard's samples in a SIZE loop under `perf`).
    static DISCARD: std::cell::RefCell<Box<[MaybeUninit<u8>]>> =
        std::cell::RefCell::new(Box::new_uninit_slice(DISCARD_CHUNK));
}
