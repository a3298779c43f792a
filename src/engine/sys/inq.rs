//! TCP_INQ (tcp(7), Linux 4.18): with it on, each recvmsg(2) on a TCP
//! socket also says how many bytes it left in the receive queue, so a
//! reader learns that it emptied the socket without a second recv that
//! answers EAGAIN. Neither rustix nor socket2 wraps it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Turns TCP_INQ on for `sock`: from now on [`recv_noting_inq`] on it says
/// what each read left queued. Errors when `sock` is not a TCP socket or
/// the kernel predates TCP_INQ (EINVAL, ENOPROTOOPT).
pub fn enable_inq(sock: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    super::setsockopt(
        sock,
        libc::IPPROTO_TCP,
        libc::TCP_INQ,
        &on,
        std::mem::size_of_val(&on),
    )
}

/// Reads what `sock` holds into `buf` without blocking (MSG_DONTWAIT):
/// the bytes read, and the bytes the receive queue still holds after
/// them (the TCP_CM_INQ control message), or `None` when the kernel
/// sent none (TCP_INQ is off). Errors as recv(2) does: `WouldBlock` when
/// nothing is there.
///
/// The count includes what lies beyond an urgent mark, where a read stops
/// short (tcp(7)), and is at least 1 once the peer has closed (the read
/// that returns 0 is still to come), so 0 means the socket is empty.
pub fn recv_noting_inq(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<u32>)> {
    // Room for one control message carrying a c_int, 8-aligned as
    // struct cmsghdr wants.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data, all-zero valid (no name, no flags).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (which covers exactly `buf`, writable
    // for its length) and at `control` (writable for the length given),
    // all of which outlive the call; `sock` is a borrowed, open fd.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut inq = None;
    // SAFETY: the kernel filled `control` up to `msg.msg_controllen` with
    // well-formed cmsghdrs; CMSG_FIRSTHDR/CMSG_NXTHDR walk only within
    // that length, and a TCP_CM_INQ message carries one c_int (read
    // unaligned, as its data need not be aligned for it).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_TCP && (*c).cmsg_type == libc::TCP_CM_INQ {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                inq = Some(v.max(0) as u32);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, inq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        (client, server)
    }

    /// Reads, waiting (spinning) while nothing is there yet.
    fn read_some(sock: &TcpStream, buf: &mut [u8]) -> (usize, Option<u32>) {
        loop {
            match recv_noting_inq(sock.as_fd(), buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                r => return r.unwrap(),
            }
        }
    }

    #[test]
    fn a_read_says_what_it_left_behind() {
        let (mut client, server) = pair();
        enable_inq(server.as_fd()).unwrap();
        client.write_all(b"NOOP\r\nSIZE f\r\n").unwrap();
        // Wait for all 14 bytes to be queued, then read 6 of them.
        let mut peek = [0u8; 14];
        while server.peek(&mut peek).unwrap() < 14 {
            std::thread::yield_now();
        }
        let mut buf = [0u8; 6];
        assert_eq!(read_some(&server, &mut buf), (6, Some(8)));
        let mut buf = [0u8; 64];
        assert_eq!(read_some(&server, &mut buf), (8, Some(0)));
        assert_eq!(&buf[..8], b"SIZE f\r\n");
        let e = recv_noting_inq(server.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn a_closed_peer_leaves_something_to_read() {
        let (mut client, server) = pair();
        enable_inq(server.as_fd()).unwrap();
        client.write_all(b"QUIT\r\n").unwrap();
        drop(client);
        // Wait for the FIN (which follows the data).
        let mut fds = [rustix::event::PollFd::new(
            &server,
            rustix::event::PollFlags::RDHUP,
        )];
        rustix::event::poll(&mut fds, None).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(
            read_some(&server, &mut buf),
            (6, Some(1)),
            "a read that leaves only the end of stream must not say empty"
        );
        assert_eq!(&buf[..6], b"QUIT\r\n");
        assert_eq!(read_some(&server, &mut buf).0, 0);
    }

    #[test]
    fn a_read_stopped_at_the_urgent_mark_is_not_empty() {
        // ftplib's abort(): ABOR sent with MSG_OOB behind a command, on a
        // socket with SO_OOBINLINE as the control connection has. The read
        // stops at the mark; the count must say the rest is there.
        let (client, server) = pair();
        rustix::net::sockopt::set_socket_oobinline(&server, true).unwrap();
        enable_inq(server.as_fd()).unwrap();
        rustix::net::send(&client, b"STAT\r\n", rustix::net::SendFlags::empty()).unwrap();
        rustix::net::send(&client, b"ABOR\r\n", rustix::net::SendFlags::OOB).unwrap();
        let mut peek = [0u8; 12];
        while server.peek(&mut peek).unwrap_or(0) < 11 {
            std::thread::yield_now();
        }
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            let (n, inq) = read_some(&server, &mut buf);
            got.extend_from_slice(&buf[..n]);
            assert!(inq.is_some());
            if inq == Some(0) {
                break;
            }
        }
        assert_eq!(got, b"STAT\r\nABOR\r\n");
    }

    #[test]
    fn without_inq_no_count() {
        let (mut client, server) = pair();
        client.write_all(b"NOOP\r\n").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(read_some(&server, &mut buf), (6, None));
    }
}
