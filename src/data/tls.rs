//! FTPS data connections after their handshake: where the bytes are
//! encrypted, and how a transfer ends.
//!
//! The handshake ran in rustls ([`crate::tls::handshake`]); its traffic
//! keys are then taken out of it and go one of two ways:
//!
//! - **kernel** (kTLS, when the kernel supports the negotiated cipher and
//!   `--ktls auto`): the sending keys are handed to the socket, and a
//!   download runs the very same sendfile/splice loop as in plain FTP
//!   ([`crate::engine::splice`]); only close_notify needs a special send;
//! - **userspace** ([`crate::tls::record`]): a download reads the file with
//!   one io_uring READV straight into the plaintext slots of up to 16
//!   records laid out in a buffer, seals each record where it lies and
//!   sends the buffer, while the next buffer is read and sealed: no copy
//!   besides the kernel's own. An upload receives into a buffer, opens each
//!   record in place and writes the plaintext ranges with one io_uring
//!   WRITEV.
//!
//! A download ends with close_notify. An upload is complete only when the
//! client's close_notify arrives: a connection that simply ends is a cut
//! one (RFC 8446 section 6.1 truncation), and the upload counts as broken.

use std::cell::{Cell, RefCell};
use std::io;
use std::ops::Range;
use std::os::fd::AsFd;

use rustls::ServerConnection;

use super::DataConn;
use crate::engine::splice::{self, SpliceError, TransferCtx};
use crate::engine::sys::{self, ktls, FdRef};
use crate::metrics::counters::Dir;
use crate::tls::record::{
    self, content, Cipher, Opener, Sealer, Version, CLOSE_NOTIFY, MAX_PLAINTEXT,
};

/// Records one download buffer holds (16 x 16 KiB of plaintext).
const RECORDS: usize = 16;
/// Bytes an upload receives into at once.
const RECV_BUF: usize = 256 * 1024;

/// Which way a data connection's bytes are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// kTLS: the kernel encrypts what the socket sends.
    Kernel,
    /// The in-place userspace record layer.
    Userspace,
}

/// A data connection's TLS state after the handshake.
pub(crate) struct DataTls {
    sealer: RefCell<Sealer>,
    opener: RefCell<Opener>,
    /// Where sending is encrypted.
    pub path: Path,
    /// For logs and STAT: "TLSv1.3 AES-256-GCM".
    pub description: String,
}

impl DataTls {
    /// Takes the keys out of a finished handshake on `sock`. With
    /// `kernel` (a download, and the kernel supports the cipher), the
    /// sending keys go to the kernel; if that fails, the log says why and
    /// userspace encrypts.
    pub(crate) fn from_handshake(
        conn: ServerConnection,
        sock: &FdRef,
        kernel: &ktls::Support,
        want_kernel: bool,
    ) -> io::Result<DataTls> {
        let version = conn
            .protocol_version()
            .and_then(Version::of)
            .ok_or_else(|| io::Error::other("no TLS version negotiated"))?;
        let secrets = conn
            .dangerous_extract_secrets()
            .map_err(|e| io::Error::other(format!("taking the TLS keys: {e}")))?;
        let sealer = Sealer::new(version, secrets.tx.0, &secrets.tx.1)?;
        let opener = Opener::new(version, secrets.rx.0, &secrets.rx.1)?;
        let (cipher, key, iv) = record::split(&secrets.tx.1)
            .ok_or_else(|| io::Error::other("unsupported TLS cipher"))?;
        let (kv, kc) = (
            match version {
                Version::Tls12 => ktls::TLS_1_2,
                Version::Tls13 => ktls::TLS_1_3,
            },
            match cipher {
                Cipher::Aes128Gcm => ktls::AES_GCM_128,
                Cipher::Aes256Gcm => ktls::AES_GCM_256,
                Cipher::Chacha20Poly1305 => ktls::CHACHA20_POLY1305,
            },
        );
        let mut path = Path::Userspace;
        if want_kernel && kernel.supports(kv, kc) {
            match ktls::enable_tx(sock.as_fd(), kv, kc, key, &iv, secrets.tx.0) {
                Ok(()) => path = Path::Kernel,
                Err(e) => tracing::warn!("kTLS hand-over failed ({e}); encrypting in userspace"),
            }
        }
        let description = format!(
            "{} {}",
            match version {
                Version::Tls12 => "TLSv1.2",
                Version::Tls13 => "TLSv1.3",
            },
            match cipher {
                Cipher::Aes128Gcm => "AES-128-GCM",
                Cipher::Aes256Gcm => "AES-256-GCM",
                Cipher::Chacha20Poly1305 => "CHACHA20-POLY1305",
            }
        );
        Ok(DataTls {
            sealer: RefCell::new(sealer),
            opener: RefCell::new(opener),
            path,
            description,
        })
    }

