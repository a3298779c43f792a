//! Why a control line could not be turned into a command: one error type
//! that the command parser ([`super::command`]) and the address codecs
//! ([`super::addr`]) share, each variant knowing its reply (RFC 959 section
//! 4.2 codes 500/501/502/504, RFC 2428 section 2 code 522).

use super::reply::{codes, Reply};

/// Why a control line could not be turned into a [`super::Command`]. Each variant
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
