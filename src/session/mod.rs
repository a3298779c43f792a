//! The per-connection FTP state machine, with no I/O.
//!
//! [`Session::handle`] takes one parsed command and returns a [`Step`]:
//! either a reply it can give by itself (TYPE, PWD, REST, sequence errors,
//! the RFC 2577 PORT checks...) or a request for the driver
//! ([`conn`]) to do I/O — open a passive listener, resolve a directory,
//! run a transfer — after which the driver reports back (`passive_opened`,
//! `cwd_changed`, `logged_in`). Login state, working directory, transfer
//! type, restart offset and data-connection mode all live here, so the
//! protocol rules are tested with tables, without sockets.

pub mod conn;

use std::net::SocketAddr;

use crate::data::same_host;
use crate::proto::codes::*;
use crate::proto::{Command, EpsvArg, ListArgs, Opts, Reply, TransferType};
use crate::vfs::listing::Facts;
use crate::vfs::path;

/// Where the session is in the login sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    AwaitUser,
    AwaitPass { user: String },
    LoggedIn { user: String },
}

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

/// What a listing command sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// LIST: `ls -l` lines.
    Long,
    /// NLST: names only.
    Names,
    /// MLSD: RFC 3659 facts.
    Machine,
}

/// What the driver must do for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this reply; nothing else.
    Reply(Reply),
    /// Send this reply and close the connection.
    Close(Reply),
    /// Check credentials, then call [`Session::logged_in`] or
    /// [`Session::login_failed`].
    CheckLogin { user: String, password: Vec<u8> },
    /// Open a passive listener and reply 227 (`extended`: 229), then call
    /// [`Session::passive_opened`]; or reply 425.
    OpenPassive { extended: bool },
    /// Check the directory exists under the root, then call
    /// [`Session::cwd_changed`] and reply 250; or reply 550.
    ChangeDir(Vec<u8>),
    /// SIZE of a file (213).
    Size(Vec<u8>),
    /// MDTM of a file (213).
    Mdtm(Vec<u8>),
    /// Send a file over the data connection.
    Retr {
        path: Vec<u8>,
        offset: u64,
        ascii: bool,
        data: DataMode,
    },
    /// Send a listing of `path` over the data connection. `shown` is the
    /// path as the client typed it (NLST prefixes names with it).
    /// `all`: the client asked for dot-files too (`LIST -a`).
    List {
        path: Vec<u8>,
        shown: Option<Vec<u8>>,
        format: ListFormat,
        all: bool,
        data: DataMode,
    },
    /// MLST: facts of one path over the control connection.
    Mlst(Vec<u8>),
    /// STAT with a path: a LIST over the control connection.
    StatPath(Vec<u8>),
    /// STAT alone: server and session status.
    Status,
    /// ABOR with no transfer running.
    Abort,
}

/// Per-connection protocol state.
#[derive(Debug)]
pub struct Session {
    peer: SocketAddr,
    allow_foreign_data: bool,
    login: Login,
    cwd: Vec<u8>,
    ascii: bool,
    rest: u64,
    epsv_all: bool,
    data: DataMode,
    facts: Facts,
}

/// The extensions FEAT advertises, one per line (RFC 2389): only what is
/// implemented.
fn feat_reply(facts: Facts) -> Reply {
    let mut text = String::from("Features:\n");
    for f in [
        "EPRT".to_string(),
        "EPSV".to_string(),
        "HOST".to_string(),
        "MDTM".to_string(),
        facts.feat_line(),
        "PASV".to_string(),
        "REST STREAM".to_string(),
        "SIZE".to_string(),
        "TVFS".to_string(),
        "UTF8".to_string(),
    ] {
        text.push(' ');
        text.push_str(&f);
        text.push('\n');
    }
    text.push_str("End");
    Reply::new(SYSTEM_STATUS, text)
}

