//! `IORING_OP_READV` / `IORING_OP_WRITEV` at an offset, into or out of
//! several ranges of one buffer: FTPS data connections read a file's
//! bytes straight into the plaintext slots of TLS records laid out in one
//! buffer, and write decrypted record payloads to a file without first
//! packing them together (see `crate::data::tls`).

use std::io;
use std::ops::Range;

use io_uring::{opcode, types};
use tokio_uring::{OneshotOutputTransform, UnsubmittedOneshot};

use super::{cqe_result, FdRef};

/// Stable data of a vectored op: the fd, the buffer, and the iovec array
/// pointing into it (all owned by the op until its completion).
struct VecData {
    _fd: FdRef,
    buf: Vec<u8>,
    _iov: Vec<libc::iovec>,
}

struct VecResult;

impl OneshotOutputTransform for VecResult {
    type Output = (io::Result<u32>, Vec<u8>);
    type StoredData = VecData;
    fn transform_oneshot_output(self, data: VecData, cqe: io_uring::cqueue::Entry) -> Self::Output {
        (cqe_result(&cqe), data.buf)
    }
}

/// The iovecs of `ranges` of `buf`; ranges past the end are clamped.
fn iovecs(buf: &mut [u8], ranges: &[Range<usize>]) -> Vec<libc::iovec> {
    let len = buf.len();
    let base = buf.as_mut_ptr();
    ranges
        .iter()
        .map(|r| {
            let start = r.start.min(len);
            let end = r.end.clamp(start, len);
            libc::iovec {
                // In bounds: start <= end <= len.
                iov_base: base.wrapping_add(start).cast(),
                iov_len: end - start,
            }
        })
        .collect()
}

/// `preadv(2)` at `offset` into `ranges` of `buf` (whose length, not
/// capacity, bounds them), in order. Returns the bytes read (0 at end of
/// file) and the buffer.
pub async fn read_vectored_at(
    fd: FdRef,
    mut buf: Vec<u8>,
    ranges: &[Range<usize>],
    offset: u64,
) -> (io::Result<u32>, Vec<u8>) {
    let iov = iovecs(&mut buf, ranges);
    let sqe = opcode::Readv::new(types::Fd(fd.as_raw_fd()), iov.as_ptr(), iov.len() as u32)
        .offset(offset)
        .build();
    // The iovec array's heap block and the buffer's do not move when the
    // Vecs are moved into the op's stable data.
    let data = VecData {
        _fd: fd,
        buf,
        _iov: iov,
    };
    UnsubmittedOneshot::new(data, VecResult, sqe).submit().await
}

/// `pwritev(2)` at `offset` of `ranges` of `buf`, in order. Returns the
/// bytes written (possibly fewer than asked) and the buffer.
pub async fn write_vectored_at(
    fd: FdRef,
    mut buf: Vec<u8>,
    ranges: &[Range<usize>],
    offset: u64,
) -> (io::Result<u32>, Vec<u8>) {
    let iov = iovecs(&mut buf, ranges);
    let sqe = opcode::Writev::new(types::Fd(fd.as_raw_fd()), iov.as_ptr(), iov.len() as u32)
        .offset(offset)
        .build();
    let data = VecData {
        _fd: fd,
        buf,
        _iov: iov,
    };
    UnsubmittedOneshot::new(data, VecResult, sqe).submit().await
}
