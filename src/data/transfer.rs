//! Moving bytes over an established data connection.
//!
//! - binary RETR and uploads: [`crate::engine::splice`], zero-copy;
//! - ASCII RETR: io_uring reads into a buffer, LF -> CRLF (RFC 959 NVT
//!   line ends), io_uring sends;
//! - listings: built in memory, sent with io_uring.
//!
//! A transfer has no deadline — a slow client on a large file is normal —
//! but it must not hang on a dead one: [`watchdog`] watches the socket's
//! TCP counters and fires when nothing moved for `--data-timeout`.

use std::io;
use std::time::{Duration, Instant};

use super::DataConn;
use crate::engine::splice::{self, Progress, SpliceError, TransferCtx};
use crate::engine::sys::{self, FdRef};
use crate::metrics::counters::{BytePath, Dir};

/// How a transfer failed, in the terms of its reply.
#[derive(Debug)]
pub(crate) enum TransferError {
    /// The data connection broke (client gone, reset): 426.
    Network(io::Error),
    /// Reading or writing the file failed: 451 (452 for a full disk).
    Local(io::Error),
    /// The server ran out of file descriptors or memory on either side (a
    /// pipe, a socket buffer; see [`crate::vfs::VfsError::exhausts`]):
    /// 451, transient.
    Exhausted(io::Error),
    /// No progress for `--data-timeout`: 426.
    Timeout,
}

impl TransferError {
    /// `e` as [`TransferError::Exhausted`] when it says the server is out
    /// of descriptors or memory, else as `side` (Local or Network).
    fn of(e: io::Error, side: fn(io::Error) -> TransferError) -> TransferError {
        if crate::vfs::VfsError::exhausts(&e) {
            TransferError::Exhausted(e)
        } else {
            side(e)
        }
    }
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::Network(e) => write!(f, "data connection: {e}"),
            TransferError::Local(e) => write!(f, "the file: {e}"),
            TransferError::Exhausted(e) => {
                write!(f, "the server is out of file descriptors or memory: {e}")
            }
            TransferError::Timeout => f.write_str("no progress on the data connection"),
        }
    }
}

/// One reading of the watchdog: TCP_INFO's (bytes acknowledged, bytes
/// received), `None` when it failed, and an upload's own bytes moved.
type Reading = (Option<(u64, u64)>, Option<u64>);

/// Resolves when the TCP connection on `fd` has made no progress (bytes
/// acknowledged by the peer or received from it) and, for an upload, the
/// transfer has moved no byte itself (`moved`: a paced upload works
/// through what sits in its receive buffer, with the client's window shut
/// meanwhile) for `timeout`, read
/// every quarter of `timeout` (50 ms to 1 s): it fires a tick or two after
/// the last progress it saw plus `timeout` (a connection still growing
/// its window in the first tick counts as progress there).
///
/// The first reading is taken at the first tick, not at the start: most
/// transfers end before it and cost no getsockopt at all. It counts as
/// progress, so the watchdog never fires early; a transfer stalled from
/// its start is cut at `timeout` plus one tick, the lateness any stall
/// may have.
pub(crate) async fn watchdog(fd: FdRef, timeout: Duration, moved: Option<Progress>) {
    let tick = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    // None until the first reading; a reading that fails is Some((None, _)).
    let mut last: Option<Reading> = None;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let now = Some((
            sys::tcp_progress(fd.as_fd()).ok(),
            moved.as_ref().map(Progress::get),
        ));
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= timeout {
            return;
        }
    }
}

/// Runs `fut` on `conn` under the no-progress watchdog; `moved` is an
/// upload's own count of bytes moved. Not a download's: its bytes move
/// into the socket's send buffer, which goes on taking a paced download's
/// chunks (up to megabytes) after the reader has stopped.
pub(crate) async fn guarded<T>(
    conn: &DataConn,
    timeout: Duration,
    moved: Option<Progress>,
    fut: impl std::future::Future<Output = Result<T, TransferError>>,
) -> Result<T, TransferError> {
    tokio::select! {
        r = fut => r,
        _ = watchdog(conn.fd(), timeout, moved) => {
            conn.abort();
            Err(TransferError::Timeout)
        }
    }
}

