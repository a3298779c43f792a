//! The FTP wire format with no I/O: the control-line reader ([`line`](mod@line)),
//! the command parser ([`command`]), reply codes and encoding ([`reply`]),
//! and the PORT/EPRT/PASV/EPSV address codecs ([`addr`]) that both the
//! server and the load generator use.
//!
//! Everything here takes bytes and values and returns values: no socket, no
//! clock, no filesystem, so it is tested with tables and benchmarked alone.

pub mod addr;
pub mod command;
pub mod error;
pub mod line;
pub mod reply;

pub use command::{parse, Command, EpsvArg, ListArgs, Opts, ProtLevel, TransferType};
pub use error::ParseError;
pub use line::{LineEvent, LineReader};
pub use reply::{codes, Reply};

/// Longest control line accepted (bytes, without CRLF).
pub const MAX_LINE: usize = 4096;
