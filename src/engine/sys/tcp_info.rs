//! `getsockopt(TCP_INFO)`, which neither rustix nor socket2 wraps: the
//! data-connection watchdog tells a slow peer from a dead one by it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Bytes the peer has acknowledged and bytes received on a TCP socket
/// (`tcpi_bytes_acked`, `tcpi_bytes_received` of TCP_INFO, RFC 4898
/// counters). Errors when `sock` is not a TCP socket.
pub fn tcp_progress(sock: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: tcp_info is plain data (all-zero is valid); getsockopt writes
    // at most `len` bytes into it and we pass its true size; `sock` is a
    // borrowed, open fd.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok((info.tcpi_bytes_acked, info.tcpi_bytes_received))
    }
}
