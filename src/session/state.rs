//! The per-connection FTP state machine, with no I/O.
//!
//! [`Session::handle`] takes one parsed command and the current time and
//! returns a [`Step`]: either a reply it can give by itself (TYPE, PWD,
//! REST, sequence errors, the RFC 2577 PORT checks...) or a request for the
//! driver to do I/O — check a password, open a passive listener, resolve a
//! directory, run a transfer — after which the driver reports back
//! (`logged_in`, `passive_opened`, `cwd_changed`, ...). The whole session
//! state lives here: login progress and the account (its home, permissions
//! and rate caps), failed attempts, working directory, transfer type,
//! restart offset, data-connection mode, and the deadlines of the
//! `--login-timeout` and `--idle-timeout` waits. Time is passed in, so the
//! protocol rules are tested with tables, without sockets or clocks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::step::{DataMode, Listing, Step};
use crate::auth::login::Account;
use crate::auth::tls::TlsRules;
use crate::auth::Perms;
use crate::proto::codes::*;
use crate::proto::{Command, ListArgs, Opts, Reply, TransferType};
use crate::vfs::listing::{Facts, ListFormat};
use crate::vfs::path;
use crate::vfs::UploadKind;

mod data;
mod texts;
mod tls;

use data::no_data;
use texts::{feat_reply, help_reply};
pub use tls::TlsState;

/// Where the session is in the login sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Waiting for USER: at connect, after REIN, and from PASS until the
    /// login is accepted.
    AwaitUser,
    /// USER given (331 sent); PASS comes next.
    AwaitPass {
        /// The name given to USER.
        user: String,
    },
    /// PASS accepted (230): the session's account.
    LoggedIn(Account),
}

/// The server-wide rules a session follows (from the `serve` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `--allow-foreign-data`: no RFC 2577 checks on PORT/EPRT.
    pub allow_foreign_data: bool,
    /// `--idle-timeout`: the longest wait for a command.
    pub idle_timeout: Duration,
    /// `--login-timeout`: how long after connect (or REIN) a session may
    /// take to log in.
    pub login_timeout: Duration,
    /// `--show-dotfiles`: listings show dot-files without `-a`.
    pub show_dotfiles: bool,
    /// FTPS: whether AUTH TLS is offered, who must use it.
    pub tls: TlsRules,
}

impl Default for Rules {
    /// The `serve` defaults: RFC 2577 checks on, 300 s idle, 60 s to log in.
    fn default() -> Rules {
        Rules {
            allow_foreign_data: false,
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            show_dotfiles: false,
            tls: TlsRules::default(),
        }
    }
}

/// Which limit ends the wait for the next command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `--idle-timeout`: 421 "Timeout." and close.
    Idle,
    /// `--login-timeout` (not logged in yet): 421 and close.
    Login,
}

/// Per-connection protocol state.
#[derive(Debug)]
pub struct Session {
    peer: SocketAddr,
    rules: Rules,
    login: Login,
    /// Failed logins of this connection; REIN does not reset them, so the
    /// `--max-login-attempts` cap cannot be dodged.
    failed_logins: u32,
    /// Since when the session has been waiting to log in (connect or
    /// REIN): `--login-timeout` counts from here.
    login_since: Instant,
    cwd: Vec<u8>,
    ascii: bool,
    rest: u64,
    epsv_all: bool,
    data: DataMode,
    facts: Facts,
    /// RNFR's path, and whether its argument named a directory.
    rename_from: Option<(Vec<u8>, bool)>,
    tls: TlsState,
}

fn reply(code: u16, text: &str) -> Step {
    Step::Reply(Reply::new(code, text))
}

/// `then`, for a command whose path may name a file or a directory
/// (MFMT, SITE CHMOD, MLST): when `arg` [`path::names_directory`], first
/// a check that `dir` (the resolved path) is one, so `MFMT t f/` does not
/// change file `f`. (RNFR and RNTO carry the form to rename(2) instead.)
fn need_directory(arg: &[u8], dir: Vec<u8>, then: Step) -> Step {
    if path::names_directory(arg) {
        Step::NeedDirectory {
            path: dir,
            then: Box::new(then),
        }
    } else {
        then
    }
}

impl Session {
    /// A new session for a control connection from `peer`, accepted at
    /// `now`.
    pub fn new(peer: SocketAddr, rules: Rules, now: Instant) -> Session {
        Session {
            peer,
            rules,
            login: Login::AwaitUser,
            failed_logins: 0,
            login_since: now,
            cwd: b"/".to_vec(),
            ascii: false,
            rest: 0,
            epsv_all: false,
            data: DataMode::None,
            facts: Facts::default(),
            rename_from: None,
            tls: TlsState::default(),
        }
    }

    /// Where the session is in the login sequence.
    pub fn login(&self) -> &Login {
        &self.login
    }

    /// The logged-in account, if any.
    pub fn account(&self) -> Option<&Account> {
        match &self.login {
            Login::LoggedIn(account) => Some(account),
            _ => None,
        }
    }

    /// The logged-in user's name, if any.
    pub fn user(&self) -> Option<&str> {
        self.account().map(|a| a.name.as_str())
    }

    /// What the session may do now (nothing before login).
    pub fn perms(&self) -> Perms {
        self.account().map(|a| a.perms).unwrap_or_default()
    }

    /// Failed logins on this connection so far.
    pub fn failed_logins(&self) -> u32 {
        self.failed_logins
    }

