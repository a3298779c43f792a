//! io_uring operations tokio-uring 0.5 does not offer, one file per op.
//!
//! Each op is a raw SQE built with the `io-uring` crate and submitted on
//! the shard's own ring through tokio-uring's public `UnsubmittedOneshot`.
//! The op stores every fd and buffer the kernel will touch in its "stable
//! data", which tokio-uring keeps alive until the completion arrives, even
//! when the future awaiting it was dropped: a cancelled transfer can never
//! make the kernel read a closed (or, worse, reused) fd number, nor write
//! into freed memory.
//!
//! This file holds what the ops share: turning a completion into an
//! `io::Result`, the two output transforms (plain result; result plus the
//! buffer), and the stable data of buffer and *at ops. Adding an op is
//! adding a file that builds its SQE and picks one of these.

use std::ffi::CString;
use std::io;
use std::marker::PhantomData;

use io_uring::{cqueue, squeue};
use tokio_uring::{OneshotOutputTransform, UnsubmittedOneshot};

use super::FdRef;

mod accept;
mod connect;
mod mkdir;
mod openat2;
mod poll;
mod read;
mod recv;
mod rename;
mod send;
mod splice;
mod unlink;
mod vectored;
mod write;

pub use accept::accept;
pub use connect::connect;
pub use mkdir::mkdirat;
pub use openat2::openat2;
pub use poll::{poll_readable, poll_writable};
pub use read::read_at;
pub use recv::{discard_now, discard_once, recv};
pub use rename::renameat;
pub use send::{send, send_all, send_now, send_range};
pub use splice::{splice, splice_to_offset};
pub use unlink::unlinkat;
pub use vectored::{read_vectored_at, write_vectored_at};
pub use write::{write_append, write_at};

/// A completion's result: the kernel's non-negative return value, or the
/// negated errno as an `io::Error`.
fn cqe_result(cqe: &cqueue::Entry) -> io::Result<u32> {
    let res = cqe.result();
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

/// Converts a completion into `io::Result<u32>` and drops the stable data
/// (which is what finally releases the fds the op held).
struct PlainResult<D>(PhantomData<D>);

impl<D> OneshotOutputTransform for PlainResult<D> {
    type Output = io::Result<u32>;
    type StoredData = D;
    fn transform_oneshot_output(self, _data: D, cqe: cqueue::Entry) -> io::Result<u32> {
        cqe_result(&cqe)
    }
}

/// An op whose stable data `data` is only kept alive, not given back.
fn plain<D: Unpin + 'static>(data: D, sqe: squeue::Entry) -> UnsubmittedOneshot<D, PlainResult<D>> {
    UnsubmittedOneshot::new(data, PlainResult(PhantomData), sqe)
}

/// Stable data of a send, receive, read or write: the fd and the buffer
/// the kernel reads from or writes into. `Vec`'s heap block does not move
/// when the `Vec` value itself is moved into the op, so the pointer stays
/// valid.
struct BufData {
    _fd: FdRef,
    buf: Vec<u8>,
}

/// Returns the buffer of a send/receive/read/write op along with its result.
struct BufResult;

impl OneshotOutputTransform for BufResult {
    type Output = (io::Result<u32>, Vec<u8>);
    type StoredData = BufData;
    fn transform_oneshot_output(self, data: BufData, cqe: cqueue::Entry) -> Self::Output {
        (cqe_result(&cqe), data.buf)
    }
}

/// An op on `fd` that hands `buf` back with its result.
fn buf_op(fd: FdRef, buf: Vec<u8>, sqe: squeue::Entry) -> UnsubmittedOneshot<BufData, BufResult> {
    UnsubmittedOneshot::new(BufData { _fd: fd, buf }, BufResult, sqe)
}

/// `buf[from..]` as the (pointer, length) of a send or write; `from` past
/// the end is taken as the end. The length is capped at `u32::MAX`.
fn tail(buf: &[u8], from: usize) -> (*const u8, u32) {
    let from = from.min(buf.len());
    let len = (buf.len() - from).min(u32::MAX as usize) as u32;
    // `from <= buf.len()`, so the slice (and its pointer) is in bounds; the
    // op that gets the pointer owns `buf` until its completion arrives.
    (buf[from..].as_ptr(), len)
}

/// Submits a receive or read that fills `buf`'s spare capacity (after its
/// current length): `make` builds the SQE from the pointer and length of
/// that spare room. On success the length grows by the bytes received.
async fn into_spare(
    fd: FdRef,
    mut buf: Vec<u8>,
    make: impl FnOnce(*mut u8, u32) -> squeue::Entry,
) -> (io::Result<u32>, Vec<u8>) {
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    let room = spare.len().min(u32::MAX as usize) as u32;
    let sqe = make(spare.as_mut_ptr().cast(), room);
    let (res, mut buf) = buf_op(fd, buf, sqe).submit().await;
    if let Ok(n) = res {
        // SAFETY: the kernel initialised exactly `n <= room` bytes after
        // the old length, and `len + room <= capacity`.
        unsafe { buf.set_len(len + n as usize) };
    }
    (res, buf)
}

/// Stable data of the *at ops: the directory fds and the names.
struct AtData {
    _dirs: (FdRef, Option<FdRef>),
    _names: (CString, Option<CString>),
}

/// Submits a one-directory, one-name *at op and waits for it.
async fn at_op(dir: FdRef, name: CString, sqe: squeue::Entry) -> io::Result<()> {
    let data = AtData {
        _dirs: (dir, None),
        _names: (name, None),
    };
    plain(data, sqe).submit().await.map(|_| ())
}
