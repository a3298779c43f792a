//! What the session state machine asks of its driver: one [`Step`] per
//! command, and the [`DataMode`] a transfer's data connection is made in.
//! Plain values; the driver (`super::driver`) executes them.

use std::net::SocketAddr;

use crate::proto::Reply;
use crate::vfs::listing::ListFormat;
use crate::vfs::UploadKind;

/// How the next transfer's data connection will be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// Neither PASV/EPSV nor PORT/EPRT yet (or the last transfer used it).
    None,
    /// A passive listener is open (the driver holds it).
    Passive,
    /// Connect to this address (PORT/EPRT, already checked).
    Active(SocketAddr),
}

/// A listing to send: LIST, NLST and MLSD over the data connection, STAT
/// with a path over the control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The virtual path to list (joined with the working directory); its
    /// last component may be a wildcard pattern.
    pub path: Vec<u8>,
    /// The path as the client typed it (NLST prefixes names with it).
    pub shown: Option<Vec<u8>>,
    /// LIST, NLST or MLSD rendering.
    pub format: ListFormat,
    /// Dot-files too (`-a`, or `--show-dotfiles`).
    pub all: bool,
    /// Subdirectories too (`-R`).
    pub recursive: bool,
}

/// What the driver must do for a command. Steps that need I/O name what
/// to do it on (virtual paths, already joined with the working directory)
/// and, for transfers, the data mode the command consumed; the driver
/// reports back through the `Session` methods named on each variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this reply; nothing else.
    Reply(Reply),
    /// Send this reply and close the connection.
    Close(Reply),
    /// AUTH TLS: send this reply (234) in clear, then run the TLS
    /// handshake on the control connection and call
    /// `Session::tls_started`; a failed handshake closes the session.
    StartTls(Reply),
    /// Check credentials ([`crate::auth::login::decide`]), then call
    /// `Session::logged_in`, `Session::login_refused` or
    /// `Session::login_aborted`.
    CheckLogin {
        /// The USER name.
        user: String,
        /// The PASS bytes, as sent.
        password: Vec<u8>,
    },
    /// Open a passive listener and reply 227 (`extended`: 229), then call
    /// `Session::passive_opened`; or reply 425.
    OpenPassive {
        /// EPSV (229, RFC 2428) rather than PASV (227).
        extended: bool,
    },
    /// Check the directory exists under the root, then call
    /// `Session::cwd_changed` and reply 250; or reply 550.
    ChangeDir(Vec<u8>),
    /// SIZE of a file (213).
    Size(Vec<u8>),
    /// MDTM of a file (213).
    Mdtm(Vec<u8>),
    /// Send a file over the data connection, from `offset` (REST).
    Retr {
        /// The file's virtual path.
        path: Vec<u8>,
        /// Bytes of the file to skip (REST); 0 for the whole file.
        offset: u64,
        /// TYPE A is in effect: send line ends as CRLF.
        ascii: bool,
        /// How to make the data connection.
        data: DataMode,
    },
    /// Send a listing over the data connection.
    List {
        /// What to list and how.
        listing: Listing,
        /// How to make the data connection.
        data: DataMode,
    },
    /// Receive a file over the data connection (STOR, APPE, STOU).
    Store {
        /// The file's virtual path (for STOU, the name to make unique).
        path: Vec<u8>,
        /// STOR (with its REST offset), APPE or STOU.
        kind: UploadKind,
        /// TYPE A is in effect: store CRLF line ends as LF.
        ascii: bool,
        /// How to make the data connection.
        data: DataMode,
    },
    /// DELE.
    Delete(Vec<u8>),
    /// MKD.
    MakeDir(Vec<u8>),
    /// RMD.
    RemoveDir(Vec<u8>),
    /// RNFR: check the path exists (and, with `directory`, is a directory
    /// itself, not a symlink to one), then call `Session::rename_from` and
    /// reply 350.
    RenameFrom {
        /// The RNFR virtual path.
        path: Vec<u8>,
        /// The RNFR argument ended in `/` (or `/.`): it names a directory.
        directory: bool,
    },
    /// RNTO after a successful RNFR.
    Rename {
        /// The RNFR virtual path.
        from: Vec<u8>,
        /// The RNTO virtual path.
        to: Vec<u8>,
        /// RNFR's or RNTO's argument ended in `/` (or `/.`): only a
        /// directory is renamed, checked by rename(2) itself (ENOTDIR),
        /// so nothing can swap a file in between.
        directory: bool,
    },
    /// MFMT: set the modification time (seconds since the epoch).
    SetTime {
        /// The file's virtual path.
        path: Vec<u8>,
        /// The new modification time, Unix seconds (UTC).
        time: i64,
    },
    /// SITE CHMOD.
    Chmod {
        /// The file's virtual path.
        path: Vec<u8>,
        /// The permission bits, at most `0o777`.
        mode: u32,
    },
    /// MLST: facts of one path over the control connection.
    Mlst(Vec<u8>),
    /// The client's path ended in `/`, which names a directory: check
    /// that `path` is one (550 "Not a directory." if not), then carry out
    /// `then`. Never nested.
    NeedDirectory {
        /// The virtual path that must be a directory.
        path: Vec<u8>,
        /// The step to carry out when it is.
        then: Box<Step>,
    },
    /// STAT with a path: a LIST over the control connection.
    StatPath(Listing),
    /// STAT alone: server and session status.
    Status,
    /// ABOR with no transfer running: drop any passive listener, 225.
    Abort,
}
