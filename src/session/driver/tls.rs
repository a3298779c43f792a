//! FTPS on the control connection (AUTH TLS, implicit listeners) and on
//! data connections (PROT P): the handshakes, within their deadlines, and
//! the session-reuse check that binds a data connection to its control
//! session.

use std::time::Instant;

use super::control::Raced;
use super::transfer::Job;
use super::{Conn, Flow};
use crate::data::tls::{DataTls, Path};
use crate::data::DataConn;
use crate::engine::sys::FdRef;
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::session::outcome::{self, Final};
use crate::tls::binding::Token;
use crate::tls::handshake;

impl Conn {
    /// AUTH TLS: the 234 goes out in clear, then the handshake. Anything
    /// the client sent after AUTH TLS in clear is dropped, never read as a
    /// command. A failed handshake closes the session.
    pub(super) async fn start_tls(&mut self, reply: Reply) -> Flow {
        if self.reply(reply).await == Flow::Close {
            return Flow::Close;
        }
        let dropped = self.reader.discard_buffered() + self.pending.len();
        self.pending.clear();
        if dropped > 0 {
            tracing::warn!("dropped {dropped} byte(s) or command(s) sent in clear after AUTH TLS");
        }
        if self.begin_tls().await {
            Flow::Continue
        } else {
            Flow::Close
        }
    }

    /// Runs the control connection's TLS handshake, bounded by the
    /// session's login deadline (a slow or garbage handshake is a client
    /// that does not log in). True if the session goes on in TLS.
    pub(super) async fn begin_tls(&mut self) -> bool {
        let Some(tls) = self.ctx.tls.clone() else {
            return false;
        };
        let token = *self.tls_token.get_or_insert_with(Token::random);
        let mut conn = match tls.control_connection(token) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("TLS: cannot start a connection: {e}");
                return false;
            }
        };
        let (deadline, _) = self.session.deadline(Instant::now());
        let sock = self.sock.clone() as FdRef;
        let hs = handshake::run(&mut conn, &sock, &[], false);
        match tokio::time::timeout_at(deadline.into(), hs).await {
            Ok(Ok(())) => {
                tracing::info!(
                    "control connection in TLS: {:?} {:?}{}",
                    conn.protocol_version()
                        .unwrap_or(rustls::ProtocolVersion::Unknown(0)),
                    conn.negotiated_cipher_suite().map(|s| s.suite()),
                    if self.implicit { " (implicit)" } else { "" }
                );
                self.reader.start_tls(conn);
                self.session.tls_started(self.implicit);
                true
            }
            Ok(Err(e)) => {
                tracing::info!("control TLS handshake failed: {e}");
                false
            }
            Err(_) => {
                tracing::info!("control TLS handshake not done within --login-timeout; closing");
                false
            }
        }
    }

    /// PROT P: the data connection's handshake (after the 150), bounded by
    /// `--data-timeout`, then the session-reuse check. On failure the data
    /// connection is closed and the replies to send (522; ABOR's 426 +
    /// 226) are returned unsent, for the caller to send once it has taken
    /// back what the transfer did (an upload's new file).
    pub(super) async fn secure_data(
        &mut self,
        mut conn: DataConn,
        job: &Job,
    ) -> Result<DataConn, Final> {
        let Some(tls) = self.ctx.tls.clone() else {
            return Err(refuse_data("TLS is not configured."));
        };
        let token = *self.tls_token.get_or_insert_with(Token::random);
        let download = !matches!(job, Job::Upload { .. });
        let mut server = match tls.data_connection(token, download) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("TLS: cannot start a data connection: {e}");
                return Err(refuse_data("TLS negotiation failed."));
            }
        };
        let fd = conn.fd();
        let timeout = self.ctx.config.data_timeout;
        let raced = {
            let hs = std::pin::pin!(async {
                tokio::time::timeout(timeout, handshake::run(&mut server, &fd, &[], true)).await
            });
            self.race(hs).await
        };
        let done = match raced {
            Raced::Done(r) => r,
            Raced::Aborted => {
                conn.abort();
                tracing::info!("transfer aborted by the client during the data TLS handshake");
                return Err(Final::send(outcome::aborted()));
            }
            Raced::ControlClosed => return Err(Final::close()),
            Raced::ShutDown => {
                return Err(Final {
                    replies: vec![outcome::shutting_down()],
                    close: true,
                });
            }
        };
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::info!("data connection TLS handshake failed: {e}");
                return Err(refuse_data(
                    "TLS negotiation on the data connection failed.",
                ));
            }
            Err(_) => {
                tracing::info!("data connection TLS handshake not done within --data-timeout");
                return Err(refuse_data(
                    "TLS negotiation on the data connection timed out.",
                ));
            }
        }
        if !tls.resumed_own_session(&server, token) {
            tracing::warn!(
                peer = %conn.peer,
                "data connection refused: its TLS handshake did not resume this session's control connection TLS session ({:?})",
                server.handshake_kind()
            );
            return Err(refuse_data(
                "TLS session reuse required: the data connection must resume the control connection's TLS session.",
            ));
        }
        let file = matches!(job, Job::File { .. });
        match DataTls::from_handshake(server, &fd, &tls.ktls, file) {
            Ok(d) => {
                let how = format!(
                    "{}, {}",
                    d.description,
                    if d.path == Path::Kernel {
                        "sent by the kernel (kTLS, zero-copy)"
                    } else {
                        "encrypted in userspace (in place)"
                    }
                );
                tracing::debug!("data connection in TLS: {how}");
                self.last_data_tls = Some(how);
                conn.tls = Some(Box::new(d));
                Ok(conn)
            }
            Err(e) => {
                tracing::warn!("data connection TLS: {e}");
                Err(refuse_data(
                    "TLS negotiation on the data connection failed.",
                ))
            }
        }
    }
}

/// 522 for a data connection whose TLS failed (it is closed).
fn refuse_data(text: &str) -> Final {
    Final::send(vec![Reply::new(DATA_TLS_FAILED, text)])
}
