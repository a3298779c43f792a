//! Data channels: the second TCP connection every transfer needs.
//!
//! - [`announce`]: which address a 227 reply announces to which client
//!   (`--pasv-address`, `--pasv-address-map`), re-resolved on SIGHUP;
//! - [`passive`]: PASV/EPSV — a listener on a port from the shard's own
//!   slice of `--pasv-ports`, accepting only the control peer (RFC 2577);
//! - [`active`]: PORT/EPRT — connecting out to the client, optionally from
//!   port L-1;
//! - [`transfer`]: moving bytes over an established channel (zero-copy
//!   splice for binary RETR, a copy loop for ASCII, in-memory listings),
//!   with a watchdog that tells a slow client from a dead one;
//! - [`tls`]: FTPS data connections after their handshake (kTLS or the
//!   in-place userspace record layer; close_notify).

pub(crate) mod active;
pub(crate) mod announce;
pub(crate) mod passive;
pub(crate) mod ports;
pub(crate) mod tls;
pub(crate) mod transfer;

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;

use socket2::Socket;

use crate::engine::sys::{self, FdRef};

/// An established data connection.
///
/// Dropping it while an io_uring op still holds the socket (a splice
/// blocked on a full socket buffer, an active connect in SYN_SENT) shuts
/// it down first, which makes that op fail at once instead of holding the
/// fd open. Otherwise the
/// close alone ends the connection as the shutdown would (FIN, or RST
/// with unread data), one syscall fewer per transfer.
pub(crate) struct DataConn {
    sock: Rc<Socket>,
    pub peer: SocketAddr,
    /// FTPS: the connection's TLS keys after its handshake (PROT P).
    /// Boxed: inline it is 1,216 of the connection's 1,264 bytes, which
    /// every plain transfer's future, every move of the connection and a
    /// session's slot for its last upload's connection would carry
    /// (`-Zprint-type-sizes`; docs/benchmarks.md, "Twenty-first pass").
    pub tls: Option<Box<tls::DataTls>>,
}

impl DataConn {
    pub(crate) fn new(sock: Socket, peer: SocketAddr) -> DataConn {
        DataConn {
            sock: Rc::new(sock),
            peer,
            tls: None,
        }
    }

    /// Closes the sending side (a FIN after what was sent).
    pub(crate) fn shutdown_write(&self) {
        let _ = self.sock.shutdown(Shutdown::Write);
    }

    /// A handle on the socket fd for io_uring ops.
    pub(crate) fn fd(&self) -> FdRef {
        self.sock.clone()
    }

    /// Sends all of `buf`: one non-blocking send(2) first, the ring only
    /// for what the socket did not take. A listing or an ASCII chunk that
    /// fits the socket buffer (almost all) then costs no io_uring round
    /// trip, and a listing sent whole ends on the transfer's first poll,
    /// so its 150 goes out with its 226 (see `run_transfer`).
    pub(crate) async fn write_all(&self, mut buf: Vec<u8>) -> io::Result<()> {
        if sys::send_now(&*self.sock, &mut buf)? {
            return Ok(());
        }
        sys::send_all(self.fd(), buf).await
    }

    /// Ends a download (file or listing) that was sent whole: shuts the
    /// sending side (a FIN after the data, which the client reads as the
    /// end of the file) and hands the socket back, to be closed once the
    /// client has moved on ([`Closing`]).
    ///
    /// Linux answers the close of a TCP socket that has unread input, or
    /// that receives input once closed, by a reset, which also throws away
    /// whatever the send buffer still holds (tcp(7); RFC 2525 section
    /// 2.17): a client that wrote anything into a download's data
    /// connection lost up to a send buffer of the end of its file, after
    /// a 226 (vsftpd and pure-ftpd do the same). A socket shut only for
    /// sending still takes input without a reset, so the data keeps
    /// flowing whatever the client writes.
    pub(crate) fn finish_sending(mut self) -> Closing {
        self.shutdown_write();
        // The TLS state is done with (close_notify went before).
        self.tls = None;
        Closing(Box::new(self))
    }

    /// Aborts the connection now (ABOR, timeout): pending ops fail.
    pub(crate) fn abort(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

impl Drop for DataConn {
    fn drop(&mut self) {
        // Every op holds a clone of the handle until its completion.
        if Rc::strong_count(&self.sock) > 1 {
            let _ = self.sock.shutdown(Shutdown::Both);
        }
    }
}

/// A download's data connection, shut for sending, whose close waits for
/// the session's next command (or its end): by then a client that does
/// not pipeline has read the file. The session closes it once it has
/// answered that command, so that the close is not part of the client's
/// wait. Dropping it drops whatever the client
/// wrote into the connection (one non-blocking `recv(MSG_TRUNC)`), so the
/// close is a plain one, not a reset, and closes the socket. Costs one fd
/// per session between a download and the next command's reply (to the
/// end of the next transfer, when that command starts one). Until then, a
/// client that keeps writing into the connection fills its buffers and
/// waits (a closed socket would have reset it, and cut the file).
pub(crate) struct Closing(Box<DataConn>);

impl Drop for Closing {
    fn drop(&mut self) {
        let _ = sys::discard_now(&*self.0.sock);
    }
}