fn help_reply() -> Reply {
    Reply::new(
        HELP,
        "The following commands are recognized.\n\
         ABOR ACCT ALLO CDUP CWD  EPRT EPSV FEAT HELP HOST LIST MDTM MLSD\n\
         MLST MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR\n\
         SIZE STAT STRU SYST TYPE USER XCUP XCWD XPWD\n\
         Help OK.",
    )
}

fn reply(code: u16, text: &str) -> Step {
    Step::Reply(Reply::new(code, text))
}

impl Session {
    /// A new session for a control connection from `peer`.
    pub fn new(peer: SocketAddr, allow_foreign_data: bool) -> Session {
        Session {
            peer,
            allow_foreign_data,
            login: Login::AwaitUser,
            cwd: b"/".to_vec(),
            ascii: false,
            rest: 0,
            epsv_all: false,
            data: DataMode::None,
            facts: Facts::default(),
        }
    }

    pub fn login(&self) -> &Login {
        &self.login
    }

    pub fn user(&self) -> Option<&str> {
        match &self.login {
            Login::LoggedIn { user } => Some(user),
            _ => None,
        }
    }

    pub fn cwd(&self) -> &[u8] {
        &self.cwd
    }

    pub fn is_ascii(&self) -> bool {
        self.ascii
    }

    pub fn data_mode(&self) -> DataMode {
        self.data
    }

