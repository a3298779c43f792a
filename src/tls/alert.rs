//! The answer a refused client of an implicit-FTPS listener gets: a fatal
//! TLS alert in place of the handshake.
//!
//! A client of an implicit listener (`--listen-implicit`, RFC 4217
//! section 4 calls it the "implicit" mode) speaks TLS from its first
//! byte, so the plain `421` that refuses an explicit client (deny list,
//! login ban, session limits, no fd left) reaches it as a malformed
//! record ("wrong version number"). A TLS alert record is what it can
//! read: RFC 8446 section 6 lets either side send a fatal alert at any
//! point of the handshake, and before the first key exchange the record
//! is in the clear (section 5.1). Clients report it by name (curl and
//! Python's ssl: "tlsv1 alert access denied"; GnuTLS, in lftp: "Access
//! was denied"). No handshake is made for it: a refusal costs what a
//! `421` costs, not a key exchange, which is what a refusal under load
//! must not spend.

use rustls::{AlertDescription, ContentType, ProtocolVersion};

/// AlertLevel `fatal` (RFC 8446 section 6: every alert but close_notify
/// and user_canceled is fatal in TLS 1.3, and TLS 1.2 peers close on it).
const FATAL: u8 = 2;

/// Why an implicit-FTPS client is refused, as a TLS alert names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `access_denied` (49): the client's address is denied (`--deny`,
    /// not in `--allow`) or banned (`--login-ban`).
    AccessDenied,
    /// `internal_error` (80): the server cannot take the session now
    /// (`--max-sessions`, `--max-per-ip`, no fd left). TLS has
    /// no "try again later"; this is the alert for a failure "unrelated
    /// to the peer or the correctness of this protocol".
    Unavailable,
}

/// The 7-byte TLS record of a fatal alert for `why`: content type alert
/// (21), legacy record version 0x0303 (RFC 8446 section 5.1: TLS 1.3
/// records carry TLS 1.2's number, which TLS 1.2 clients accept too),
/// length 2, level fatal, the description.
pub(crate) fn refusal_record(why: Refusal) -> [u8; 7] {
    let desc = match why {
        Refusal::AccessDenied => AlertDescription::AccessDenied,
        Refusal::Unavailable => AlertDescription::InternalError,
    };
    let [v0, v1] = u16::from(ProtocolVersion::TLSv1_2).to_be_bytes();
    [
        u8::from(ContentType::Alert),
        v0,
        v1,
        0,
        2,
        FATAL,
        u8::from(desc),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_fatal_alerts() {
        assert_eq!(
            refusal_record(Refusal::AccessDenied),
            [21, 3, 3, 0, 2, 2, 49]
        );
        assert_eq!(
            refusal_record(Refusal::Unavailable),
            [21, 3, 3, 0, 2, 2, 80]
        );
    }
}