    /// Sends `data` as application data (listings, ASCII chunks).
    pub(crate) async fn send(&self, conn: &DataConn, data: Vec<u8>) -> io::Result<()> {
        if self.path == Path::Kernel {
            return conn.write_all(data).await;
        }
        let mut wire = Vec::with_capacity(data.len() + data.len() / 512 + 64);
        self.sealer
            .borrow_mut()
            .seal_to(content::APPLICATION_DATA, &data, &mut wire);
        conn.write_all(wire).await
    }

    /// Sends close_notify and closes the sending side: the end of a
    /// download (or the answer to an upload's close_notify).
    pub(crate) async fn close(&self, conn: &DataConn) -> io::Result<()> {
        match self.path {
            Path::Kernel => {
                let fd = conn.fd();
                loop {
                    match ktls::send_alert(fd.as_fd(), content::ALERT, &CLOSE_NOTIFY) {
                        Ok(_) => break,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            sys::poll_writable(fd.clone()).await?
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Path::Userspace => {
                let mut wire = Vec::new();
                self.sealer
                    .borrow_mut()
                    .seal_to(content::ALERT, &CLOSE_NOTIFY, &mut wire);
                conn.write_all(wire).await?;
            }
        }
        conn.shutdown_write();
        Ok(())
    }

    /// Binary download of `len` bytes of `file` from `offset`: kernel
    /// path = the plain zero-copy loop; userspace path = read into record
    /// slots, seal in place, send, two buffers overlapping. Returns the
    /// bytes of the file sent; ends with close_notify.
    pub(crate) async fn send_file(
        &self,
        ctx: &mut TransferCtx<'_>,
        conn: &DataConn,
        file: FdRef,
        offset: u64,
        len: u64,
    ) -> Result<u64, SpliceError> {
        let sent = match self.path {
            Path::Kernel => {
                let n = splice::send_file(ctx, file, offset, len, conn.fd(), false).await?;
                ctx.kernel_tls(n);
                n
            }
            Path::Userspace => {
                self.send_file_userspace(ctx, conn, file, offset, len)
                    .await?
            }
        };
        self.close(conn).await.map_err(SpliceError::Sink)?;
        Ok(sent)
    }

    async fn send_file_userspace(
        &self,
        ctx: &mut TransferCtx<'_>,
        conn: &DataConn,
        file: FdRef,
        offset: u64,
        len: u64,
    ) -> Result<u64, SpliceError> {
        let slot = self.sealer.borrow().slot();
        let max = splice::paced_chunk(&ctx.pacer, (RECORDS * MAX_PLAINTEXT) as u32) as u64;
        let mut bufs = [
            ctx.tls_buffers.take(slot * RECORDS),
            ctx.tls_buffers.take(slot * RECORDS),
        ];
        let end = offset + len;
        let mut pos = offset;
        let (res, b) = self
            .fill(&file, std::mem::take(&mut bufs[0]), pos, max.min(end - pos))
            .await;
        bufs[0] = b;
        let (mut plain, mut wire) = res.map_err(SpliceError::Source)?;
        while plain > 0 {
            let before = pos - offset;
            pos += plain;
            let want = max.min(end - pos);
            let sending = std::mem::take(&mut bufs[0]);
            let filling = std::mem::take(&mut bufs[1]);
            // Counted record by record as the socket takes them, so a
            // transfer cut (or aborted) in the middle of a batch logs what
            // the client could have read, not only the batches before.
            let counted = Cell::new(0);
            let shared: &TransferCtx<'_> = ctx;
            let on_sent = |sent: usize| {
                let now = records_sent(sent, wire, slot, plain);
                let new = now - counted.replace(now);
                if new > 0 {
                    shared.encrypted(Dir::Download, new);
                    shared.progress.set(before + now);
                }
            };
            let sending = send_prefix(conn.fd(), sending, wire, on_sent);
            let (sent, filled) = tokio::join!(sending, async {
                if want == 0 {
                    (Ok((0, 0)), filling)
                } else {
                    self.fill(&file, filling, pos, want).await
                }
            });
            let (sres, sbuf) = sent;
            let (fres, fbuf) = filled;
            bufs = [fbuf, sbuf];
            sres.map_err(SpliceError::Sink)?;
            splice::pace_copied(&mut ctx.pacer, plain).await;
            (plain, wire) = fres.map_err(SpliceError::Source)?;
        }
        for b in bufs {
            ctx.tls_buffers.give(b);
        }
        let done = pos - offset;
        if done < len {
            return Err(SpliceError::Source(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank during the transfer ({done} of {len} bytes sent)"),
            )));
        }
        Ok(done)
    }

    /// Reads up to `want` bytes of `file` at `pos` into the record slots
    /// of `buf` and seals them: returns (plaintext bytes, wire bytes).
    async fn fill(
        &self,
        file: &FdRef,
        buf: Vec<u8>,
        pos: u64,
        want: u64,
    ) -> (io::Result<(u64, usize)>, Vec<u8>) {
        let (head, slot) = {
            let s = self.sealer.borrow();
            (s.head(), s.slot())
        };
        let ranges: Vec<Range<usize>> = (0..want.div_ceil(MAX_PLAINTEXT as u64) as usize)
            .map(|i| {
                let len = (want as usize - i * MAX_PLAINTEXT).min(MAX_PLAINTEXT);
                i * slot + head..i * slot + head + len
            })
            .collect();
        let (res, mut buf) = sys::read_vectored_at(file.clone(), buf, &ranges, pos).await;
        let n = match res {
            Ok(n) => n as usize,
            Err(e) => return (Err(e), buf),
        };
        let mut sealer = self.sealer.borrow_mut();
        let mut wire = 0;
        let mut left = n;
        let mut i = 0;
        while left > 0 {
            let len = left.min(MAX_PLAINTEXT);
            wire = i * slot + sealer.seal(content::APPLICATION_DATA, &mut buf[i * slot..], len);
            left -= len;
            i += 1;
        }
        (Ok((n as u64, wire)), buf)
    }

    /// Binary upload into `file` from `offset` until the client's
    /// close_notify (answered with ours). Returns the bytes written.
    pub(crate) async fn recv_file(
        &self,
        ctx: &mut TransferCtx<'_>,
        conn: &DataConn,
        file: FdRef,
        offset: u64,
    ) -> Result<u64, SpliceError> {
        let mut buf = ctx.tls_buffers.take(0);
        buf.clear();
        let mut pos = offset;
        loop {
            let (ranges, used, closed) =
                self.open_records(&mut buf).map_err(SpliceError::Source)?;
            if !ranges.is_empty() {
                let (written, b) = write_ranges(&file, buf, ranges, pos).await;
                buf = b;
                let n = written.map_err(SpliceError::Sink)?;
                pos += n;
                ctx.encrypted(Dir::Upload, n);
                ctx.progress.set(pos - offset);
            }
            buf.drain(..used);
            if closed {
                ctx.tls_buffers.give(buf);
                // The upload is complete: our close_notify is a courtesy
                // (a client that already closed makes it fail).
                let _ = self.close(conn).await;
                return Ok(pos - offset);
            }
            let (n, b) = recv_more(conn, buf).await;
            buf = b;
            n.map_err(SpliceError::Source)?;
        }
    }

    /// The next plaintext the client sent (ASCII uploads), or `None` after
    /// its close_notify. `buf` carries received bytes between calls.
    pub(crate) async fn recv_plain(
        &self,
        conn: &DataConn,
        buf: &mut Vec<u8>,
    ) -> io::Result<Option<Vec<u8>>> {
        loop {
            let (ranges, used, closed) = self.open_records(buf)?;
            let mut out = Vec::new();
            for r in ranges {
                out.extend_from_slice(&buf[r]);
            }
            buf.drain(..used);
            if !out.is_empty() {
                return Ok(Some(out));
            }
            if closed {
                let _ = self.close(conn).await;
                return Ok(None);
            }
            let (n, b) = recv_more(conn, std::mem::take(buf)).await;
            *buf = b;
            n?;
        }
    }

    /// Opens the complete records at the front of `buf` in place: the
    /// plaintext ranges of the data records, the bytes consumed, and
    /// whether close_notify came (nothing after it is looked at).
    fn open_records(&self, buf: &mut [u8]) -> io::Result<(Vec<Range<usize>>, usize, bool)> {
        let mut opener = self.opener.borrow_mut();
        let mut at = 0;
        let mut ranges = Vec::new();
        while let Some(len) = record::record_len(&buf[at..])? {
            if at + len > buf.len() {
                break;
            }
            let o = opener.open(&mut buf[at..at + len])?;
            let body = at + o.plain.start..at + o.plain.end;
            at += len;
            match o.typ {
                content::APPLICATION_DATA => {
                    if !body.is_empty() {
                        ranges.push(body)
                    }
                }
                content::ALERT if buf[body.clone()] == CLOSE_NOTIFY => return Ok((ranges, at, true)),
                content::ALERT => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("TLS alert {:?} from the client", &buf[body]),
                    ))
                }
                t => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("TLS record of type {t} on a data connection (post-handshake messages are not supported there)"),
                    ))
                }
            }
        }
        Ok((ranges, at, false))
    }
}