    pub fn facts(&self) -> Facts {
        self.facts
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Resolves a client path argument against the working directory.
    pub fn resolve(&self, arg: &[u8]) -> Vec<u8> {
        path::join(&self.cwd, arg)
    }

    /// Driver report: credentials accepted.
    pub fn logged_in(&mut self, user: String) {
        self.login = Login::LoggedIn { user };
        self.cwd = b"/".to_vec();
    }

    /// Driver report: credentials refused; the client starts over with USER.
    pub fn login_failed(&mut self) {
        self.login = Login::AwaitUser;
    }

    /// Driver report: a passive listener is open.
    pub fn passive_opened(&mut self) {
        self.data = DataMode::Passive;
    }

    /// Driver report: the directory exists; it is the new working directory.
    pub fn cwd_changed(&mut self, vpath: Vec<u8>) {
        self.cwd = vpath;
    }

    /// The data mode for a transfer, consumed: every transfer needs a fresh
    /// PASV/EPSV/PORT/EPRT, as every FTP server expects.
    fn take_data(&mut self) -> Option<DataMode> {
        match std::mem::replace(&mut self.data, DataMode::None) {
            DataMode::None => None,
            mode => Some(mode),
        }
    }

    fn allowed_before_login(cmd: &Command) -> bool {
        matches!(
            cmd,
            Command::User(_)
                | Command::Pass(_)
                | Command::Acct(_)
                | Command::Quit
                | Command::Feat
                | Command::Syst
                | Command::Help(_)
                | Command::Noop
                | Command::Opts(_)
                | Command::Host(_)
                | Command::Abor
        )
    }

    /// The step for one command.
    pub fn handle(&mut self, cmd: Command) -> Step {
        if self.user().is_none() && !Self::allowed_before_login(&cmd) {
            return reply(NOT_LOGGED_IN, "Please login with USER and PASS.");
        }
        // REST applies to the transfer command right after it and to no
        // later one (RFC 3659 5.3); anything else in between cancels it.
        let rest = std::mem::take(&mut self.rest);
        match cmd {
            Command::User(user) => match &self.login {
                Login::LoggedIn { .. } => reply(NOT_LOGGED_IN, "Can't change to another user."),
                _ => {
                    self.login = Login::AwaitPass { user };
                    reply(NEED_PASSWORD, "Please specify the password.")
                }
            },
            Command::Pass(password) => match std::mem::replace(&mut self.login, Login::AwaitUser) {
                Login::AwaitPass { user } => Step::CheckLogin { user, password },
                Login::LoggedIn { user } => {
                    self.login = Login::LoggedIn { user };
                    reply(LOGGED_IN, "Already logged in.")
                }
                Login::AwaitUser => reply(BAD_SEQUENCE, "Login with USER first."),
            },
            Command::Acct(_) => reply(NOT_IMPLEMENTED_SUPERFLUOUS, "ACCT not needed."),
            Command::Rein => {
                *self = Session::new(self.peer, self.allow_foreign_data);
                reply(SERVICE_READY, "Service ready for new user.")
            }
            Command::Host(_) => match self.login {
                // RFC 7151: HOST comes before USER. There is one virtual
                // host, so any name is accepted.
                Login::AwaitUser => reply(SERVICE_READY, "Host accepted."),
                _ => reply(BAD_SEQUENCE, "HOST must come before USER."),
            },
            Command::Quit => Step::Close(Reply::new(CLOSING_CONTROL, "Goodbye.")),
            Command::Syst => reply(SYSTEM_TYPE, "UNIX Type: L8"),
            Command::Feat => Step::Reply(feat_reply(self.facts)),
            Command::Help(_) => Step::Reply(help_reply()),
            Command::Noop => reply(OK, "NOOP ok."),
            Command::Opts(Opts::Utf8(true)) => reply(OK, "Always in UTF8 mode."),
            Command::Opts(Opts::Utf8(false)) => {
                reply(NOT_IMPLEMENTED_PARAM, "UTF8 cannot be turned off.")
            }
            Command::Opts(Opts::Mlst(names)) => {
                self.facts = Facts::from_names(&names);
                let line = self.facts.feat_line();
                // feat_line is "MLST type*;size*;..."; the 200 reply lists the
                // enabled facts without stars (RFC 3659 7.9).
                let enabled: String = line
                    .trim_start_matches("MLST ")
                    .split(';')
                    .filter(|f| f.ends_with('*'))
                    .map(|f| format!("{};", f.trim_end_matches('*')))
                    .collect();
                Step::Reply(Reply::new(OK, format!("MLST OPTS {enabled}")))
            }
            Command::Opts(Opts::Other(_)) => reply(SYNTAX_ERROR_ARGS, "Option not understood."),
            Command::Stat(None) => Step::Status,
            Command::Stat(Some(arg)) => Step::StatPath(self.resolve(&arg)),
            Command::Site(_) => reply(NOT_IMPLEMENTED, "SITE commands are not implemented."),
            Command::Pwd => {
                let mut text = crate::proto::reply::quote_path(&self.cwd);
                text.extend_from_slice(b" is the current directory");
                Step::Reply(Reply::new(PATH_CREATED, text))
            }
            Command::Cwd(arg) => Step::ChangeDir(self.resolve(&arg)),
            Command::Cdup => Step::ChangeDir(path::parent(&self.cwd)),
            Command::Type(t) => {
                self.ascii = t == TransferType::Ascii;
                if self.ascii {
                    reply(OK, "Switching to ASCII mode.")
                } else {
                    reply(OK, "Switching to Binary mode.")
                }
            }
            Command::Mode(_) => reply(OK, "Mode set to S."),
            Command::Stru(_) => reply(OK, "Structure set to F."),
            Command::Allo(_) => reply(NOT_IMPLEMENTED_SUPERFLUOUS, "ALLO command ignored."),
            Command::Pasv => self.pasv(),
            Command::Epsv(arg) => self.epsv(arg),
            Command::Port(addr) => self.active(SocketAddr::V4(addr), "PORT"),
            Command::Eprt(addr) => self.active(addr, "EPRT"),
            Command::Rest(offset) => {
                self.rest = offset;
                Step::Reply(Reply::new(
                    FILE_ACTION_PENDING,
                    format!("Restart position accepted ({offset})."),
                ))
            }
            Command::Retr(arg) => {
                let path = self.resolve(&arg);
                match self.take_data() {
                    None => no_data(),
                    Some(data) => Step::Retr {
                        path,
                        offset: rest,
                        ascii: self.ascii,
                        data,
                    },
                }
            }
            Command::Size(arg) => Step::Size(self.resolve(&arg)),
            Command::Mdtm(arg) => Step::Mdtm(self.resolve(&arg)),
            Command::List(args) => self.list(args, ListFormat::Long),
            Command::Nlst(args) => self.list(args, ListFormat::Names),
            Command::Mlsd(arg) => self.list(
                ListArgs {
                    options: String::new(),
                    path: arg,
                },
                ListFormat::Machine,
            ),
            Command::Mlst(arg) => Step::Mlst(self.resolve(arg.as_deref().unwrap_or(b""))),
            Command::Abor => Step::Abort,
            Command::Stor(_)
            | Command::Appe(_)
            | Command::Stou(_)
            | Command::Dele(_)
            | Command::Mkd(_)
            | Command::Rmd(_)
            | Command::Rnfr(_)
            | Command::Rnto(_)
            | Command::Mfmt { .. } => reply(
                FILE_UNAVAILABLE,
                "Permission denied: this server is read-only.",
            ),
        }
    }

    fn pasv(&mut self) -> Step {
        if self.epsv_all {
            return reply(
                BAD_SEQUENCE,
                "EPSV ALL is in effect: only EPSV may set up data connections.",
            );
        }
        // The driver checks the address family (227 can only carry IPv4).
        self.data = DataMode::None;
        Step::OpenPassive { extended: false }
    }

    fn epsv(&mut self, arg: EpsvArg) -> Step {
        let ours = if self.peer.is_ipv4() || crate::data::canonical_ip(self.peer.ip()).is_ipv4() {
            1
        } else {
            2
        };
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                reply(OK, "EPSV ALL ok.")
            }
            EpsvArg::Proto(p) if p != ours => Step::Reply(Reply::new(
                NETWORK_PROTOCOL_NOT_SUPPORTED,
                format!("Network protocol not supported, use ({ours})"),
            )),
            _ => {
                self.data = DataMode::None;
                Step::OpenPassive { extended: true }
            }
        }
    }

    /// PORT/EPRT with the RFC 2577 checks: the target must be the control
    /// peer (else this is the "bounce" attack: making the server connect to
    /// a third host) and not a privileged port.
    fn active(&mut self, addr: SocketAddr, verb: &str) -> Step {
        if self.epsv_all {
            return reply(
                BAD_SEQUENCE,
                "EPSV ALL is in effect: only EPSV may set up data connections.",
            );
        }
        if !self.allow_foreign_data {
            if !same_host(addr.ip(), self.peer.ip()) {
                self.data = DataMode::None;
                return Step::Reply(Reply::new(
                    SYNTAX_ERROR,
                    format!("Illegal {verb} command: the address must be your own (RFC 2577)."),
                ));
            }
            if addr.port() < 1024 {
                self.data = DataMode::None;
                return Step::Reply(Reply::new(
                    NOT_IMPLEMENTED_PARAM,
                    format!("Illegal {verb} command: port below 1024 refused (RFC 2577)."),
                ));
            }
        }
        self.data = DataMode::Active(addr);
        Step::Reply(Reply::new(
            OK,
            format!("{verb} command successful. Consider using EPSV."),
        ))
    }

    fn list(&mut self, args: ListArgs, format: ListFormat) -> Step {
        let path = self.resolve(args.path.as_deref().unwrap_or(b""));
        match self.take_data() {
            None => no_data(),
            Some(data) => Step::List {
                path,
                shown: args.path,
                format,
                all: args.options.contains('a'),
                data,
            },
        }
    }
}

