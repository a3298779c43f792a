//! The FTP command parser: one control line in, one typed [`Command`] (or a
//! [`ParseError`] that already knows its reply) out.
//!
//! The parser is pure: it sees one line with CRLF and Telnet sequences
//! already removed by [`crate::proto::line`], and decides only syntax.
//! Whether a command is allowed in the current session state is the
//! session's business.

use super::reply::{codes, Reply};

/// Why a control line could not be turned into a [`Command`]. Each variant
/// maps to exactly one reply code via [`ParseError::reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A blank line.
    Empty,
    /// An unknown verb (uppercased, truncated to 16 chars for logging).
    Unknown(String),
    /// A verb defined by some RFC that this server does not implement.
    NotImplemented(&'static str),
    /// A verb that needs an argument got none; the payload is the verb.
    MissingArgument(&'static str),
    /// A syntax error in the argument; the payload is a short reason.
    BadArgument(&'static str),
    /// A valid parameter this server does not support (TYPE E, MODE B).
    Unsupported(&'static str),
    /// EPRT/EPSV named a network protocol other than 1 (IPv4) or 2 (IPv6).
    NetworkProtocol,
}

impl ParseError {
    /// The reply the server sends for this error. The texts never echo
    /// client bytes back, so a hostile line cannot shape the reply.
    pub fn reply(&self) -> Reply {
        match self {
            ParseError::Empty => Reply::new(codes::SYNTAX_ERROR, "Empty command."),
            ParseError::Unknown(_) => Reply::new(codes::SYNTAX_ERROR, "Unknown command."),
            ParseError::NotImplemented(verb) => {
                Reply::new(codes::NOT_IMPLEMENTED, format!("{verb} not implemented."))
            }
            ParseError::MissingArgument(verb) => Reply::new(
                codes::SYNTAX_ERROR_ARGS,
                format!("{verb} needs an argument."),
            ),
            ParseError::BadArgument(reason) => Reply::new(
                codes::SYNTAX_ERROR_ARGS,
                format!("Syntax error in argument: {reason}."),
            ),
            ParseError::Unsupported(what) => Reply::new(
                codes::NOT_IMPLEMENTED_PARAM,
                format!("{what} not supported."),
            ),
            // The exact text RFC 2428 section 2 gives; clients may match it.
            ParseError::NetworkProtocol => Reply::new(
                codes::NETWORK_PROTOCOL_NOT_SUPPORTED,
                "Network protocol not supported, use (1,2)",
            ),
        }
    }
}