/// Receives more into `buf`'s spare room (keeping at least one record's
/// worth); end of stream without close_notify is an error: the transfer
/// was cut.
async fn recv_more(conn: &DataConn, mut buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
    if buf.capacity() - buf.len() < MAX_PLAINTEXT + 2048 + 5 {
        buf.reserve(RECV_BUF.max(MAX_PLAINTEXT + 2048 + 5));
    }
    let (res, buf) = sys::recv(conn.fd(), buf).await;
    let res = match res {
        Ok(0) => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the data connection ended without TLS close_notify (cut short)",
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    (res, buf)
}

/// Writes `ranges` of `buf` to `file` at `pos`, all of them (a short
/// write continues where it stopped). Returns the bytes written.
async fn write_ranges(
    file: &FdRef,
    mut buf: Vec<u8>,
    mut ranges: Vec<Range<usize>>,
    pos: u64,
) -> (io::Result<u64>, Vec<u8>) {
    let mut written = 0u64;
    while !ranges.is_empty() {
        let (res, b) = sys::write_vectored_at(file.clone(), buf, &ranges, pos + written).await;
        buf = b;
        let mut n = match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => n as usize,
            Err(e) => return (Err(e), buf),
        };
        written += n as u64;
        while n > 0 {
            let r = &mut ranges[0];
            let take = n.min(r.len());
            r.start += take;
            n -= take;
            if r.start >= r.end {
                ranges.remove(0);
            }
        }
    }
    (Ok(written), buf)
}

