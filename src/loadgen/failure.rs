//! Why a request failed, and the short "kind" the report counts it under:
//! the reply code (`"550"`), or `timeout`, `reset`, `connect-refused`,
//! `closed`, `protocol`, `short-transfer`, `verify`, `io`.
//!
//! A failure also says whether the control connection can still be trusted
//! ([`Failure::fatal`]): after a negative reply it can, after a timeout or a
//! broken data channel the client drops it and logs in again.

use std::fmt;
use std::io;

use crate::proto::reply::codes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A negative (or unexpected) reply.
    Reply { code: u16, text: String },
    /// Nothing happened within `--timeout`; says what was awaited.
    Timeout(&'static str),
    /// The server reset (or aborted) a connection.
    Reset(String),
    /// Nothing listens at the target (or the data port).
    Refused,
    /// The server closed the control connection when a reply was due.
    Closed,
    /// Bytes that are not FTP (a bad reply, an unparsable 227/229).
    Protocol(String),
    /// The data connection ended before the file did.
    Short { got: u64, want: u64 },
    /// Wrong bytes (or too many) under `--verify`.
    Verify(String),
    /// Any other I/O error.
    Io(String),
}

impl Failure {
    /// The label errors are counted under.
    pub(crate) fn kind(&self) -> String {
        match self {
            Failure::Reply { code, .. } => code.to_string(),
            Failure::Timeout(_) => "timeout".into(),
            Failure::Reset(_) => "reset".into(),
            Failure::Refused => "connect-refused".into(),
            Failure::Closed => "closed".into(),
            Failure::Protocol(_) => "protocol".into(),
            Failure::Short { .. } => "short-transfer".into(),
            Failure::Verify(_) => "verify".into(),
            Failure::Io(_) => "io".into(),
        }
    }

    /// Must the session be dropped? A negative reply leaves the control
    /// connection in step (except 421, the server closing it); anything
    /// else may leave unread bytes or a half-open data channel behind.
    pub(crate) fn fatal(&self) -> bool {
        match self {
            Failure::Reply { code, .. } => *code == codes::SERVICE_NOT_AVAILABLE,
            _ => true,
        }
    }

    /// Classifies an I/O error from a connection.
    pub(crate) fn io(e: io::Error, what: &'static str) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Failure::Reset(format!("{what}: {e}")),
            io::ErrorKind::TimedOut => Failure::Timeout(what),
            io::ErrorKind::UnexpectedEof => Failure::Closed,
            _ => Failure::Io(format!("{what}: {e}")),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Reply { code, text } => {
                write!(f, "{code} {}", text.lines().next().unwrap_or(""))
            }
            Failure::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Failure::Reset(what)
            | Failure::Protocol(what)
            | Failure::Verify(what)
            | Failure::Io(what) => f.write_str(what),
            Failure::Refused => f.write_str("connection refused"),
            Failure::Closed => f.write_str("server closed the control connection"),
            Failure::Short { got, want } => {
                write!(f, "data connection ended after {got} of {want} bytes")
            }
        }
    }
}

/// Runs `fut` for at most `limit`; running out is a [`Failure::Timeout`]
/// naming `what`.
pub(crate) async fn within<T>(
    limit: std::time::Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_fatality() {
        let table = [
            (
                Failure::Reply {
                    code: 550,
                    text: "no".into(),
                },
                "550",
                false,
            ),
            (
                Failure::Reply {
                    code: 421,
                    text: "bye".into(),
                },
                "421",
                true,
            ),
            (Failure::Timeout("reply"), "timeout", true),
            (
                Failure::io(io::ErrorKind::ConnectionRefused.into(), "connect"),
                "connect-refused",
                true,
            ),
            (
                Failure::io(io::ErrorKind::ConnectionReset.into(), "data"),
                "reset",
                true,
            ),
            (
                Failure::io(io::ErrorKind::BrokenPipe.into(), "data"),
                "reset",
                true,
            ),
            (
                Failure::io(io::ErrorKind::UnexpectedEof.into(), "reply"),
                "closed",
                true,
            ),
            (Failure::Short { got: 1, want: 2 }, "short-transfer", true),
            (Failure::Protocol("x".into()), "protocol", true),
        ];
        for (f, kind, fatal) in table {
            assert_eq!((f.kind().as_str(), f.fatal()), (kind, fatal), "{f}");
        }
    }
}