    /// The working directory: a normalized virtual path, as PWD shows it
    /// (`/` is the account's home).
    pub fn cwd(&self) -> &[u8] {
        &self.cwd
    }

    /// TYPE A is in effect (else TYPE I).
    pub fn is_ascii(&self) -> bool {
        self.ascii
    }

    /// How the next transfer's data connection will be made.
    pub fn data_mode(&self) -> DataMode {
        self.data
    }

    /// The MLSx facts chosen with OPTS MLST (all until then).
    pub fn facts(&self) -> Facts {
        self.facts
    }

    /// The client's control-connection address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The server-wide rules this session follows.
    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// Until when the driver waits for the next command if it starts
    /// waiting at `now`, and which limit that is: `--idle-timeout` from
    /// now, or, before login, `--login-timeout` from connect or REIN when
    /// that comes first.
    pub fn deadline(&self, now: Instant) -> (Instant, Wait) {
        let idle = now + self.rules.idle_timeout;
        if self.user().is_none() {
            let login = self.login_since + self.rules.login_timeout;
            if login < idle {
                return (login, Wait::Login);
            }
        }
        (idle, Wait::Idle)
    }

    /// Resolves a client path argument against the working directory.
    pub fn resolve(&self, arg: &[u8]) -> Vec<u8> {
        path::join(&self.cwd, arg)
    }

    /// Driver report: credentials accepted and the account's home opened.
    /// A named account's login clears the failed attempts (it proved it
    /// knows a password); an anonymous one does not.
    pub fn logged_in(&mut self, account: Account) {
        if !account.anonymous {
            self.failed_logins = 0;
        }
        self.login = Login::LoggedIn(account);
        self.cwd = b"/".to_vec();
    }

    /// Driver report: credentials refused; the attempt counts towards
    /// `--max-login-attempts` and the client starts over with USER.
    pub fn login_refused(&mut self) {
        self.failed_logins += 1;
        self.login = Login::AwaitUser;
    }

    /// Driver report: the credentials were right but the server could not
    /// complete the login (the home is unusable); not counted as an
    /// attempt. The client starts over with USER.
    pub fn login_aborted(&mut self) {
        self.login = Login::AwaitUser;
    }

    /// Driver report: the RNFR path exists (a directory, when `directory`:
    /// RNFR's argument named one); RNTO may follow.
    pub fn rename_from(&mut self, vpath: Vec<u8>, directory: bool) {
        self.rename_from = Some((vpath, directory));
    }

    /// Driver report: a control line that is no command was refused (500,
    /// 501, 502, 504, 522, or a line too long); `verb` is its first word as
    /// sent, empty when there is none. It still counts as the command after
    /// REST and RNFR and cancels both as a parsed command would: a client
    /// whose `REST abc` or unknown verb is refused must not have an older
    /// offset applied to its next transfer. A refused PASV, EPSV, PORT,
    /// EPRT or TYPE keeps REST as their failures after parsing do.
    pub fn line_refused(&mut self, verb: &[u8]) {
        if !Self::keeps_rest(verb) {
            self.rest = 0;
        }
        self.rename_from = None;
    }

