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

/// What [`discard_now`] found on a socket's receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// Nothing was waiting (EAGAIN).
    Nothing,
    /// This many bytes were waiting, and are gone.
    Discarded(usize),
    /// The peer has closed its sending side (after what was discarded).
    End,
}

/// Drops every byte waiting on TCP socket `fd`'s receive side, without
/// blocking and without copying: `recv(2)` with MSG_TRUNC | MSG_DONTWAIT,
/// which TCP answers by freeing the bytes in the kernel (tcp(7)). One call
/// when nothing is there. Errors are the socket's (a reset, say).
pub fn discard_now(fd: impl AsFd) -> io::Result<Unread> {
    // TCP does not write into the buffer under MSG_TRUNC (it is never
    // initialised); its length only bounds how much one call drops.
    let mut scratch = [MaybeUninit::<u8>::uninit(); 1 << 16];
    let mut dropped = 0usize;
    loop {
        let flags = RecvFlags::TRUNC | RecvFlags::DONTWAIT;
        match rustix::net::recv(fd.as_fd(), &mut scratch[..], flags) {
            Ok((_, 0)) => return Ok(Unread::End),
            Ok((_, n)) => {
                dropped += n;
                if n < scratch.len() {
                    return Ok(Unread::Discarded(dropped));
                }
            }
            Err(Errno::AGAIN) if dropped == 0 => return Ok(Unread::Nothing),
            Err(Errno::AGAIN) => return Ok(Unread::Discarded(dropped)),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