/// Sends `buf[..len]` (all of it) and gives the buffer back.
async fn send_prefix(
    fd: FdRef,
    mut buf: Vec<u8>,
    len: usize,
    on_sent: impl Fn(usize),
) -> (io::Result<()>, Vec<u8>) {
    let mut from = 0;
    while from < len {
        let (res, b) = sys::send_range(fd.clone(), buf, from..len).await;
        buf = b;
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => {
                from += n as usize;
                on_sent(from);
            }
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

/// The plaintext bytes of a sealed batch (`plain` bytes in records of
/// `slot` bytes each, `wire` bytes in all) whose first `sent` bytes the
/// socket has taken: the whole records among them. Every record but the
/// last fills its slot, so record `i` ends at `(i + 1) * slot`.
fn records_sent(sent: usize, wire: usize, slot: usize, plain: u64) -> u64 {
    if sent >= wire {
        plain
    } else {
        ((sent / slot * MAX_PLAINTEXT) as u64).min(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_its_whole_records() {
        // Three records of a 100-byte slot (two full, one of 5 bytes of
        // plaintext in 30 wire bytes): 2 * MAX_PLAINTEXT + 5 in all.
        let (slot, wire) = (100, 230);
        let plain = 2 * MAX_PLAINTEXT as u64 + 5;
        let full = MAX_PLAINTEXT as u64;
        for (sent, want) in [
            (0, 0),
            (99, 0),
            (100, full),
            (199, full),
            (200, 2 * full),
            (229, 2 * full),
            (230, plain),
        ] {
            assert_eq!(records_sent(sent, wire, slot, plain), want, "{sent}");
        }
        // One short record: nothing until all of it is sent.
        assert_eq!(records_sent(20, 40, 100, 7), 0);
        assert_eq!(records_sent(40, 40, 100, 7), 7);
    }
}