    /// Driver report: the directory exists; it is the new working directory.
    pub fn cwd_changed(&mut self, vpath: Vec<u8>) {
        self.cwd = vpath;
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
                | Command::Auth(_)
                | Command::Pbsz(_)
                | Command::Prot(_)
                | Command::Ccc
        )
    }

    /// Commands that may come between REST and its transfer without
    /// cancelling it, refused or not: the data connection's set-up and
    /// TYPE. `verb` as [`Command::verb`] names it, or as a refused line
    /// starts (any case).
    fn keeps_rest(verb: &[u8]) -> bool {
        ["PASV", "EPSV", "PORT", "EPRT", "TYPE"]
            .iter()
            .any(|k| verb.eq_ignore_ascii_case(k.as_bytes()))
    }

    /// The step for one command, received at `now`.
    pub fn handle(&mut self, cmd: Command, now: Instant) -> Step {
        if self.user().is_none() && !Self::allowed_before_login(&cmd) {
            return reply(NOT_LOGGED_IN, "Please login with USER and PASS.");
        }
        if let Some(needed) = Self::needs(&cmd) {
            if !self.perms().has(needed) {
                self.rest = 0;
                self.rename_from = None;
                return reply(FILE_UNAVAILABLE, "Permission denied.");
            }
        }
        // REST applies to the next transfer command (RFC 3659 5.3 wants it
        // right before; vsftpd and pure-ftpd keep it until a transfer):
        // setting up the data connection (PASV, EPSV, PORT, EPRT) or the
        // TYPE in between keeps it, so a client that sends REST before
        // PASV resumes instead of overwriting; anything else cancels it.
        // A pending RNFR is only good for the very next command.
        let rest = if Self::keeps_rest(cmd.verb().as_bytes()) {
            self.rest
        } else {
            std::mem::take(&mut self.rest)
        };
        let rename_from = self.rename_from.take();
        match cmd {
            Command::User(user) => match &self.login {
                Login::LoggedIn(_) => reply(NOT_LOGGED_IN, "Can't change to another user."),
                // Refused here, before the password is sent in clear.
                _ => match self.rules.tls.login_refusal(self.tls.control, &user) {
                    Some(why) => {
                        self.login = Login::AwaitUser;
                        reply(NOT_LOGGED_IN, why)
                    }
                    None => {
                        self.login = Login::AwaitPass { user };
                        reply(NEED_PASSWORD, "Please specify the password.")
                    }
                },
            },
            Command::Pass(password) => match std::mem::replace(&mut self.login, Login::AwaitUser) {
                Login::AwaitPass { user } => Step::CheckLogin { user, password },
                Login::LoggedIn(account) => {
                    self.login = Login::LoggedIn(account);
                    reply(LOGGED_IN, "Already logged in.")
                }
                Login::AwaitUser => reply(BAD_SEQUENCE, "Login with USER first."),
            },
            Command::Acct(_) => reply(NOT_IMPLEMENTED_SUPERFLUOUS, "ACCT not needed."),
            Command::Rein => {
                // RFC 959 REIN: back to the state right after connect, with
                // a fresh --login-timeout; failed attempts stay counted.
                // The control connection stays in TLS (RFC 4217 has no way
                // back but CCC, which is refused), and so do its PROT/PBSZ.
                let failed_logins = self.failed_logins;
                let tls = self.tls;
                *self = Session::new(self.peer, self.rules, now);
                self.failed_logins = failed_logins;
                self.tls = tls;
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
            Command::Feat => Step::Reply(feat_reply(self.facts, self.rules.tls.available)),
            Command::Auth(mechanism) => self.auth(&mechanism),
            Command::Pbsz(_) if !self.tls.control => reply(
                BAD_SEQUENCE,
                "PBSZ needs a TLS control connection (AUTH TLS) first.",
            ),
            Command::Pbsz(_) => {
                // RFC 4217 section 8: TLS has no buffer size; 0 is the answer.
                self.tls.pbsz = true;
                reply(OK, "PBSZ=0")
            }
            Command::Prot(level) => self.prot(level),
            // RFC 4217 section 6: the server may refuse CCC; it does, so
            // that a command channel once encrypted stays so.
            Command::Ccc if !self.tls.control => {
                reply(BAD_SEQUENCE, "CCC needs a TLS control connection.")
            }
            Command::Ccc => reply(
                DENIED_FOR_POLICY,
                "CCC refused: the control connection stays encrypted.",
            ),
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
            // STAT with a path lists dot-files too, as it always has.
            Command::Stat(Some(args)) => Step::StatPath(Listing {
                all: true,
                ..self.listing(args, ListFormat::Long)
            }),
            Command::Site(arg) => self.site(&arg),
            Command::Pwd => {
                let mut text =
                    crate::proto::reply::quote_path(&crate::vfs::names::display(&self.cwd));
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
            Command::Retr(_) | Command::Stor(_) if self.ascii && rest > 0 => {
                // A restart offset counts octets as transferred (RFC 3659
                // section 5), which in TYPE A are not the file's bytes:
                // refused as vsftpd does, for downloads and uploads alike.
                reply(FILE_UNAVAILABLE, "No support for resume of ASCII transfer.")
            }
            Command::Retr(_)
            | Command::Stor(_)
            | Command::Appe(_)
            | Command::Stou(_)
            | Command::List(_)
            | Command::Nlst(_)
            | Command::Mlsd(_)
                if !self.protect_data() && !self.rules.tls.clear_data_allowed(self.tls.control) =>
            {
                reply(
                    PROT_SETTING_REFUSED,
                    "Data connections must be in TLS here: send PROT P first.",
                )
            }
            // A name that ends in `/` or `/.` names a directory (POSIX
            // pathname resolution, XBD 4.13): never a file to read, write
            // or delete. Refused here, since joining drops the slash and
            // would act on a file of that name (`STOR new/` made a file
            // `new`, `DELE f/` deleted file `f`; vsftpd's open and unlink
            // fail with ENOTDIR or EISDIR). A transfer refused here, before
            // it starts, keeps passive mode for the next one, as TYPE A +
            // REST does and vsftpd does (a refusal after the lookup, in
            // the driver, ends it).
            Command::Retr(arg) | Command::Size(arg) | Command::Mdtm(arg) | Command::Dele(arg)
                if self.names_directory(&arg) =>
            {
                reply(FILE_UNAVAILABLE, "A file name cannot end in '/'.")
            }
            Command::Stor(arg) | Command::Appe(arg) | Command::Stou(Some(arg))
                if self.names_directory(&arg) =>
            {
                reply(
                    FILE_NAME_NOT_ALLOWED,
                    "File name not allowed: a file name cannot end in '/'.",
                )
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
            // SIZE counts octets as transferred in the current TYPE (RFC
            // 3659 section 4); in TYPE A that would mean reading the whole
            // file, so it is refused, as ProFTPD and pyftpdlib do.
            Command::Size(_) if self.ascii => reply(
                FILE_UNAVAILABLE,
                "SIZE not allowed in ASCII mode; use TYPE I.",
            ),
            Command::Size(arg) => Step::Size(self.resolve(&arg)),
            Command::Mdtm(arg) => Step::Mdtm(self.resolve(&arg)),
            Command::List(args) => self.list(args, ListFormat::Long),
            Command::Nlst(args) => self.list(args, ListFormat::Names),
            Command::Mlsd(args) => self.list(args, ListFormat::Machine),
            Command::Mlst(arg) => {
                let arg = arg.unwrap_or_default();
                let path = self.resolve(&arg);
                need_directory(&arg, path.clone(), Step::Mlst(path))
            }
            Command::Abor => Step::Abort,
            Command::Stor(arg) => self.store(&arg, UploadKind::Store { offset: rest }),
            Command::Appe(arg) => self.store(&arg, UploadKind::Append),
            Command::Stou(arg) => {
                let name = arg.unwrap_or_else(|| b"ftp-upload".to_vec());
                self.store(&name, UploadKind::Unique)
            }
            Command::Dele(arg) => Step::Delete(self.resolve(&arg)),
            Command::Mkd(arg) => Step::MakeDir(self.resolve(&arg)),
            Command::Rmd(arg) => Step::RemoveDir(self.resolve(&arg)),
            Command::Rnfr(arg) => Step::RenameFrom {
                path: self.resolve(&arg),
                directory: path::names_directory(&arg),
            },
            // `RNTO d/` moves a directory (what RNFR named) to `d`.
            Command::Rnto(arg) => match rename_from {
                Some((from, directory)) => Step::Rename {
                    from,
                    to: self.resolve(&arg),
                    directory: directory || path::names_directory(&arg),
                },
                None => reply(BAD_SEQUENCE, "RNFR required first."),
            },
            Command::Mfmt { time, path } => {
                let resolved = self.resolve(&path);
                need_directory(
                    &path,
                    resolved.clone(),
                    Step::SetTime {
                        path: resolved,
                        time,
                    },
                )
            }
        }
    }

    /// The permission a command needs, if any (login, navigation and
    /// protocol commands need none).
    fn needs(cmd: &Command) -> Option<Perms> {
        Some(match cmd {
            Command::List(_)
            | Command::Nlst(_)
            | Command::Mlsd(_)
            | Command::Mlst(_)
            | Command::Stat(Some(_)) => Perms::LIST,
            Command::Retr(_) | Command::Size(_) | Command::Mdtm(_) => Perms::READ,
            Command::Stor(_) | Command::Stou(_) | Command::Mfmt { .. } => Perms::WRITE,
            Command::Appe(_) => Perms::APPEND,
            Command::Dele(_) | Command::Rmd(_) => Perms::DELETE,
            Command::Mkd(_) => Perms::MKDIR,
            Command::Rnfr(_) | Command::Rnto(_) => Perms::RENAME,
            _ => return None,
        })
    }

    /// Whether `arg` names a directory by its form
    /// ([`path::names_directory`]) and is not `/` itself, which a file
    /// verb refuses as it refuses any directory.
    fn names_directory(&self, arg: &[u8]) -> bool {
        path::names_directory(arg) && self.resolve(arg) != b"/"
    }

    fn store(&mut self, arg: &[u8], kind: UploadKind) -> Step {
        let path = self.resolve(arg);
        // Resuming needs the file's size, which SIZE gives only with
        // `read`; and whether REST n is past the end would tell a drop-box
        // account (write, no read) the size of a file it may not read
        // (ProFTPD refuses REST + STOR unless `AllowStoreRestart`).
        if matches!(kind, UploadKind::Store { offset } if offset > 0)
            && !self.perms().has(Perms::READ)
        {
            let _ = self.take_data();
            return reply(
                FILE_UNAVAILABLE,
                "Permission denied: resuming an upload (REST + STOR) needs the read permission.",
            );
        }
        match self.take_data() {
            None => no_data(),
            Some(data) => Step::Store {
                path,
                kind,
                ascii: self.ascii,
                data,
            },
        }
    }

    /// SITE subcommands: CHMOD (needs the chmod permission) and HELP.
    fn site(&mut self, arg: &str) -> Step {
        let mut words = arg.splitn(3, ' ');
        let sub = words.next().unwrap_or("").to_ascii_uppercase();
        match sub.as_str() {
            "CHMOD" => {
                if !self.perms().has(Perms::CHMOD) {
                    return reply(FILE_UNAVAILABLE, "Permission denied.");
                }
                let (Some(mode), Some(path)) = (words.next(), words.next()) else {
                    return reply(SYNTAX_ERROR_ARGS, "Usage: SITE CHMOD <octal mode> <path>.");
                };
                match u32::from_str_radix(mode, 8) {
                    Ok(mode) if mode <= 0o777 => {
                        let resolved = self.resolve(path.as_bytes());
                        need_directory(
                            path.as_bytes(),
                            resolved.clone(),
                            Step::Chmod {
                                path: resolved,
                                mode,
                            },
                        )
                    }
                    _ => reply(
                        SYNTAX_ERROR_ARGS,
                        "SITE CHMOD: the mode must be octal, 0 to 777.",
                    ),
                }
            }
            "HELP" => Step::Reply(Reply::new(HELP, "SITE commands: CHMOD HELP\nHelp OK.")),
            _ => reply(NOT_IMPLEMENTED, "Unknown SITE command."),
        }
    }

    /// What LIST/NLST/MLSD/STAT `args` ask to list. Dot-files show with
    /// `-a`, or always with `--show-dotfiles`: the same rule for every
    /// listing command, so a sync tool sees the same names whichever it
    /// uses.
    fn listing(&self, args: ListArgs, format: ListFormat) -> Listing {
        Listing {
            path: self.resolve(args.path.as_deref().unwrap_or(b"")),
            all: args.all() || self.rules.show_dotfiles,
            recursive: args.recursive(),
            shown: args.path,
            format,
        }
    }

    fn list(&mut self, args: ListArgs, format: ListFormat) -> Step {
        let listing = self.listing(args, format);
        match self.take_data() {
            None => no_data(),
            Some(data) => Step::List { listing, data },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::tls::{TlsData, TlsRequired};
    use crate::proto::parse;

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn new_session(peer: SocketAddr, allow_foreign_data: bool) -> Session {
        let rules = Rules {
            allow_foreign_data,
            ..Rules::default()
        };
        Session::new(peer, rules, Instant::now())
    }

    fn account(name: &str, perms: Perms) -> Account {
        Account {
            name: name.into(),
            anonymous: false,
            home: b"/".to_vec(),
            perms,
            max_download_rate: None,
            max_upload_rate: None,
        }
    }

    fn logged_in() -> Session {
        let mut s = new_session(peer(), false);
        s.logged_in(Account::anonymous("anonymous"));
        s
    }

    fn run(s: &mut Session, line: &str) -> Step {
        match parse(line.as_bytes()) {
            Ok(cmd) => s.handle(cmd, Instant::now()),
            Err(e) => {
                s.line_refused(line.split(' ').next().unwrap_or_default().as_bytes());
                Step::Reply(e.reply())
            }
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
        let mut s = new_session(peer(), false);
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
        s.login_refused();
        assert_eq!(*s.login(), Login::AwaitUser);
        assert_eq!(code(&run(&mut s, "USER ftp")), 331);
        assert!(matches!(run(&mut s, "PASS"), Step::CheckLogin { .. }));
        s.logged_in(Account::anonymous("ftp"));
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
            ("SITE CHMOD 777 x", 550),
            ("SITE HELP", 214),
            ("SITE EXEC ls", 502),
            ("RNTO x", 550),
            ("APPE x", 550),
            ("STOU", 550),
            ("RMD x", 550),
            ("MFMT 20240101000000 x", 550),
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
        // Lines refused before they become commands (unknown, missing or
        // bad argument, not implemented) count as commands too.
        for between in [
            "NOOP", "SIZE f", "LIST", "CWD /", "MODE S", "REST 0", "BOGUS", "SIZE", "REST abc",
            "CLNT x",
        ] {
            s.passive_opened();
            run(&mut s, "REST 5");
            run(&mut s, between);
            s.passive_opened();
            match run(&mut s, "RETR f") {
                Step::Retr { offset, .. } => assert_eq!(offset, 0, "{between}"),
                other => panic!("{between}: {other:?}"),
            }
        }
        // The data connection's set-up and TYPE in between keep it, for
        // the next transfer only.
        let mut s = writer(Perms::READ.with(Perms::WRITE));
        for between in [
            "PASV",
            "EPSV",
            "PORT 127,0,0,1,4,1",
            "EPRT |1|127.0.0.1|1025|",
            "TYPE I",
            // Refused as they are parsed, they keep it as well.
            "TYPE E",
            "type x",
            "PORT 1,2",
            "EPRT |3|x|1|",
            "EPSV 9",
        ] {
            run(&mut s, "REST 7");
            run(&mut s, between);
            run(&mut s, "TYPE I");
            s.passive_opened();
            match run(&mut s, "STOR f") {
                Step::Store { kind, .. } => {
                    assert_eq!(kind, UploadKind::Store { offset: 7 }, "{between}")
                }
                other => panic!("{between}: {other:?}"),
            }
            s.passive_opened();
            match run(&mut s, "RETR f") {
                Step::Retr { offset, .. } => assert_eq!(offset, 0, "{between}"),
                other => panic!("{between}: {other:?}"),
            }
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
        let mut s = new_session(peer(), true);
        s.logged_in(Account::anonymous("anonymous"));
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

        let mut s6 = new_session("[::1]:4000".parse().unwrap(), false);
        s6.logged_in(Account::anonymous("anonymous"));
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
        assert_eq!(
            run(&mut s, "STAT x"),
            Step::StatPath(Listing {
                path: b"/pub/x".to_vec(),
                shown: Some(b"x".to_vec()),
                format: ListFormat::Long,
                all: true,
                recursive: false,
            })
        );
        let Step::Reply(r) = run(&mut s, "PWD") else {
            panic!()
        };
        assert_eq!(r.text, b"\"/pub\" is the current directory");
    }

    fn writer(perms: Perms) -> Session {
        let mut s = new_session(peer(), false);
        s.logged_in(account("alice", perms));
        s
    }

    #[test]
    fn uploads_need_data_and_permission() {
        let all = Perms::NAMES
            .iter()
            .fold(Perms::default(), |p, (_, b)| p.with(*b));
        let mut s = writer(all);
        assert_eq!(code(&run(&mut s, "STOR f")), 425);
        s.passive_opened();
        run(&mut s, "REST 500");
        match run(&mut s, "STOR up/f") {
            Step::Store {
                path,
                kind,
                ascii,
                data,
            } => {
                assert_eq!(path, b"/up/f");
                assert_eq!(kind, UploadKind::Store { offset: 500 });
                assert!(!ascii);
                assert_eq!(data, DataMode::Passive);
            }
            other => panic!("{other:?}"),
        }
        s.passive_opened();
        assert!(matches!(
            run(&mut s, "APPE f"),
            Step::Store {
                kind: UploadKind::Append,
                ..
            }
        ));
        s.passive_opened();
        match run(&mut s, "STOU") {
            Step::Store { path, kind, .. } => {
                assert_eq!(kind, UploadKind::Unique);
                assert_eq!(path, b"/ftp-upload");
            }
            other => panic!("{other:?}"),
        }
        // Read-only account: refused before any data connection is used.
        let mut ro = writer(Perms::LIST.with(Perms::READ));
        ro.passive_opened();
        assert_eq!(code(&run(&mut ro, "STOR f")), 550);
        assert_eq!(ro.data_mode(), DataMode::Passive);
        assert_eq!(code(&run(&mut ro, "DELE f")), 550);
        // Append-only account may APPE but not STOR.
        let mut ap = writer(Perms::APPEND);
        ap.passive_opened();
        assert_eq!(code(&run(&mut ap, "STOR f")), 550);
        assert!(matches!(run(&mut ap, "APPE f"), Step::Store { .. }));
    }

    #[test]
    fn rename_sequence() {
        let mut s = writer(Perms::RENAME);
        assert_eq!(code(&run(&mut s, "RNTO b")), 503);
        assert_eq!(
            run(&mut s, "RNFR a"),
            Step::RenameFrom {
                path: b"/a".to_vec(),
                directory: false
            }
        );
        s.rename_from(b"/a".to_vec(), false);
        assert_eq!(
            run(&mut s, "RNTO dir/b"),
            Step::Rename {
                from: b"/a".to_vec(),
                to: b"/dir/b".to_vec(),
                directory: false
            }
        );
        // A trailing `/` on either names a directory: rename(2) is told.
        assert_eq!(
            run(&mut s, "RNFR d/."),
            Step::RenameFrom {
                path: b"/d".to_vec(),
                directory: true
            }
        );
        for (from_dir, to, directory) in
            [(true, "e", true), (false, "e/", true), (false, "e", false)]
        {
            s.rename_from(b"/d".to_vec(), from_dir);
            assert_eq!(
                run(&mut s, &format!("RNTO {to}")),
                Step::Rename {
                    from: b"/d".to_vec(),
                    to: b"/e".to_vec(),
                    directory
                },
                "{from_dir} {to}"
            );
        }
        // RNFR, then anything else: the pending rename is gone.
        s.rename_from(b"/a".to_vec(), false);
        run(&mut s, "NOOP");
        assert_eq!(code(&run(&mut s, "RNTO b")), 503);
        // So does a line that is no command.
        s.rename_from(b"/a".to_vec(), false);
        assert_eq!(code(&run(&mut s, "BOGUS")), 500);
        assert_eq!(code(&run(&mut s, "RNTO b")), 503);
    }

    #[test]
    fn file_management_steps() {
        let all = Perms::NAMES
            .iter()
            .fold(Perms::default(), |p, (_, b)| p.with(*b));
        let mut s = writer(all);
        assert_eq!(run(&mut s, "DELE x"), Step::Delete(b"/x".to_vec()));
        assert_eq!(
            run(&mut s, "MKD new dir"),
            Step::MakeDir(b"/new dir".to_vec())
        );
        assert_eq!(run(&mut s, "XMKD d2"), Step::MakeDir(b"/d2".to_vec()));
        assert_eq!(run(&mut s, "RMD d"), Step::RemoveDir(b"/d".to_vec()));
        assert_eq!(
            run(&mut s, "MFMT 20240102030405 f"),
            Step::SetTime {
                path: b"/f".to_vec(),
                time: 1_704_164_645
            }
        );
        assert_eq!(
            run(&mut s, "SITE CHMOD 640 a file"),
            Step::Chmod {
                path: b"/a file".to_vec(),
                mode: 0o640
            }
        );
        assert_eq!(code(&run(&mut s, "SITE CHMOD 999 f")), 501);
        assert_eq!(code(&run(&mut s, "SITE CHMOD 4755 f")), 501);
        assert_eq!(code(&run(&mut s, "SITE CHMOD 644")), 501);
        let Step::Reply(r) = run(&mut s, "FEAT") else {
            panic!()
        };
        assert!(String::from_utf8(r.text).unwrap().contains("MFMT"));
    }

    #[test]
    fn list_keeps_what_the_client_typed() {
        let mut s = logged_in();
        s.passive_opened();
        match run(&mut s, "NLST -a sub dir") {
            Step::List { listing, .. } => {
                assert_eq!(listing.path, b"/sub dir");
                assert_eq!(listing.shown.as_deref(), Some(&b"sub dir"[..]));
                assert_eq!(listing.format, ListFormat::Names);
                assert!(listing.all);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_dotfile_rule_for_every_listing_command() {
        for (line, rules_show, want_all, want_recursive) in [
            ("LIST", false, false, false),
            ("LIST -la", false, true, false),
            ("LIST -lR", false, false, true),
            ("NLST", false, false, false),
            ("NLST -a", false, true, false),
            ("MLSD", false, false, false),
            ("MLSD", true, true, false),
            ("LIST", true, true, false),
        ] {
            let rules = Rules {
                show_dotfiles: rules_show,
                ..Rules::default()
            };
            let mut s = Session::new(peer(), rules, Instant::now());
            s.logged_in(Account::anonymous("ftp"));
            s.passive_opened();
            match run(&mut s, line) {
                Step::List { listing, .. } => {
                    assert_eq!(listing.all, want_all, "{line} {rules_show}");
                    assert_eq!(listing.recursive, want_recursive, "{line}");
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn type_a_refuses_size_and_restarts() {
        let mut s = logged_in();
        assert_eq!(run(&mut s, "SIZE f"), Step::Size(b"/f".to_vec()));
        run(&mut s, "TYPE A");
        assert_eq!(code(&run(&mut s, "SIZE f")), 550);
        s.passive_opened();
        // REST is accepted, but a restarted transfer in TYPE A is not, for
        // downloads and uploads alike; the data connection stays set up.
        assert_eq!(code(&run(&mut s, "REST 10")), 350);
        assert_eq!(code(&run(&mut s, "RETR f")), 550);
        assert_eq!(s.data_mode(), DataMode::Passive);
        let all = Perms::NAMES
            .iter()
            .fold(Perms::default(), |p, (_, b)| p.with(*b));
        let mut w = writer(all);
        w.passive_opened();
        run(&mut w, "TYPE A");
        run(&mut w, "REST 10");
        assert_eq!(code(&run(&mut w, "STOR f")), 550);
        // Without REST, TYPE A transfers go ahead.
        assert!(matches!(
            run(&mut w, "STOR f"),
            Step::Store { ascii: true, .. }
        ));
        w.passive_opened();
        assert!(matches!(
            run(&mut s, "RETR f"),
            Step::Retr {
                ascii: true,
                offset: 0,
                ..
            }
        ));
        // Back in TYPE I, SIZE and REST work again.
        run(&mut s, "TYPE I");
        assert_eq!(run(&mut s, "SIZE f"), Step::Size(b"/f".to_vec()));
    }

    #[test]
    fn rein_forgets_the_account_but_not_the_failed_attempts() {
        let t0 = Instant::now();
        let mut s = Session::new(peer(), Rules::default(), t0);
        s.login_refused();
        s.login_refused();
        assert_eq!(s.failed_logins(), 2);
        s.logged_in(Account::anonymous("ftp"));
        // Anonymous success keeps the count; a named account's clears it.
        assert_eq!(s.failed_logins(), 2);
        assert_eq!(s.perms(), Perms::anonymous());
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(code(&s.handle(Command::Rein, t1)), 220);
        assert_eq!(s.account(), None);
        assert_eq!(s.perms(), Perms::default());
        assert_eq!(s.failed_logins(), 2);
        // --login-timeout counts again from the REIN.
        assert_eq!(
            s.deadline(t1),
            (t1 + Rules::default().login_timeout, Wait::Login)
        );
        s.logged_in(account("alice", Perms::LIST));
        assert_eq!(s.failed_logins(), 0);
        assert_eq!(s.user(), Some("alice"));
    }

    #[test]
    fn deadlines() {
        let rules = Rules {
            allow_foreign_data: false,
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            show_dotfiles: false,
            tls: TlsRules::default(),
        };
        let t0 = Instant::now();
        let s = |logged_in: bool| {
            let mut s = Session::new(peer(), rules, t0);
            if logged_in {
                s.logged_in(Account::anonymous("ftp"));
            }
            s
        };
        let sec = Duration::from_secs;
        let table: &[(bool, u64, u64, Wait)] = &[
            // Before login: the login deadline, counted from connect.
            (false, 0, 60, Wait::Login),
            (false, 59, 60, Wait::Login),
            (false, 61, 60, Wait::Login),
            // Logged in: idle, counted from now.
            (true, 0, 300, Wait::Idle),
            (true, 1000, 1300, Wait::Idle),
        ];
        for (logged_in, now, until, wait) in table {
            assert_eq!(
                s(*logged_in).deadline(t0 + sec(*now)),
                (t0 + sec(*until), *wait),
                "logged in {logged_in}, now {now}"
            );
        }
        // A login timeout longer than the idle timeout never wins.
        let long = Rules {
            login_timeout: sec(1000),
            ..rules
        };
        let s = Session::new(peer(), long, t0);
        assert_eq!(s.deadline(t0), (t0 + sec(300), Wait::Idle));
    }

    fn tls_session(required: TlsRequired, data: TlsData) -> Session {
        let rules = Rules {
            tls: TlsRules {
                available: true,
                required,
                data,
            },
            ..Rules::default()
        };
        Session::new(peer(), rules, Instant::now())
    }

    #[test]
    fn auth_pbsz_prot_sequences() {
        // (commands in order, with the expected code of each; "+" marks
        // the driver's report that the handshake completed after a 234)
        let table: &[&[(&str, u16)]] = &[
            // The usual client sequence.
            &[
                ("AUTH TLS", 234),
                ("+", 0),
                ("PBSZ 0", 200),
                ("PROT P", 200),
            ],
            // SSL and TLS-C are old names of TLS; other mechanisms are not.
            &[("AUTH SSL", 234)],
            &[("AUTH TLS-C", 234)],
            &[("AUTH GSSAPI", 504), ("AUTH KERBEROS_V4", 504)],
            // PBSZ and PROT before AUTH: bad sequence.
            &[("PBSZ 0", 503), ("PROT P", 503), ("PROT C", 503)],
            // AUTH twice.
            &[
                ("AUTH TLS", 234),
                ("+", 0),
                ("AUTH TLS", 503),
                ("AUTH SSL", 503),
            ],
            // PROT S and E are not TLS levels; PROT P without PBSZ is
            // accepted (vsftpd does too).
            &[
                ("AUTH TLS", 234),
                ("+", 0),
                ("PROT S", 536),
                ("PROT E", 536),
                ("PROT P", 200),
            ],
            &[("PROT X", 504)],
            // CCC: refused under TLS, a sequence error without it.
            &[("CCC", 503), ("AUTH TLS", 234), ("+", 0), ("CCC", 534)],
            // PROT C is refused while --tls-data is required.
            &[
                ("AUTH TLS", 234),
                ("+", 0),
                ("PROT C", 534),
                ("PROT P", 200),
            ],
        ];
        for seq in table {
            let mut s = tls_session(TlsRequired::Accounts, TlsData::Required);
            for (line, want) in seq.iter() {
                if *line == "+" {
                    s.tls_started(false);
                    continue;
                }
                let step = run(&mut s, line);
                let got = match &step {
                    Step::StartTls(r) => r.code,
                    other => code(other),
                };
                assert_eq!(got, *want, "{line} in {seq:?}");
            }
        }
    }

    #[test]
    fn auth_without_a_certificate_or_after_login() {
        let mut s = new_session(peer(), false);
        assert_eq!(code(&run(&mut s, "AUTH TLS")), 502);
        let mut s = tls_session(TlsRequired::Off, TlsData::Required);
        s.logged_in(Account::anonymous("ftp"));
        assert_eq!(code(&run(&mut s, "AUTH TLS")), 503);
        // A USER sent in clear does not carry over into the TLS session.
        let mut s = tls_session(TlsRequired::Off, TlsData::Required);
        assert_eq!(code(&run(&mut s, "USER alice")), 331);
        assert!(matches!(run(&mut s, "AUTH TLS"), Step::StartTls(_)));
        s.tls_started(false);
        assert_eq!(code(&run(&mut s, "PASS secret")), 503);
    }

    #[test]
    fn tls_required_refuses_at_user() {
        // (policy, in TLS, user, code of USER)
        let table: &[(TlsRequired, bool, &str, u16)] = &[
            (TlsRequired::Accounts, false, "alice", 530),
            (TlsRequired::Accounts, false, "anonymous", 331),
            (TlsRequired::Accounts, true, "alice", 331),
            (TlsRequired::All, false, "anonymous", 530),
            (TlsRequired::All, true, "anonymous", 331),
            (TlsRequired::Off, false, "alice", 331),
        ];
        for &(required, secure, user, want) in table {
            let mut s = tls_session(required, TlsData::Required);
            if secure {
                s.tls_started(false);
            }
            let step = run(&mut s, &format!("USER {user}"));
            assert_eq!(code(&step), want, "{required:?} {secure} {user}");
            if want == 530 {
                let Step::Reply(r) = step else { panic!() };
                assert!(String::from_utf8_lossy(&r.text).contains("AUTH TLS"));
                // No password is asked for.
                assert_eq!(code(&run(&mut s, "PASS x")), 503);
            }
        }
    }

    #[test]
    fn data_protection_rules() {
        // Required: a TLS session transfers only after PROT P.
        let mut s = tls_session(TlsRequired::Off, TlsData::Required);
        assert!(matches!(run(&mut s, "AUTH TLS"), Step::StartTls(_)));
        s.tls_started(false);
        s.logged_in(Account::anonymous("ftp"));
        s.passive_opened();
        for line in ["RETR f", "LIST", "NLST", "MLSD"] {
            assert_eq!(code(&run(&mut s, line)), 521, "{line}");
        }
        // The data connection set up stays for the retry.
        assert_eq!(s.data_mode(), DataMode::Passive);
        assert!(!s.protect_data());
        run(&mut s, "PROT P");
        assert!(s.protect_data());
        assert!(matches!(run(&mut s, "RETR f"), Step::Retr { .. }));
        // Optional: PROT C works, and so does a transfer in clear.
        let mut s = tls_session(TlsRequired::Off, TlsData::Optional);
        run(&mut s, "AUTH TLS");
        s.tls_started(false);
        s.logged_in(Account::anonymous("ftp"));
        assert_eq!(code(&run(&mut s, "PROT C")), 200);
        s.passive_opened();
        assert!(matches!(run(&mut s, "LIST"), Step::List { .. }));
        assert!(!s.protect_data());
        // A plain session is not affected by --tls-data.
        let mut s = tls_session(TlsRequired::Off, TlsData::Required);
        s.logged_in(Account::anonymous("ftp"));
        s.passive_opened();
        assert!(matches!(run(&mut s, "RETR f"), Step::Retr { .. }));
        // Implicit FTPS protects data from the start; REIN keeps TLS.
        let mut s = tls_session(TlsRequired::All, TlsData::Required);
        s.tls_started(true);
        assert!(s.protect_data());
        s.logged_in(Account::anonymous("ftp"));
        assert_eq!(code(&run(&mut s, "REIN")), 220);
        assert!(s.protect_data());
        assert_eq!(code(&run(&mut s, "USER alice")), 331);
    }

    #[test]
    fn feat_lists_tls_only_when_offered() {
        let feat = |s: &mut Session| {
            let Step::Reply(r) = run(s, "FEAT") else {
                panic!()
            };
            String::from_utf8(r.text).unwrap()
        };
        let text = feat(&mut tls_session(TlsRequired::Off, TlsData::Required));
        for f in [" AUTH TLS\n", " PBSZ\n", " PROT\n"] {
            assert!(text.contains(f), "{f} missing from {text}");
        }
        let text = feat(&mut new_session(peer(), false));
        assert!(!text.contains("AUTH") && !text.contains("PBSZ"), "{text}");
    }
}
