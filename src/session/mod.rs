//! One FTP session (control connection), split along the sans-I/O line.
//!
//! - [`state`]: the session state machine, with no I/O: command in,
//!   [`Step`] out; it owns the whole session state (login and account,
//!   working directory, transfer parameters, deadlines);
//! - [`step`]: the [`Step`]s it asks its driver to carry out;
//! - [`outcome`]: how a transfer ended and the replies that says, pure and
//!   table-tested;
//! - [`driver`]: runs a [`Session`] over a real control connection: reads
//!   commands, executes each step (one executor per family: login, data
//!   channel, retrieve, store, list, file management, status) and writes
//!   the replies.

pub(crate) mod driver;
pub(crate) mod outcome;
pub mod state;
pub mod step;

pub use state::{Login, Rules, Session, Wait};
pub use step::{DataMode, Step};