/// Size of the buffer ASCII transfers read the file with.
const ASCII_CHUNK: usize = 64 * 1024;

/// One transfer over an established data connection: the connection and
/// the context its byte-moving loops share (pipes, counters, progress,
/// pacer). Each method moves one kind of payload.
pub(crate) struct Channel<'a> {
    pub conn: &'a DataConn,
    pub ctx: TransferCtx<'a>,
}

impl Channel<'_> {
    /// Binary RETR: `len` bytes of `file` from `offset`, zero-copy.
    pub(crate) async fn send_binary(
        &mut self,
        file: FdRef,
        offset: u64,
        len: u64,
    ) -> Result<u64, TransferError> {
        let sent = match &self.conn.tls {
            Some(tls) => {
                tls.send_file(&mut self.ctx, self.conn, file, offset, len)
                    .await
            }
            None => splice::send_file(&mut self.ctx, file, offset, len, self.conn.fd(), true).await,
        };
        sent.map_err(|e| match e {
            SpliceError::Source(e) => TransferError::of(e, TransferError::Local),
            SpliceError::Sink(e) => TransferError::of(e, TransferError::Network),
        })
    }

    /// Binary upload: everything the client sends until it closes the data
    /// connection, written into `file` from `offset`, zero-copy.
    pub(crate) async fn recv_binary(
        &mut self,
        file: FdRef,
        offset: u64,
    ) -> Result<u64, TransferError> {
        let got = match &self.conn.tls {
            Some(tls) => tls.recv_file(&mut self.ctx, self.conn, file, offset).await,
            None => splice::recv_file(&mut self.ctx, self.conn.fd(), file, offset).await,
        };
        got.map_err(|e| match e {
            SpliceError::Source(e) => TransferError::of(e, TransferError::Network),
            SpliceError::Sink(e) => TransferError::of(e, TransferError::Local),
        })
    }

    /// ASCII upload: CRLF from the wire becomes LF in the file. Returns the
    /// bytes written to the file.
    pub(crate) async fn recv_ascii(
        &mut self,
        file: FdRef,
        offset: u64,
    ) -> Result<u64, TransferError> {
        // TCP urgent data is data here too (a recv would skip the byte at
        // the urgent mark), as in binary uploads (splice::recv_file).
        rustix::net::sockopt::set_socket_oobinline(self.conn.fd(), true)
            .map_err(|e| TransferError::Network(e.into()))?;
        let mut pos = offset;
        let mut pending_cr = false;
        let mut buf = Vec::with_capacity(ASCII_CHUNK);
        // Under TLS: received records not yet opened.
        let mut records = Vec::new();
        loop {
            buf.clear();
            let n = match &self.conn.tls {
                Some(tls) => match tls.recv_plain(self.conn, &mut records).await {
                    Ok(Some(plain)) => {
                        buf = plain;
                        buf.len()
                    }
                    Ok(None) => 0,
                    Err(e) => return Err(TransferError::Network(e)),
                },
                None => {
                    let (res, b) = sys::recv(self.conn.fd(), buf).await;
                    buf = b;
                    res.map_err(TransferError::Network)? as usize
                }
            };
            let mut out = Vec::with_capacity(n + 1);
            if n == 0 {
                if pending_cr {
                    out.push(b'\r');
                }
            } else {
                crlf_to_lf(&buf[..n], &mut pending_cr, &mut out);
            }
            let mut from = 0;
            while from < out.len() {
                let (res, o) = sys::write_at(file.clone(), out, from, pos).await;
                out = o;
                let w = res.map_err(TransferError::Local)? as usize;
                if w == 0 {
                    return Err(TransferError::Local(io::ErrorKind::WriteZero.into()));
                }
                from += w;
                pos += w as u64;
            }
            self.ctx.copied(Dir::Upload, n as u64);
            self.ctx.progress.set(pos - offset);
            if n == 0 {
                return Ok(pos - offset);
            }
        }
    }

    /// ASCII RETR: the file's bytes `[offset, end)` (`end`: its size when
    /// opened) with bare LF turned into CRLF. Returns the bytes of the
    /// file read (what REST offsets count). As for a binary RETR
    /// ([`splice::send_file`]), a file that grows meanwhile is sent as
    /// long as it was, and one that shrinks is an error: the client must
    /// not take a short copy for the whole file.
    pub(crate) async fn send_ascii(
        &mut self,
        file: FdRef,
        offset: u64,
        end: u64,
    ) -> Result<u64, TransferError> {
        let mut pos = offset;
        let chunk = splice::paced_chunk(&self.ctx.pacer, ASCII_CHUNK as u32) as usize;
        let mut buf = Vec::with_capacity(chunk);
        let mut prev_cr = false;
        loop {
            if pos >= end {
                self.close().await?;
                return Ok(pos - offset);
            }
            buf.clear();
            let (res, b) = sys::read_at(file.clone(), buf, pos).await;
            buf = b;
            let n = res.map_err(TransferError::Local)? as usize;
            if n == 0 {
                return Err(TransferError::Local(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "file shrank during the transfer ({} of {} bytes sent)",
                        pos - offset,
                        end - offset
                    ),
                )));
            }
            // A file that grew: only what it held when opened.
            let n = n.min((end - pos) as usize);
            let mut out = Vec::with_capacity(n + n / 8 + 16);
            lf_to_crlf(&buf[..n], &mut prev_cr, &mut out);
            let wire = out.len() as u64;
            self.write(out).await?;
            self.ctx.copied(Dir::Download, wire);
            pos += n as u64;
            self.ctx.progress.set(pos - offset);
            splice::pace_copied(&mut self.ctx.pacer, wire).await;
        }
    }

    /// Sends bytes from memory (a listing, or a chunk of one).
    pub(crate) async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<u64, TransferError> {
        let n = bytes.len() as u64;
        if n == 0 {
            return Ok(0);
        }
        self.write(bytes).await?;
        self.ctx.landed(Dir::Listing, BytePath::Copied, n);
        Ok(n)
    }

    /// Sends bytes of a copying transfer (listing, ASCII): as they are, or
    /// as TLS records.
    async fn write(&self, bytes: Vec<u8>) -> Result<(), TransferError> {
        let r = match &self.conn.tls {
            Some(tls) => tls.send(self.conn, bytes).await,
            None => self.conn.write_all(bytes).await,
        };
        r.map_err(TransferError::Network)
    }

    /// The end of a download under TLS: close_notify (nothing in plain
    /// FTP, where closing the connection is the end). Listings call it
    /// after their last chunk.
    pub(crate) async fn close(&self) -> Result<(), TransferError> {
        match &self.conn.tls {
            Some(tls) => tls.close(self.conn).await.map_err(TransferError::Network),
            None => Ok(()),
        }
    }

    /// After a full disk (452), reads and discards what the client still
    /// sends, until it closes the data connection or `limit` has passed:
    /// a client cut off mid-upload sees a reset (broken pipe) before it can
    /// read the 452, one that may finish sending reads it.
    pub(crate) async fn discard_rest(&self, limit: Duration) {
        let drain = async {
            let mut buf = Vec::with_capacity(ASCII_CHUNK);
            loop {
                buf.clear();
                let (res, b) = sys::recv(self.conn.fd(), buf).await;
                buf = b;
                if !matches!(res, Ok(n) if n > 0) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limit, drain).await;
    }
}

