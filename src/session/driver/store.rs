//! STOR, APPE, STOU: set the file up first (so a refusal comes before any
//! data connection), receive socket → pipe → file, then keep or undo (see
//! [`crate::vfs::write::Upload`]: a failed upload never truncates or loses
//! what was on disk, except what a resumed upload gave up past its offset
//! when its data connection came up).

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::RecvFlags;
use socket2::Socket;

use super::transfer::{Job, Outcome, Transfer};
use super::{shown, Conn, Flow, Loud};
use crate::engine::sys::{self, FdRef};
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::session::outcome::{Direction, Ended};
use crate::session::step::DataMode;
use crate::vfs::write::{self, Upload};
use crate::vfs::{path, UploadKind};

/// How long an upload that replaces or extends a file on disk waits, once
/// its data connection has ended, for a sign that the client died with it
/// (see [`Conn::finish_upload`]). A dying process closes its sockets
/// microseconds apart; a live client is waiting for the 226 and sends
/// nothing, so this is the whole cost, paid only by such uploads.
const KILL_GRACE: Duration = Duration::from_millis(2);

/// True if the client has already closed (or reset) the control
/// connection: one non-blocking MSG_PEEK, no waiting.
fn control_closed(sock: &Socket) -> bool {
    let mut b = [0u8; 1];
    match rustix::net::recv(sock, &mut b, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
        Ok((0, _)) => true,
        Ok(_) => false,
        Err(Errno::AGAIN | Errno::INTR) => false,
        Err(_) => true,
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
            Err(e) => return self.refuse(&vpath, e).await,
        };
        let name = shown(&upload.name);
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
            cut: upload.cuts(),
        };
        let t = Transfer::new(verb, Direction::Upload, final_vpath, ascii, data);
        let outcome = self.run_transfer(&t, opening, job).await;
        // A plain upload received whole: its data connection closes when
        // this returns, after the 226 (or the commit's error) is out.
        let _uploaded = self.uploaded.take();
        if let Outcome::Connected {
            ended: Ended::Complete,
            bytes,
            ..
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
        self.ctx.metrics.upload_aborts.inc();
        if let Outcome::Connected { bytes, .. } = outcome {
            self.log_transfer(&t, bytes, false).await;
        }
        self.finish(&t, outcome).await
    }

    /// An upload whose data connection ended cleanly after `bytes`: the
    /// file is committed and the 226 goes out at once (the file is in place
    /// before it, so a client that checks right after sees it).
    ///
    /// In stream mode the end of the data connection *is* the end of the
    /// file, so a client killed mid-upload can look like one that finished.
    /// The rule: an upload whose client has already closed the control
    /// connection when the data connection ends is broken (deleted, or
    /// kept with --keep-partial) — a client that is alive waits for the
    /// 226. A killed process's sockets close within microseconds of each
    /// other, the data connection as often first (Linux runs the final
    /// closes of an exiting task last-opened first), so when the upload
    /// would replace or extend data already on disk the control
    /// connection gets [`KILL_GRACE`] to show it has closed too; a new
    /// file is committed at once (what a dead client leaves is a new
    /// partial file, nothing lost). TLS (close_notify) tells the two apart
    /// for certain.
    async fn finish_upload(&mut self, t: &Transfer, upload: Upload, bytes: u64) -> Flow {
        // Under TLS the upload only got here after the client's
        // close_notify: complete for certain, whatever the control
        // connection does next.
        let certain = self.session.protect_data();
        if !certain && !self.reader.closed && upload.touches_existing() {
            // Returns at once when anything (a FIN, a reset, a command)
            // is already there.
            let _ =
                tokio::time::timeout(KILL_GRACE, sys::poll_readable(self.sock.clone() as FdRef))
                    .await;
        }
        if !certain && (self.reader.closed || control_closed(&self.sock)) {
            tracing::info!(
                "{}: the client went away with its upload; treating it as broken",
                t.verb
            );
            wait_for_ops(&upload.file).await;
            upload.abort(self.ctx.config.keep_partial).await;
            self.ctx.metrics.upload_aborts.inc();
            self.log_transfer(t, bytes, false).await;
            return Flow::Close;
        }
        match upload.commit().await {
            Ok(()) => {
                self.ctx.metrics.upload_commits.inc();
                self.log_transfer(t, bytes, true).await;
                let flow = self
                    .reply(Reply::new(CLOSING_DATA, "Transfer complete."))
                    .await;
                // The file's and its directory's closes after the 226.
                drop(upload);
                flow
            }
            Err(e) => {
                self.ctx.metrics.upload_aborts.inc();
                let reply = Reply::new(e.reply_code(), e.reply_text().into_owned());
                self.log_refusal(
                    Loud::Warn,
                    reply.code,
                    Some(&t.path),
                    format_args!("finishing the upload failed: {e}"),
                );
                self.log_transfer(t, bytes, false).await;
                self.send_reply(reply).await
            }
        }
    }
}
