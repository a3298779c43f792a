//! STOR, APPE, STOU: set the file up first (so a refusal comes before any
//! data connection), receive socket → pipe → file, then keep or undo (see
//! [`crate::vfs::write::Upload`]: a failed upload never truncates or loses
//! what was on disk).

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::transfer::{Job, Outcome, Transfer};
use super::{lossy, Conn, Flow};
use crate::engine::sys;
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::session::outcome::{Direction, Ended};
use crate::session::step::DataMode;
use crate::vfs::write::{self, Upload};
use crate::vfs::{path, UploadKind};

/// How long after an upload's data connection ends we watch the control
/// connection for the close that marks a killed client (measured here: the
/// second close arrives 65-120 µs after the first).
const KILLED_CLIENT_GRACE: Duration = Duration::from_millis(2);

/// True if the control connection is closed, or closes within
/// [`KILLED_CLIENT_GRACE`]; false at once if the client sends something.
async fn control_closes_soon(sock: &Socket) -> bool {
    let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
    let deadline = Instant::now() + KILLED_CLIENT_GRACE;
    loop {
        match sys::peek(fd) {
            sys::Peek::Closed => return true,
            sys::Peek::Data => return false,
            sys::Peek::Empty if Instant::now() >= deadline => return false,
            sys::Peek::Empty => tokio::time::sleep(Duration::from_micros(500)).await,
        }
    }
}

/// Waits (briefly) until no io_uring op holds `fd` any more.
async fn wait_for_ops(fd: &Rc<OwnedFd>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Rc::strong_count(fd) > 1 {
        if Instant::now() > deadline {
            tracing::warn!("a file operation is still running after 10 s; cleaning up anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl Conn {
    pub(super) async fn store(
        &mut self,
        verb: &'static str,
        vpath: Vec<u8>,
        kind: UploadKind,
        ascii: bool,
        data: DataMode,
    ) -> Flow {
        let atomic = self.ctx.config.atomic_uploads;
        let upload = match write::begin_upload(self.root(), &vpath, kind, atomic).await {
            Ok(u) => u,
            Err(e) => return self.refuse(verb, &vpath, e).await,
        };
        let name = lossy(&upload.name);
        let opening = if kind == UploadKind::Unique {
            // RFC 1123 4.1.2.9: the 150 reply names the file STOU made.
            Reply::new(FILE_STATUS_OK, format!("FILE: {name}"))
        } else {
            Reply::new(
                FILE_STATUS_OK,
                format!(
                    "Ok to send data ({} mode).",
                    if ascii { "ASCII" } else { "BINARY" }
                ),
            )
        };
        let final_vpath = path::join(&path::parent(&vpath), &upload.name);
        let job = Job::Upload {
            file: upload.file.clone(),
            offset: upload.offset,
        };
        let t = Transfer::new(verb, Direction::Upload, final_vpath, ascii, data);
        let outcome = self.run_transfer(&t, opening, job).await;
        if let Outcome::Connected {
            ended: Ended::Complete,
            bytes,
        } = outcome
        {
            return self.finish_upload(&t, upload, bytes).await;
        }
        // A write into the file may still be in flight (the aborted
        // transfer's future is gone, its io_uring op is not): cutting or
        // deleting the file before it lands would leave a hole or resurrect
        // bytes. Every op holds a reference to the file, so wait for ours to
        // be the last.
        wait_for_ops(&upload.file).await;
        upload.abort(self.ctx.config.keep_partial).await;
        if let Outcome::Connected { bytes, .. } = outcome {
            self.log_transfer(&t, bytes, false).await;
        }
        self.finish(&t, outcome).await
    }

    /// An upload whose data connection ended cleanly after `bytes`. In
    /// stream mode the end of the data connection *is* the end of the
    /// file, so a client killed mid-upload looks exactly like one that
    /// finished — except that its control connection closes too, a few
    /// tens of microseconds before or after the data connection (the kernel
    /// closes a dead process's sockets one by one). So before keeping the
    /// file we give the control connection [`KILLED_CLIENT_GRACE`] to show
    /// that; a client that is alive is waiting for our 226 and keeps it
    /// open. The file is in place before the 226 goes out, so a client that
    /// checks it right after sees it.
    async fn finish_upload(&mut self, t: &Transfer, upload: Upload, bytes: u64) -> Flow {
        if self.reader.closed || control_closes_soon(&self.sock).await {
            tracing::info!(
                "{}: the client went away with its upload; treating it as broken",
                t.verb
            );
            wait_for_ops(&upload.file).await;
            upload.abort(self.ctx.config.keep_partial).await;
            self.log_transfer(t, bytes, false).await;
            return Flow::Close;
        }
        let end = upload.offset + bytes;
        match upload.commit(end).await {
            Ok(()) => {
                self.log_transfer(t, bytes, true).await;
                self.reply(Reply::new(CLOSING_DATA, "Transfer complete."))
                    .await
            }
            Err(e) => {
                tracing::warn!(
                    "{} {}: finishing the upload failed: {e}",
                    t.verb,
                    lossy(&t.path)
                );
                self.log_transfer(t, bytes, false).await;
                self.reply(Reply::new(e.reply_code(), e.reply_text())).await
            }
        }
    }
}
