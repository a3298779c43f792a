//! `IORING_OP_RECV`: uploads in ASCII mode read the data connection into a
//! buffer. Also [`discard_now`] and [`discard_once`], the non-blocking drop of what a peer sent
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
/// blocking and without copying: [`discard_once`] until a call leaves
/// nothing behind. One call when nothing is there; it stops at EAGAIN or
/// the peer's end of stream. Errors are the socket's (a reset, say).
pub fn discard_now(fd: impl AsFd) -> io::Result<()> {
    while discard_once(fd.as_fd())? == DISCARD_CHUNK {}
    Ok(())
}

/// Drops at most 64 KiB ([`DISCARD_CHUNK`]) of what waits on TCP socket
/// `fd`'s receive side, without blocking and without copying: one
/// `recv(2)` with MSG_TRUNC | MSG_DONTWAIT, which TCP answers by freeing
/// the bytes in the kernel (tcp(7)). Returns the bytes dropped: 0 when
/// nothing was there (EAGAIN) or at the peer's end of stream. Errors are
/// the socket's (a reset, say).
pub fn discard_once(fd: impl AsFd) -> io::Result<usize> {
    DISCARD.with_borrow_mut(|scratch| loop {
        let flags = RecvFlags::TRUNC | RecvFlags::DONTWAIT;
        match rustix::net::recv(fd.as_fd(), &mut scratch[..], flags) {
            Ok((_, n)) => return Ok(n),
            Err(Errno::AGAIN) => return Ok(0),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    })
}

/// The most [`discard_once`] drops, bytes.
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::*;

    /// Waits (up to 10 s) until `sock` has something to read or its end.
    fn wait_readable(sock: &TcpStream) {
        let mut fds = [rustix::event::PollFd::new(
            sock,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
    }

    #[test]
    fn discard_once_drops_at_most_a_chunk_and_discard_now_the_rest() {
        // A receive buffer that holds the whole of the large write below
        // (set before listen(2), so the accepted socket has it from its
        // handshake on and advertises the window for it).
        let listener = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        listener.set_recv_buffer_size(1 << 20).unwrap();
        listener
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        listener.listen(1).unwrap();
        let listener = TcpListener::from(listener);
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();

        // Nothing waiting: no bytes dropped, no error, no wait.
        assert_eq!(discard_once(&server).unwrap(), 0);

        // A ClientHello-sized write is dropped whole by one call.
        client.write_all(&[0x16; 517]).unwrap();
        wait_readable(&server);
        assert_eq!(discard_once(&server).unwrap(), 517);
        assert_eq!(discard_once(&server).unwrap(), 0);

        // More than a chunk: one call drops exactly a chunk, discard_now
        // the rest, and the stream stays in step: the next byte read is
        // the one written after.
        let big = 3 * DISCARD_CHUNK / 2;
        client.write_all(&vec![7u8; big]).unwrap();
        let mut waited = 0;
        while pending(&server) < big && waited < 1000 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        assert_eq!(pending(&server), big);
        assert_eq!(discard_once(&server).unwrap(), DISCARD_CHUNK);
        discard_now(&server).unwrap();
        assert_eq!(pending(&server), 0);
        client.write_all(b"Z").unwrap();
        let mut one = [0u8; 1];
        use std::io::Read;
        (&server).read_exact(&mut one).unwrap();
        assert_eq!(&one, b"Z");

        // The peer's end of stream: 0, not an error.
        drop(client);
        wait_readable(&server);
        assert_eq!(discard_once(&server).unwrap(), 0);
        discard_now(&server).unwrap();
    }

    /// Bytes waiting in `sock`'s receive queue (FIONREAD).
    fn pending(sock: &TcpStream) -> usize {
        rustix::io::ioctl_fionread(sock).unwrap() as usize
    }
}
