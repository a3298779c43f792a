//! How a transfer ended, and the replies that says (RFC 959 section 4.2):
//! pure, so every outcome's reply code and text is table-tested here and
//! the driver only sends them.

use crate::proto::codes::*;
use crate::proto::Reply;

/// What a transfer moves: decides the error text of a local failure and
/// the xferlog direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RETR: a file from the server.
    Download,
    /// STOR, APPE, STOU: a file to the server.
    Upload,
    /// LIST, NLST, MLSD: a listing from the server.
    Listing,
}

/// Why a transfer that had its data connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The disk (or the account's quota) is full: ENOSPC or EDQUOT.
    NoSpace,
    /// Reading or writing the local file failed otherwise.
    Local,
    /// The server ran out of file descriptors or memory mid-transfer (a
    /// pipe it could not make, say): 451, which RFC 959 section 4.2
    /// makes transient, so a mirror tool tries the file again.
    Exhausted,
    /// The data connection broke (reset, closed early).
    Network,
    /// No progress on the data connection within `--data-timeout`.
    Timeout,
}

/// How a transfer that had its data connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every byte moved (an upload: and the file is in place).
    Complete,
    /// It failed, for this reason.
    Failed(Failure),
    /// The client sent ABOR.
    Aborted,
    /// The control connection closed: nobody is left to reply to.
    ControlClosed,
    /// Cut at the end of the shutdown grace period.
    ShutDown,
}

/// What the driver sends after a transfer, and whether it then closes the
/// control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Final {
    pub replies: Vec<Reply>,
    pub close: bool,
}

impl Final {
    /// These replies, and the session goes on.
    pub(crate) fn send(replies: Vec<Reply>) -> Final {
        Final {
            replies,
            close: false,
        }
    }

    /// No reply (the control connection is gone): the session ends.
    pub(crate) fn close() -> Final {
        Final {
            replies: Vec::new(),
            close: true,
        }
    }
}

/// The reply when the data connection could not be made (PASV listener
/// got nothing, PORT target refused...): 425.
pub(crate) fn no_connection() -> Reply {
    Reply::new(CANT_OPEN_DATA, "Failed to establish connection.")
}

/// The replies to an ABOR that interrupted a transfer: 426 for the
/// transfer, then 226 for the ABOR itself (RFC 959 section 4.1.3).
pub(crate) fn aborted() -> Vec<Reply> {
    vec![
        Reply::new(TRANSFER_ABORTED, "Transfer aborted."),
        Reply::new(CLOSING_DATA, "ABOR successful."),
    ]
}

/// The goodbye of a graceful shutdown: 421, then the connection closes.
pub(crate) fn shutting_down() -> Reply {
    Reply::new(
        SERVICE_NOT_AVAILABLE,
        "Server shutting down, closing control connection.",
    )
}

/// The 226 of a transfer that completed with something to say (a listing
/// cut short by `--list-max-entries`): the note, then "Transfer complete.".
pub(crate) fn complete_noting(note: &str) -> Reply {
    Reply::new(CLOSING_DATA, format!("{note}\nTransfer complete."))
}

/// The final replies of a `direction` transfer that `ended` so.
pub(crate) fn final_replies(direction: Direction, ended: Ended) -> Final {
    match ended {
        Ended::Complete => Final::send(vec![Reply::new(CLOSING_DATA, "Transfer complete.")]),
        Ended::Failed(why) => Final::send(vec![failed(direction, why)]),
        Ended::Aborted => Final::send(aborted()),
        Ended::ControlClosed => Final::close(),
        Ended::ShutDown => Final {
            replies: vec![
                Reply::new(TRANSFER_ABORTED, "Server shutting down; transfer aborted."),
                shutting_down(),
            ],
            close: true,
        },
    }
}

fn failed(direction: Direction, why: Failure) -> Reply {
    match why {
        Failure::NoSpace => Reply::new(
            INSUFFICIENT_STORAGE,
            "Insufficient storage space; transfer aborted.",
        ),
        Failure::Local if direction == Direction::Download => {
            Reply::new(LOCAL_ERROR, "Failure reading local file.")
        }
        Failure::Local if direction == Direction::Listing => {
            Reply::new(LOCAL_ERROR, "Failure reading local directory.")
        }
        Failure::Local => Reply::new(LOCAL_ERROR, "Failure writing local file."),
        Failure::Exhausted => Reply::new(
            LOCAL_ERROR,
            "Server out of resources; transfer aborted; try again later.",
        ),
        Failure::Network => Reply::new(TRANSFER_ABORTED, "Connection closed; transfer aborted."),
        Failure::Timeout => Reply::new(
            TRANSFER_ABORTED,
            "Transfer aborted: no progress on the data connection within --data-timeout.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;

    fn codes(f: &Final) -> Vec<u16> {
        f.replies.iter().map(|r| r.code).collect()
    }

    #[test]
    fn every_outcome_has_its_replies() {
        let table: &[(Direction, Ended, &[u16], bool, &str)] = &[
            (
                Download,
                Ended::Complete,
                &[226],
                false,
                "Transfer complete.",
            ),
            (Upload, Ended::Complete, &[226], false, "Transfer complete."),
            (
                Listing,
                Ended::Complete,
                &[226],
                false,
                "Transfer complete.",
            ),
            (
                Upload,
                Ended::Failed(Failure::NoSpace),
                &[452],
                false,
                "Insufficient storage space",
            ),
            (
                Download,
                Ended::Failed(Failure::Local),
                &[451],
                false,
                "Failure reading local file.",
            ),
            (
                Upload,
                Ended::Failed(Failure::Local),
                &[451],
                false,
                "Failure writing local file.",
            ),
            (
                Listing,
                Ended::Failed(Failure::Local),
                &[451],
                false,
                "Failure reading local directory.",
            ),
            (
                Download,
                Ended::Failed(Failure::Exhausted),
                &[451],
                false,
                "Server out of resources; transfer aborted; try again later.",
            ),
            (
                Upload,
                Ended::Failed(Failure::Exhausted),
                &[451],
                false,
                "try again later",
            ),
            (
                Download,
                Ended::Failed(Failure::Network),
                &[426],
                false,
                "Connection closed",
            ),
            (
                Upload,
                Ended::Failed(Failure::Timeout),
                &[426],
                false,
                "--data-timeout",
            ),
            (
                Download,
                Ended::Aborted,
                &[426, 226],
                false,
                "Transfer aborted.",
            ),
            (Upload, Ended::ControlClosed, &[], true, ""),
            (
                Download,
                Ended::ShutDown,
                &[426, 421],
                true,
                "Server shutting down; transfer aborted.",
            ),
        ];
        for (dir, ended, want, close, text) in table {
            let f = final_replies(*dir, *ended);
            assert_eq!(codes(&f), *want, "{dir:?} {ended:?}");
            assert_eq!(f.close, *close, "{dir:?} {ended:?}");
            if let Some(first) = f.replies.first() {
                let got = String::from_utf8_lossy(&first.text);
                assert!(got.contains(text), "{dir:?} {ended:?}: {got}");
            }
        }
    }

    #[test]
    fn abor_and_no_connection() {
        let a = aborted();
        assert_eq!(a[1].text, b"ABOR successful.");
        assert_eq!(no_connection().code, 425);
        assert_eq!(shutting_down().code, 421);
        let noted = complete_noting("Listing cut at 5 entries (--list-max-entries).");
        assert_eq!(
            noted.to_bytes(),
            b"226-Listing cut at 5 entries (--list-max-entries).\r\n226 Transfer complete.\r\n"
        );
    }
}