/// Appends `input` to `out` with every CRLF turned into LF (a CR not
/// followed by LF is kept). `pending_cr` carries a CR that ended the
/// previous chunk, whose fate depends on the next byte.
pub(crate) fn crlf_to_lf(input: &[u8], pending_cr: &mut bool, out: &mut Vec<u8>) {
    let mut bytes = input;
    if *pending_cr {
        *pending_cr = false;
        if bytes.first() != Some(&b'\n') {
            out.push(b'\r');
        }
    }
    while let Some(i) = bytes.iter().position(|&b| b == b'\r') {
        out.extend_from_slice(&bytes[..i]);
        match bytes.get(i + 1) {
            Some(b'\n') => {
                bytes = &bytes[i + 1..];
                // the LF is copied with the next span
                out.push(b'\n');
                bytes = &bytes[1..];
            }
            Some(_) => {
                out.push(b'\r');
                bytes = &bytes[i + 1..];
            }
            None => {
                *pending_cr = true;
                return;
            }
        }
    }
    out.extend_from_slice(bytes);
}

/// Appends `input` to `out` with every LF not already preceded by CR
/// turned into CRLF. `prev_cr` carries "the last byte was CR" across
/// chunks so a CRLF split between two reads is not doubled.
pub(crate) fn lf_to_crlf(input: &[u8], prev_cr: &mut bool, out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' {
            let cr_before = if i == 0 {
                *prev_cr
            } else {
                input[i - 1] == b'\r'
            };
            if !cr_before {
                out.extend_from_slice(&input[start..i]);
                out.extend_from_slice(b"\r\n");
                start = i + 1;
            }
        }
    }
    out.extend_from_slice(&input[start..]);
    if let Some(&last) = input.last() {
        *prev_cr = last == b'\r';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = false;
        for c in chunks {
            lf_to_crlf(c, &mut prev, &mut out);
        }
        out
    }

    fn to_lf(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut cr = false;
        for c in chunks {
            crlf_to_lf(c, &mut cr, &mut out);
        }
        if cr {
            out.push(b'\r');
        }
        out
    }

    #[test]
    fn crlf_to_lf_table() {
        let table: &[(&[&[u8]], &[u8])] = &[
            (&[b"a\r\nb\r\n"], b"a\nb\n"),
            (&[b"a\nb"], b"a\nb"),
            (&[b"a\rb"], b"a\rb"),
            (&[b"a\r", b"\nb"], b"a\nb"),
            (&[b"a\r", b"b"], b"a\rb"),
            (&[b"a\r"], b"a\r"),
            (&[b"\r\r\n"], b"\r\n"),
            (&[b"\r", b"\r", b"\n"], b"\r\n"),
            (&[b""], b""),
        ];
        for (chunks, want) in table {
            assert_eq!(to_lf(chunks), *want, "{chunks:?}");
        }
        // Round trip: LF -> CRLF -> LF is the identity for LF text.
        let text = b"line one\nline two\n\nlast";
        let mut wire = Vec::new();
        lf_to_crlf(text, &mut false, &mut wire);
        assert_eq!(to_lf(&[&wire]), text);
    }

    #[test]
    fn lf_to_crlf_table() {
        let table: &[(&[&[u8]], &[u8])] = &[
            (&[b"a\nb\n"], b"a\r\nb\r\n"),
            (&[b"a\r\nb"], b"a\r\nb"),
            (&[b"\n\n"], b"\r\n\r\n"),
            (&[b""], b""),
            (&[b"no newline"], b"no newline"),
            (&[b"a\r", b"\nb"], b"a\r\nb"),
            (&[b"a", b"\nb"], b"a\r\nb"),
            (&[b"a\r", b"", b"x\n"], b"a\rx\r\n"),
            (&[b"\r\r\n"], b"\r\r\n"),
        ];
        for (chunks, want) in table {
            assert_eq!(convert(chunks), *want, "{chunks:?}");
        }
    }
}