fn no_data() -> Step {
    reply(CANT_OPEN_DATA, "Use PORT, EPRT, PASV or EPSV first.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::parse;

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn logged_in() -> Session {
        let mut s = Session::new(peer(), false);
        s.logged_in("anonymous".into());
        s
    }

    fn run(s: &mut Session, line: &str) -> Step {
        match parse(line.as_bytes()) {
            Ok(cmd) => s.handle(cmd),
            Err(e) => Step::Reply(e.reply()),
        }
    }

    fn code(step: &Step) -> u16 {
        match step {
            Step::Reply(r) | Step::Close(r) => r.code,
            other => panic!("not a reply: {other:?}"),
        }
    }

    #[test]
    fn login_sequence() {
        let mut s = Session::new(peer(), false);
        assert_eq!(code(&run(&mut s, "PASS x")), 503);
        assert_eq!(code(&run(&mut s, "RETR f")), 530);
        assert_eq!(code(&run(&mut s, "CWD /")), 530);
        assert_eq!(code(&run(&mut s, "SYST")), 215);
        assert_eq!(code(&run(&mut s, "USER anonymous")), 331);
        assert_eq!(
            run(&mut s, "PASS me@example.com"),
            Step::CheckLogin {
                user: "anonymous".into(),
                password: b"me@example.com".to_vec()
            }
        );
        s.login_failed();
        assert_eq!(*s.login(), Login::AwaitUser);
        assert_eq!(code(&run(&mut s, "USER ftp")), 331);
        assert!(matches!(run(&mut s, "PASS"), Step::CheckLogin { .. }));
        s.logged_in("ftp".into());
        assert_eq!(code(&run(&mut s, "PASS again")), 230);
        assert_eq!(code(&run(&mut s, "USER other")), 530);
        assert_eq!(code(&run(&mut s, "REIN")), 220);
        assert_eq!(code(&run(&mut s, "PWD")), 530);
    }

    #[test]
    fn simple_replies() {
        let table: &[(&str, u16)] = &[
            ("NOOP", 200),
            ("SYST", 215),
            ("TYPE I", 200),
            ("TYPE A", 200),
            ("TYPE L 8", 200),
            ("MODE S", 200),
            ("STRU F", 200),
            ("ALLO 100", 202),
            ("OPTS UTF8 ON", 200),
            ("FEAT", 211),
            ("HELP", 214),
            ("PWD", 257),
            ("XPWD", 257),
            ("REST 100", 350),
            ("STOR x", 550),
            ("DELE x", 550),
            ("MKD x", 550),
            ("RNFR x", 550),
            ("SITE CHMOD 777 x", 502),
            ("RETR f", 425),
            ("LIST", 425),
            ("QUIT", 221),
            ("HOST example.com", 503),
        ];
        for (line, want) in table {
            let mut s = logged_in();
            assert_eq!(code(&run(&mut s, line)), *want, "{line}");
        }
    }

    #[test]
    fn feat_lists_what_is_implemented() {
        let mut s = logged_in();
        let Step::Reply(r) = run(&mut s, "FEAT") else {
            panic!()
        };
        let text = String::from_utf8(r.text).unwrap();
        for f in [
            "EPRT",
            "EPSV",
            "MDTM",
            "MLST type*",
            "PASV",
            "REST STREAM",
            "SIZE",
            "UTF8",
        ] {
            assert!(text.contains(f), "{f} missing from {text}");
        }
    }

    #[test]
    fn rest_applies_to_the_next_command_only() {
        let mut s = logged_in();
        run(&mut s, "PASV");
        s.passive_opened();
        run(&mut s, "REST 1000");
        match run(&mut s, "RETR /f") {
            Step::Retr { offset, path, .. } => {
                assert_eq!(offset, 1000);
                assert_eq!(path, b"/f");
            }
            other => panic!("{other:?}"),
        }
        // REST then another command: the offset is gone.
        s.passive_opened();
        run(&mut s, "REST 5");
        run(&mut s, "NOOP");
        match run(&mut s, "RETR f") {
            Step::Retr { offset, .. } => assert_eq!(offset, 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_mode_is_consumed_by_a_transfer() {
        let mut s = logged_in();
        assert_eq!(run(&mut s, "EPSV"), Step::OpenPassive { extended: true });
        s.passive_opened();
        assert!(matches!(
            run(&mut s, "LIST"),
            Step::List {
                data: DataMode::Passive,
                ..
            }
        ));
        assert_eq!(code(&run(&mut s, "LIST")), 425);
    }

    #[test]
    fn port_checks_rfc2577() {
        let mut s = logged_in();
        // Another host: bounce attack.
        assert_eq!(code(&run(&mut s, "PORT 127,0,0,2,200,0")), 500);
        assert_eq!(s.data_mode(), DataMode::None);
        assert_eq!(code(&run(&mut s, "EPRT |1|10.0.0.1|5000|")), 500);
        // Privileged port.
        assert_eq!(code(&run(&mut s, "PORT 127,0,0,1,0,25")), 504);
        // Good.
        assert_eq!(code(&run(&mut s, "PORT 127,0,0,1,200,0")), 200);
        assert_eq!(
            s.data_mode(),
            DataMode::Active("127.0.0.1:51200".parse().unwrap())
        );
        assert!(matches!(
            run(&mut s, "RETR f"),
            Step::Retr {
                data: DataMode::Active(_),
                ..
            }
        ));
        // With --allow-foreign-data the checks are off (FXP).
        let mut s = Session::new(peer(), true);
        s.logged_in("anonymous".into());
        assert_eq!(code(&run(&mut s, "PORT 127,0,0,2,0,25")), 200);
    }

    #[test]
    fn epsv_rules() {
        let mut s = logged_in();
        assert_eq!(code(&run(&mut s, "EPSV 2")), 522);
        assert_eq!(run(&mut s, "EPSV 1"), Step::OpenPassive { extended: true });
        assert_eq!(code(&run(&mut s, "EPSV ALL")), 200);
        assert_eq!(code(&run(&mut s, "PASV")), 503);
        assert_eq!(code(&run(&mut s, "PORT 127,0,0,1,200,0")), 503);
        assert_eq!(run(&mut s, "EPSV"), Step::OpenPassive { extended: true });

        let mut s6 = Session::new("[::1]:4000".parse().unwrap(), false);
        s6.logged_in("anonymous".into());
        assert_eq!(code(&run(&mut s6, "EPSV 1")), 522);
        assert_eq!(code(&run(&mut s6, "EPRT |2|::1|5282|")), 200);
        assert_eq!(code(&run(&mut s6, "EPRT |2|::2|5282|")), 500);
    }

    #[test]
    fn paths_resolve_against_cwd() {
        let mut s = logged_in();
        assert_eq!(run(&mut s, "CWD pub"), Step::ChangeDir(b"/pub".to_vec()));
        s.cwd_changed(b"/pub".to_vec());
        assert_eq!(run(&mut s, "CWD ../.."), Step::ChangeDir(b"/".to_vec()));
        assert_eq!(run(&mut s, "CDUP"), Step::ChangeDir(b"/".to_vec()));
        assert_eq!(
            run(&mut s, "SIZE ../../etc/passwd"),
            Step::Size(b"/etc/passwd".to_vec())
        );
        assert_eq!(run(&mut s, "MDTM f"), Step::Mdtm(b"/pub/f".to_vec()));
        assert_eq!(run(&mut s, "MLST"), Step::Mlst(b"/pub".to_vec()));
        assert_eq!(run(&mut s, "STAT x"), Step::StatPath(b"/pub/x".to_vec()));
        let Step::Reply(r) = run(&mut s, "PWD") else {
            panic!()
        };
        assert_eq!(r.text, b"\"/pub\" is the current directory");
    }

    #[test]
    fn list_keeps_what_the_client_typed() {
        let mut s = logged_in();
        s.passive_opened();
        match run(&mut s, "NLST -a sub dir") {
            Step::List {
                path,
                shown,
                format,
                ..
            } => {
                assert_eq!(path, b"/sub dir");
                assert_eq!(shown.as_deref(), Some(&b"sub dir"[..]));
                assert_eq!(format, ListFormat::Names);
            }
            other => panic!("{other:?}"),
        }
    }
}
