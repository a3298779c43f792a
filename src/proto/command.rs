//! The FTP command parser: one control line in, one typed [`Command`] (or a
//! [`ParseError`] that already knows its reply) out.
//!
//! The parser is pure: it sees one line with CRLF and Telnet sequences
//! already removed by [`crate::proto::line`], and decides only syntax.
//! Whether a command is allowed in the current session state is the
//! session's business.

use super::error::ParseError;

/// A pathname argument: the raw bytes the client sent. Linux paths are
/// bytes and may not be UTF-8 (RFC 2640 only recommends UTF-8), so nothing
/// is decoded or normalised here.
pub type PathArg = Vec<u8>;

/// The representation type (TYPE, RFC 959 section 3.1.1). Only ASCII
/// non-print and image are served; `L 8` is image by definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferType {
    /// `TYPE A` (`A N`): ASCII non-print; lines travel with CRLF ends.
    Ascii,
    /// `TYPE I` (or `L 8`): image, bytes sent unchanged.
    Image,
}

/// The argument of EPSV (RFC 2428 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpsvArg {
    /// Plain `EPSV`: any protocol, the control connection's.
    Any,
    /// `EPSV ALL`: the client promises to use only EPSV from now on.
    All,
    /// `EPSV 1` (IPv4) or `EPSV 2` (IPv6).
    Proto(u8),
}

/// The argument of OPTS (RFC 2389).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opts {
    /// `OPTS UTF8 ON|OFF`; `OPTS UTF8` alone means ON (RFC 2640 clients).
    Utf8(bool),
    /// `OPTS MLST type;size;`: the fact names, lowercased (RFC 3659 7.9);
    /// may be empty, which asks for no facts at all.
    Mlst(Vec<String>),
    /// Any other option: the command name it addresses, uppercased.
    Other(String),
}

/// Arguments of LIST, NLST, MLSD and STAT with a path: one parser for all
/// four (FluentFTP, lftp and others send `STAT -la dir`). Clients send `ls` options (`LIST -la`) even
/// though RFC 959 defines only a pathname; like vsftpd, every leading token
/// that starts with `-` is taken as options, so a directory literally named
/// `-x` cannot be listed by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListArgs {
    /// The option letters of all `-` tokens, concatenated: `-a -l` -> `"al"`.
    pub options: String,
    /// The rest of the line, byte-exact (may contain spaces).
    pub path: Option<PathArg>,
}

impl ListArgs {
    /// `-a` (or `-A`): dot-files too.
    pub fn all(&self) -> bool {
        self.options.contains(['a', 'A'])
    }

    /// `-R`: subdirectories too, `ls -lR` style.
    pub fn recursive(&self) -> bool {
        self.options.contains('R')
    }
}

/// The data-channel protection level of PROT (RFC 2228 section 3,
/// RFC 4217 section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtLevel {
    /// `C`: clear.
    Clear,
    /// `S`: safe (integrity only); not offered by TLS (536).
    Safe,
    /// `E`: confidential; not offered by TLS (536).
    Confidential,
    /// `P`: private, i.e. TLS on the data connection.
    Private,
}

/// One parsed control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// USER with the user name, trimmed (RFC 959 section 4.1.1).
    User(String),
    /// PASS with the password, byte-exact and possibly empty (RFC 959
    /// section 4.1.1).
    Pass(Vec<u8>),
    /// ACCT with the account information, byte-exact (RFC 959 section
    /// 4.1.1).
    Acct(Vec<u8>),
    /// SYST: the system type (RFC 959 section 4.1.3).
    Syst,
    /// FEAT: list the supported extensions (RFC 2389).
    Feat,
    /// NOOP (RFC 959 section 4.1.3).
    Noop,
    /// QUIT: log out and close the control connection (RFC 959 section
    /// 4.1.1).
    Quit,
    /// ABOR: abort the transfer in progress (RFC 959 section 4.1.3).
    Abor,
    /// PWD (or XPWD): print working directory (RFC 959 section 4.1.3).
    Pwd,
    /// CDUP (or XCUP): change to parent directory (RFC 959 section 4.1.1).
    Cdup,
    /// PASV: enter passive mode; the 227 reply can carry only IPv4 (RFC
    /// 959 section 4.1.1).
    Pasv,
    /// REIN: reinitialize, i.e. log out but keep the connection (RFC 959
    /// section 4.1.1).
    Rein,
    /// OPTS with its parsed option (RFC 2389).
    Opts(Opts),
    /// HELP with its topic, trimmed, if any (RFC 959 section 4.1.3).
    Help(Option<String>),
    /// STAT alone (`None`: server status) or with a listing argument.
    Stat(Option<ListArgs>),
    /// SITE with its argument, trimmed (RFC 959 section 4.1.3).
    Site(String),
    /// CWD (or XCWD): change working directory (RFC 959 section 4.1.1).
    Cwd(PathArg),
    /// TYPE: the representation type (RFC 959 section 4.1.2).
    Type(TransferType),
    /// Always `'S'`: other modes are rejected by the parser.
    Mode(char),
    /// Always `'F'`: other structures are rejected by the parser.
    Stru(char),
    /// EPSV: enter extended passive mode (RFC 2428 section 3).
    Epsv(EpsvArg),
    /// PORT: the client's IPv4 data address from `h1,h2,h3,h4,p1,p2`
    /// (RFC 959 section 4.1.2).
    Port(std::net::SocketAddrV4),
    /// EPRT: the client's data address from `|proto|address|port|`
    /// (RFC 2428 section 2).
    Eprt(std::net::SocketAddr),
    /// REST with its restart marker: a byte offset into the file (RFC 3659
    /// section 5, stream mode).
    Rest(u64),
    /// RETR: retrieve a file (RFC 959 section 4.1.3).
    Retr(PathArg),
    /// SIZE: a file's size in bytes (RFC 3659 section 4).
    Size(PathArg),
    /// MDTM: a file's modification time (RFC 3659 section 3).
    Mdtm(PathArg),
    /// LIST: a long listing, `ls -l` style (RFC 959 section 4.1.3).
    List(ListArgs),
    /// NLST: a name list, one name a line (RFC 959 section 4.1.3).
    Nlst(ListArgs),
    /// MLSD: a machine listing of a directory (RFC 3659 section 7).
    Mlsd(ListArgs),
    /// MLST: the facts of one path, `None` for the working directory
    /// (RFC 3659 section 7).
    Mlst(Option<PathArg>),
    /// The byte count, if given; ALLO is superfluous on Unix (reply 202).
    Allo(Option<u64>),
    /// STOR: store a file, replacing any file of that name (RFC 959 section
    /// 4.1.3).
    Stor(PathArg),
    /// APPE: append to a file, creating it if missing (RFC 959 section
    /// 4.1.3).
    Appe(PathArg),
    /// STOU: store under a unique name (RFC 959 section 4.1.3); the
    /// optional path is a name hint (default `ftp-upload`).
    Stou(Option<PathArg>),
    /// DELE: delete a file (RFC 959 section 4.1.3).
    Dele(PathArg),
    /// MKD (or XMKD): make a directory (RFC 959 section 4.1.3).
    Mkd(PathArg),
    /// RMD (or XRMD): remove a directory (RFC 959 section 4.1.3).
    Rmd(PathArg),
    /// RNFR: rename from; RNTO must follow (RFC 959 section 4.1.3).
    Rnfr(PathArg),
    /// RNTO: rename to, after RNFR (RFC 959 section 4.1.3).
    Rnto(PathArg),
    /// Set a file's modification time (draft-somers-ftp-mfxx): Unix seconds.
    Mfmt {
        /// The new modification time, Unix seconds (UTC).
        time: i64,
        /// The file whose time is set.
        path: PathArg,
    },
    /// RFC 7151 virtual host name.
    Host(String),
    /// AUTH with its mechanism, uppercased (`TLS`, `SSL`, ...; RFC 2228,
    /// RFC 4217 section 4).
    Auth(String),
    /// PBSZ with its decimal buffer size (RFC 2228; always 0 under TLS).
    Pbsz(u64),
    /// PROT: the data-channel protection level (RFC 2228, RFC 4217
    /// section 9).
    Prot(ProtLevel),
    /// Clear Command Channel (RFC 4217 section 6).
    Ccc,
}

/// Every canonical verb [`Command::verb`] returns, in a fixed order (the
/// `verb` label of `ringftp_commands_total`).
pub const VERBS: &[&str] = &[
    "USER", "PASS", "ACCT", "SYST", "FEAT", "NOOP", "QUIT", "ABOR", "PWD", "CDUP", "PASV", "REIN",
    "OPTS", "HELP", "STAT", "SITE", "CWD", "TYPE", "MODE", "STRU", "EPSV", "PORT", "EPRT", "REST",
    "RETR", "SIZE", "MDTM", "LIST", "NLST", "MLSD", "MLST", "ALLO", "STOR", "APPE", "STOU", "DELE",
    "MKD", "RMD", "RNFR", "RNTO", "MFMT", "HOST", "AUTH", "PBSZ", "PROT", "CCC",
];

impl Command {
    /// The canonical verb, for logs and for reply texts. X-variants (XPWD,
    /// XCWD, ...) report their RFC 959 name.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Syst => "SYST",
            Command::Feat => "FEAT",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Abor => "ABOR",
            Command::Pwd => "PWD",
            Command::Cdup => "CDUP",
            Command::Pasv => "PASV",
            Command::Rein => "REIN",
            Command::Opts(_) => "OPTS",
            Command::Help(_) => "HELP",
            Command::Stat(_) => "STAT",
            Command::Site(_) => "SITE",
            Command::Cwd(_) => "CWD",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Rest(_) => "REST",
            Command::Retr(_) => "RETR",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Allo(_) => "ALLO",
            Command::Stor(_) => "STOR",
            Command::Appe(_) => "APPE",
            Command::Stou(_) => "STOU",
            Command::Dele(_) => "DELE",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Mfmt { .. } => "MFMT",
            Command::Host(_) => "HOST",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
        }
    }

    /// The pathname argument as the client sent it (not yet resolved
    /// against the working directory), for commands that take one: what a
    /// log line about the command names.
    pub fn path_arg(&self) -> Option<&[u8]> {
        match self {
            Command::Cwd(p)
            | Command::Retr(p)
            | Command::Size(p)
            | Command::Mdtm(p)
            | Command::Stor(p)
            | Command::Appe(p)
            | Command::Dele(p)
            | Command::Mkd(p)
            | Command::Rmd(p)
            | Command::Rnfr(p)
            | Command::Rnto(p)
            | Command::Mfmt { path: p, .. } => Some(p),
            Command::Stou(p) | Command::Mlst(p) => p.as_deref(),
            Command::List(a) | Command::Nlst(a) | Command::Mlsd(a) => a.path.as_deref(),
            Command::Stat(a) => a.as_ref().and_then(|a| a.path.as_deref()),
            _ => None,
        }
    }
}

/// Verbs are at most this long; anything longer is not a verb at all.
const MAX_VERB: usize = 16;

/// Parses one control line (CRLF and Telnet sequences already removed).
///
/// The verb is everything up to the first space, ASCII case-insensitive.
/// The argument is everything after that first single space: byte-exact
/// for pathnames (a file may be named `" a "`), trimmed of ASCII
/// whitespace for everything else. A trailing `'\r'` left by a client that
/// sent CR CR LF is dropped. Verbs that take no argument ignore one, as
/// vsftpd does, since some clients send `"PASV "` or `"FEAT x"`.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|&b| b == b' ' || b == b'\t') {
        return Err(ParseError::Empty);
    }
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    if verb.is_empty() || verb.len() > MAX_VERB || !verb.iter().all(u8::is_ascii_alphanumeric) {
        let shown: String = String::from_utf8_lossy(verb)
            .chars()
            .take(MAX_VERB)
            .collect();
        return Err(ParseError::Unknown(shown.to_ascii_uppercase()));
    }
    let mut upper = [0u8; MAX_VERB];
    let upper = &mut upper[..verb.len()];
    upper.copy_from_slice(verb);
    upper.make_ascii_uppercase();
    let arg = Arg(arg);

    use Command as C;
    Ok(match &*upper {
        b"USER" => C::User(arg.text_string("USER")?),
        // Passwords are byte-exact and may be empty (anonymous logins).
        b"PASS" => C::Pass(arg.0.to_vec()),
        b"ACCT" => C::Acct(arg.required_raw("ACCT")?.to_vec()),
        b"SYST" => C::Syst,
        b"FEAT" => C::Feat,
        b"NOOP" => C::Noop,
        b"QUIT" => C::Quit,
        b"ABOR" => C::Abor,
        b"PWD" | b"XPWD" => C::Pwd,
        b"CDUP" | b"XCUP" => C::Cdup,
        b"PASV" => C::Pasv,
        b"REIN" => C::Rein,
        b"OPTS" => C::Opts(parse_opts(arg.text("OPTS")?)?),
        b"HELP" => C::Help(arg.optional_text_string()),
        b"STAT" => match arg.0.trim_ascii() {
            [] => C::Stat(None),
            _ => C::Stat(Some(parse_list_args(arg.0)?)),
        },
        b"SITE" => C::Site(arg.text_string("SITE")?),
        b"CWD" | b"XCWD" => C::Cwd(arg.path("CWD")?),
        b"TYPE" => C::Type(parse_type(arg.text("TYPE")?)?),
        b"MODE" => C::Mode(parse_mode(arg.text("MODE")?)?),
        b"STRU" => C::Stru(parse_stru(arg.text("STRU")?)?),
        b"EPSV" => C::Epsv(parse_epsv(arg.0.trim_ascii())?),
        b"PORT" => C::Port(super::addr::parse_port(arg.text_str("PORT")?)?),
        b"EPRT" => C::Eprt(super::addr::parse_eprt(arg.text_str("EPRT")?)?),
        b"REST" => C::Rest(
            parse_decimal(arg.text("REST")?)
                .ok_or(ParseError::BadArgument("REST needs a decimal byte offset"))?,
        ),
        b"RETR" => C::Retr(arg.path("RETR")?),
        b"SIZE" => C::Size(arg.path("SIZE")?),
        b"MDTM" => C::Mdtm(arg.path("MDTM")?),
        b"LIST" => C::List(parse_list_args(arg.0)?),
        b"NLST" => C::Nlst(parse_list_args(arg.0)?),
        b"MLSD" => C::Mlsd(parse_list_args(arg.0)?),
        b"MLST" => C::Mlst(arg.optional_path()?),
        b"ALLO" => C::Allo(parse_allo(arg.0.trim_ascii())?),
        b"STOR" => C::Stor(arg.path("STOR")?),
        b"APPE" => C::Appe(arg.path("APPE")?),
        b"STOU" => C::Stou(arg.optional_path()?),
        b"DELE" => C::Dele(arg.path("DELE")?),
        b"MKD" | b"XMKD" => C::Mkd(arg.path("MKD")?),
        b"RMD" | b"XRMD" => C::Rmd(arg.path("RMD")?),
        b"RNFR" => C::Rnfr(arg.path("RNFR")?),
        b"RNTO" => C::Rnto(arg.path("RNTO")?),
        b"MFMT" => parse_mfmt(arg.required_raw("MFMT")?)?,
        b"HOST" => C::Host(arg.text_string("HOST")?),
        b"AUTH" => C::Auth(arg.text_string("AUTH")?.to_ascii_uppercase()),
        b"PBSZ" => C::Pbsz(
            parse_decimal(arg.text("PBSZ")?)
                .ok_or(ParseError::BadArgument("PBSZ needs a decimal buffer size"))?,
        ),
        b"PROT" => C::Prot(parse_prot(arg.text("PROT")?)?),
        b"CCC" => C::Ccc,
        other => return Err(not_implemented_or_unknown(other)),
    })
}

/// Verbs from RFC 959 and its extensions (RFC 1639, 2228, 2640, 4217 and
/// widely deployed drafts: HASH, AVBL, DSIZ, MFCT/MFF, the X* checksums of
/// ProFTPD's mod_digest, CLNT) that we recognise but do not implement:
/// answering 502 instead of 500 tells a client (or an operator reading
/// logs) that the command exists but is off, e.g. AUTH TLS; 500 is for
/// verbs nobody defined.
const NOT_IMPLEMENTED: &[&str] = &[
    "SMNT", "SPSV", "LPRT", "LPSV", "ENC", "MIC", "CONF", "ADAT", "LANG", "XRCP", "XSEM", "XSEN",
    "MAIL", "MLFL", "MSND", "MSOM", "MSAM", "MRSQ", "MRCP", "AVBL", "CLNT", "CSID", "DSIZ", "HASH",
    "MFCT", "MFF", "RMDA", "THMB", "XCRC", "XMD5", "XSHA", "XSHA1", "XSHA256", "XSHA512",
];

fn not_implemented_or_unknown(upper_verb: &[u8]) -> ParseError {
    match NOT_IMPLEMENTED.iter().find(|v| v.as_bytes() == upper_verb) {
        Some(v) => ParseError::NotImplemented(v),
        // The verb is ASCII letters and digits only by now, so this is
        // lossless.
        None => ParseError::Unknown(String::from_utf8_lossy(upper_verb).into_owned()),
    }
}

/// The raw argument bytes after the verb and its space.
struct Arg<'a>(&'a [u8]);

impl<'a> Arg<'a> {
    /// A non-path argument, trimmed; missing or blank is an error.
    fn text(&self, verb: &'static str) -> Result<&'a [u8], ParseError> {
        match self.0.trim_ascii() {
            [] => Err(ParseError::MissingArgument(verb)),
            t => Ok(t),
        }
    }

    /// [`Arg::text`] as ASCII/UTF-8 text, for the address codecs.
    fn text_str(&self, verb: &'static str) -> Result<&'a str, ParseError> {
        std::str::from_utf8(self.text(verb)?)
            .map_err(|_| ParseError::BadArgument("argument is not ASCII"))
    }

    /// [`Arg::text`], lossily decoded: names and topics are only compared
    /// and logged, so a stray non-UTF-8 byte need not fail the command.
    fn text_string(&self, verb: &'static str) -> Result<String, ParseError> {
        Ok(String::from_utf8_lossy(self.text(verb)?).into_owned())
    }

    fn optional_text_string(&self) -> Option<String> {
        match self.0.trim_ascii() {
            [] => None,
            t => Some(String::from_utf8_lossy(t).into_owned()),
        }
    }

    /// The argument byte-exact; missing (nothing after the verb's space)
    /// is an error, but a lone space is a legitimate argument.
    fn required_raw(&self, verb: &'static str) -> Result<&'a [u8], ParseError> {
        match self.0 {
            [] => Err(ParseError::MissingArgument(verb)),
            raw => Ok(raw),
        }
    }

    /// A required pathname, byte-exact.
    fn path(&self, verb: &'static str) -> Result<PathArg, ParseError> {
        checked_path(self.required_raw(verb)?)
    }

    /// An optional pathname: nothing after the verb means "no path".
    fn optional_path(&self) -> Result<Option<PathArg>, ParseError> {
        match self.0 {
            [] => Ok(None),
            raw => checked_path(raw).map(Some),
        }
    }
}

/// A NUL can never be part of a Unix pathname and would truncate it at the
/// syscall boundary, so a name containing one is refused outright. So is a
/// CR or LF: such a name could be created, but never shown or sent back
/// over the line-based control connection (a reply drops the CR, so the
/// client would be told a name that does not exist).
fn checked_path(raw: &[u8]) -> Result<PathArg, ParseError> {
    if raw.contains(&0) {
        return Err(ParseError::BadArgument("NUL in pathname"));
    }
    if raw.iter().any(|&b| b == b'\r' || b == b'\n') {
        return Err(ParseError::BadArgument("CR or LF in pathname"));
    }
    Ok(raw.to_vec())
}

/// Plain decimal, no sign, no spaces, no overflow.
fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Splits at runs of ASCII whitespace, dropping empty pieces.
fn tokens(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty())
}

/// TYPE (RFC 959 section 4.1.2): `A [N]`, `I`, `L 8` are served; the
/// Telnet/ASA format controls, EBCDIC and other byte sizes are valid but
/// unsupported (504), anything else is a syntax error (501). `L8` without
/// the space is accepted too, as vsftpd does.
fn parse_type(arg: &[u8]) -> Result<TransferType, ParseError> {
    let mut toks = tokens(arg);
    let first = toks.next().unwrap_or_default().to_ascii_uppercase();
    let second = toks.next().map(<[u8]>::to_ascii_uppercase);
    if toks.next().is_some() {
        return Err(ParseError::BadArgument("too many TYPE parameters"));
    }
    // Any decimal is a syntactically valid byte size; only 8 is served.
    let byte_size = |size: &[u8]| {
        if size.is_empty() || !size.iter().all(u8::is_ascii_digit) {
            Err(ParseError::BadArgument("TYPE L needs a byte size"))
        } else if parse_decimal(size) == Some(8) {
            Ok(TransferType::Image)
        } else {
            Err(ParseError::Unsupported(
                "TYPE L with a byte size other than 8",
            ))
        }
    };
    match (&first[..], second.as_deref()) {
        (b"A", None | Some(b"N")) => Ok(TransferType::Ascii),
        (b"A", Some(b"T" | b"C")) => Err(ParseError::Unsupported("TYPE A with format control")),
        (b"I", None) => Ok(TransferType::Image),
        (b"E", None | Some(b"N" | b"T" | b"C")) => Err(ParseError::Unsupported("TYPE E")),
        (b"L", Some(size)) => byte_size(size),
        (b"L", None) => Err(ParseError::BadArgument("TYPE L needs a byte size")),
        ([b'L', size @ ..], None) if !size.is_empty() => byte_size(size),
        _ => Err(ParseError::BadArgument("unknown TYPE")),
    }
}

/// PROT (RFC 2228): one of the four level letters, any case; another
/// letter is a level this server does not know (504).
fn parse_prot(arg: &[u8]) -> Result<ProtLevel, ParseError> {
    match arg {
        [b'C' | b'c'] => Ok(ProtLevel::Clear),
        [b'S' | b's'] => Ok(ProtLevel::Safe),
        [b'E' | b'e'] => Ok(ProtLevel::Confidential),
        [b'P' | b'p'] => Ok(ProtLevel::Private),
        [_] => Err(ParseError::Unsupported("that PROT level")),
        _ => Err(ParseError::BadArgument("PROT takes C, S, E or P")),
    }
}

/// MODE (RFC 959): only stream is served; block, compressed (RFC 959)
/// and deflate (`MODE Z`, draft-preston-ftpext-deflate) exist but are
/// unsupported (504); anything else is a syntax error.
fn parse_mode(arg: &[u8]) -> Result<char, ParseError> {
    match arg {
        [b'S' | b's'] => Ok('S'),
        [b'B' | b'b'] => Err(ParseError::Unsupported("MODE B")),
        [b'C' | b'c'] => Err(ParseError::Unsupported("MODE C")),
        [b'Z' | b'z'] => Err(ParseError::Unsupported("MODE Z")),
        _ => Err(ParseError::BadArgument("MODE takes S, B, C or Z")),
    }
}

/// STRU (RFC 959): only file structure is served; record and page exist
/// but are unsupported.
fn parse_stru(arg: &[u8]) -> Result<char, ParseError> {
    match arg {
        [b'F' | b'f'] => Ok('F'),
        [b'R' | b'r'] => Err(ParseError::Unsupported("STRU R")),
        [b'P' | b'p'] => Err(ParseError::Unsupported("STRU P")),
        _ => Err(ParseError::BadArgument("STRU takes F, R or P")),
    }
}

/// EPSV (RFC 2428 section 3): none, `ALL`, or a protocol number. A number
/// other than 1 or 2 must get 522 so the client can retry with one we
/// speak; any other word is a syntax error.
fn parse_epsv(arg: &[u8]) -> Result<EpsvArg, ParseError> {
    if arg.is_empty() {
        return Ok(EpsvArg::Any);
    }
    if arg.eq_ignore_ascii_case(b"ALL") {
        return Ok(EpsvArg::All);
    }
    if !arg.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::BadArgument("EPSV takes ALL, 1 or 2"));
    }
    match parse_decimal(arg) {
        Some(1) => Ok(EpsvArg::Proto(1)),
        Some(2) => Ok(EpsvArg::Proto(2)),
        _ => Err(ParseError::NetworkProtocol),
    }
}

/// ALLO (RFC 959): `<size> [R <record size>]`, or bare as some clients
/// send it before STOR. Only the size is kept.
fn parse_allo(arg: &[u8]) -> Result<Option<u64>, ParseError> {
    const BAD: ParseError = ParseError::BadArgument("ALLO takes <size> [R <record size>]");
    let mut toks = tokens(arg);
    let Some(size) = toks.next() else {
        return Ok(None);
    };
    let size = parse_decimal(size).ok_or(BAD)?;
    match (toks.next(), toks.next(), toks.next()) {
        (None, _, _) => Ok(Some(size)),
        (Some(r), Some(rec), None)
            if r.eq_ignore_ascii_case(b"R") && parse_decimal(rec).is_some() =>
        {
            Ok(Some(size))
        }
        _ => Err(BAD),
    }
}

/// OPTS (RFC 2389 section 4): `<command> [<options>]`.
fn parse_opts(arg: &[u8]) -> Result<Opts, ParseError> {
    let (name, rest) = match arg.iter().position(u8::is_ascii_whitespace) {
        Some(i) => (&arg[..i], arg[i..].trim_ascii()),
        None => (arg, &b""[..]),
    };
    if name.eq_ignore_ascii_case(b"UTF8") {
        // RFC 2640 clients send `OPTS UTF8 ON`; some send bare `OPTS UTF8`.
        return match rest {
            [] => Ok(Opts::Utf8(true)),
            r if r.eq_ignore_ascii_case(b"ON") => Ok(Opts::Utf8(true)),
            r if r.eq_ignore_ascii_case(b"OFF") => Ok(Opts::Utf8(false)),
            _ => Err(ParseError::BadArgument("OPTS UTF8 takes ON or OFF")),
        };
    }
    if name.eq_ignore_ascii_case(b"MLST") {
        // RFC 3659 section 7.9: fact names separated (and usually ended)
        // by ';'; names are case-insensitive, so normalise to lowercase.
        let facts = rest
            .split(|&b| b == b';')
            .filter(|f| !f.is_empty())
            .map(|f| String::from_utf8_lossy(f).to_ascii_lowercase())
            .collect();
        return Ok(Opts::Mlst(facts));
    }
    Ok(Opts::Other(
        String::from_utf8_lossy(name).to_ascii_uppercase(),
    ))
}

/// LIST/NLST arguments: leading `-` tokens are `ls` options, the rest of
/// the line (byte-exact, spaces included) is the path.
fn parse_list_args(arg: &[u8]) -> Result<ListArgs, ParseError> {
    let mut rest = arg;
    let mut options = String::new();
    loop {
        rest = rest.trim_ascii_start();
        if rest.first() != Some(&b'-') {
            break;
        }
        let end = rest
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(rest.len());
        let letters = String::from_utf8_lossy(&rest[..end]);
        options.push_str(letters.trim_start_matches('-'));
        rest = &rest[end..];
    }
    let path = match rest {
        [] => None,
        p => Some(checked_path(p)?),
    };
    Ok(ListArgs { options, path })
}

/// MFMT (draft-somers-ftp-mfxx, as FileZilla and others send it):
/// `MFMT YYYYMMDDHHMMSS[.fff] <path>`, time in UTC.
fn parse_mfmt(arg: &[u8]) -> Result<Command, ParseError> {
    let arg = arg.trim_ascii_start();
    let (time, path) = match arg.iter().position(|&b| b == b' ') {
        Some(i) => (&arg[..i], &arg[i + 1..]),
        None => (arg, &b""[..]),
    };
    let time = std::str::from_utf8(time)
        .ok()
        .and_then(crate::vfs::time::from_mdtm)
        .ok_or(ParseError::BadArgument("MFMT time must be YYYYMMDDHHMMSS"))?;
    if path.is_empty() {
        return Err(ParseError::BadArgument("MFMT needs a time and a pathname"));
    }
    Ok(Command::Mfmt {
        time,
        path: checked_path(path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};
    use Command as C;
    use ParseError as E;

    fn check(cases: &[(&[u8], Result<Command, ParseError>)]) {
        for (line, want) in cases {
            assert_eq!(
                &parse(line),
                want,
                "line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    fn path(p: &[u8]) -> PathArg {
        p.to_vec()
    }

    #[test]
    fn blank_and_bad_verbs() {
        check(&[
            (b"", Err(E::Empty)),
            (b" ", Err(E::Empty)),
            (b"  \t ", Err(E::Empty)),
            (b"\r", Err(E::Empty)),
            (b"FOO", Err(E::Unknown("FOO".into()))),
            (b"foo bar", Err(E::Unknown("FOO".into()))),
            (b"RETR1 x", Err(E::Unknown("RETR1".into()))),
            (b"NOOP\0", Err(E::Unknown("NOOP\0".into()))),
            (b"RE-TR x", Err(E::Unknown("RE-TR".into()))),
            (b"RETR\tfile", Err(E::Unknown("RETR\tFILE".into()))),
            // Leading space: the verb is empty, as in vsftpd.
            (b" NOOP", Err(E::Unknown(String::new()))),
            // 16 letters is the longest verb; 17 is not a verb.
            (
                b"ABCDEFGHIJKLMNOP",
                Err(E::Unknown("ABCDEFGHIJKLMNOP".into())),
            ),
            (
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZ x",
                Err(E::Unknown("ABCDEFGHIJKLMNOP".into())),
            ),
            (b"\xff\xfe", Err(E::Unknown("\u{fffd}\u{fffd}".into()))),
            (b"AUTH TLS", Ok(C::Auth("TLS".into()))),
            (b"auth ssl", Ok(C::Auth("SSL".into()))),
            (b"AUTH", Err(E::MissingArgument("AUTH"))),
            (b"PBSZ 0", Ok(C::Pbsz(0))),
            (
                b"PBSZ x",
                Err(E::BadArgument("PBSZ needs a decimal buffer size")),
            ),
            (b"PBSZ", Err(E::MissingArgument("PBSZ"))),
            (b"Prot P", Ok(C::Prot(ProtLevel::Private))),
            (b"PROT c", Ok(C::Prot(ProtLevel::Clear))),
            (b"PROT S", Ok(C::Prot(ProtLevel::Safe))),
            (b"PROT E", Ok(C::Prot(ProtLevel::Confidential))),
            (b"PROT X", Err(E::Unsupported("that PROT level"))),
            (b"PROT PP", Err(E::BadArgument("PROT takes C, S, E or P"))),
            (b"CCC", Ok(C::Ccc)),
            (b"LPRT 4,4,1,2,3,4,2,0,21", Err(E::NotImplemented("LPRT"))),
            (b"SMNT /", Err(E::NotImplemented("SMNT"))),
            (b"MRCP", Err(E::NotImplemented("MRCP"))),
        ]);
    }

    #[test]
    fn every_not_implemented_verb_is_recognised() {
        for verb in NOT_IMPLEMENTED {
            assert_eq!(parse(verb.as_bytes()), Err(E::NotImplemented(verb)));
            let lower = verb.to_ascii_lowercase();
            assert_eq!(parse(lower.as_bytes()), Err(E::NotImplemented(verb)));
        }
    }

    #[test]
    fn login_commands() {
        check(&[
            (b"USER anonymous", Ok(C::User("anonymous".into()))),
            (b"user Anonymous", Ok(C::User("Anonymous".into()))),
            (b"UsEr ftp  ", Ok(C::User("ftp".into()))),
            (b"USER ftp\r", Ok(C::User("ftp".into()))),
            (b"USER \xffx", Ok(C::User("\u{fffd}x".into()))),
            (b"USER", Err(E::MissingArgument("USER"))),
            (b"USER ", Err(E::MissingArgument("USER"))),
            (b"USER   ", Err(E::MissingArgument("USER"))),
            (b"PASS", Ok(C::Pass(vec![]))),
            (b"PASS ", Ok(C::Pass(vec![]))),
            (b"pass secret", Ok(C::Pass(b"secret".to_vec()))),
            // Passwords are byte-exact: spaces are part of them.
            (b"PASS two words ", Ok(C::Pass(b"two words ".to_vec()))),
            (b"PASS  lead", Ok(C::Pass(b" lead".to_vec()))),
            (b"PASS \xff", Ok(C::Pass(vec![0xff]))),
            (b"ACCT", Err(E::MissingArgument("ACCT"))),
            (b"ACCT ", Err(E::MissingArgument("ACCT"))),
            (b"acct billing", Ok(C::Acct(b"billing".to_vec()))),
            (b"REIN", Ok(C::Rein)),
            (
                b"HOST ftp.example.com",
                Ok(C::Host("ftp.example.com".into())),
            ),
            (b"host [::1] ", Ok(C::Host("[::1]".into()))),
            (b"HOST", Err(E::MissingArgument("HOST"))),
        ]);
    }

    #[test]
    fn no_argument_commands_ignore_arguments() {
        check(&[
            (b"SYST", Ok(C::Syst)),
            (b"syst", Ok(C::Syst)),
            (b"Syst extra", Ok(C::Syst)),
            (b"FEAT", Ok(C::Feat)),
            (b"NOOP ", Ok(C::Noop)),
            (b"noop\r", Ok(C::Noop)),
            (b"QUIT now", Ok(C::Quit)),
            (b"ABOR", Ok(C::Abor)),
            (b"PWD", Ok(C::Pwd)),
            (b"XPWD", Ok(C::Pwd)),
            (b"CDUP", Ok(C::Cdup)),
            (b"xcup", Ok(C::Cdup)),
            (b"PASV", Ok(C::Pasv)),
            (b"PASV ", Ok(C::Pasv)),
        ]);
    }

    #[test]
    fn path_commands() {
        check(&[
            (b"CWD /pub", Ok(C::Cwd(path(b"/pub")))),
            (b"cwd /pub", Ok(C::Cwd(path(b"/pub")))),
            (b"XCWD /pub", Ok(C::Cwd(path(b"/pub")))),
            (b"CWD", Err(E::MissingArgument("CWD"))),
            (b"CWD ", Err(E::MissingArgument("CWD"))),
            // After the separator, a lone space is a real (odd) name.
            (b"CWD  ", Ok(C::Cwd(path(b" ")))),
            (b"CWD my dir", Ok(C::Cwd(path(b"my dir")))),
            (b"CWD trailing ", Ok(C::Cwd(path(b"trailing ")))),
            (b"CWD  leading", Ok(C::Cwd(path(b" leading")))),
            (b"CWD dir\r", Ok(C::Cwd(path(b"dir")))),
            (b"CWD a\0b", Err(E::BadArgument("NUL in pathname"))),
            (b"CWD \0", Err(E::BadArgument("NUL in pathname"))),
            (b"RETR file.iso", Ok(C::Retr(path(b"file.iso")))),
            (b"retr \xe4\xf6.txt", Ok(C::Retr(path(b"\xe4\xf6.txt")))),
            (b"RETR", Err(E::MissingArgument("RETR"))),
            (b"RETR x\0", Err(E::BadArgument("NUL in pathname"))),
            (b"SIZE f", Ok(C::Size(path(b"f")))),
            (b"SIZE", Err(E::MissingArgument("SIZE"))),
            (b"MDTM f g", Ok(C::Mdtm(path(b"f g")))),
            (b"MDTM ", Err(E::MissingArgument("MDTM"))),
            (b"STOR up", Ok(C::Stor(path(b"up")))),
            (b"STOR", Err(E::MissingArgument("STOR"))),
            (b"APPE up", Ok(C::Appe(path(b"up")))),
            (b"APPE", Err(E::MissingArgument("APPE"))),
            (b"DELE x", Ok(C::Dele(path(b"x")))),
            (b"DELE", Err(E::MissingArgument("DELE"))),
            (b"MKD d", Ok(C::Mkd(path(b"d")))),
            (b"XMKD d", Ok(C::Mkd(path(b"d")))),
            (b"MKD", Err(E::MissingArgument("MKD"))),
            (b"XMKD", Err(E::MissingArgument("MKD"))),
            (b"RMD d", Ok(C::Rmd(path(b"d")))),
            (b"xrmd d", Ok(C::Rmd(path(b"d")))),
            (b"RMD", Err(E::MissingArgument("RMD"))),
            (b"RNFR a", Ok(C::Rnfr(path(b"a")))),
            (b"RNFR", Err(E::MissingArgument("RNFR"))),
            (b"RNTO b", Ok(C::Rnto(path(b"b")))),
            (b"RNTO", Err(E::MissingArgument("RNTO"))),
        ]);
    }

    #[test]
    fn optional_path_commands() {
        check(&[
            (b"STAT", Ok(C::Stat(None))),
            (b"STAT ", Ok(C::Stat(None))),
            (b"STAT a\0", Err(E::BadArgument("NUL in pathname"))),
            (b"mlst", Ok(C::Mlst(None))),
            (b"MLST f", Ok(C::Mlst(Some(path(b"f"))))),
            (b"STOU", Ok(C::Stou(None))),
            (b"STOU name", Ok(C::Stou(Some(path(b"name"))))),
            (b"HELP", Ok(C::Help(None))),
            (b"HELP  ", Ok(C::Help(None))),
            (b"help site", Ok(C::Help(Some("site".into())))),
            (b"SITE CHMOD 644 f", Ok(C::Site("CHMOD 644 f".into()))),
            (b"SITE", Err(E::MissingArgument("SITE"))),
        ]);
    }

    #[test]
    fn type_mode_stru() {
        let a = Ok(C::Type(TransferType::Ascii));
        let i = Ok(C::Type(TransferType::Image));
        check(&[
            (b"TYPE A", a.clone()),
            (b"type a", a.clone()),
            (b"TYPE A N", a.clone()),
            (b"TYPE a n ", a.clone()),
            (b"TYPE  A\tN", a.clone()),
            (b"TYPE I", i.clone()),
            (b"type i", i.clone()),
            (b"TYPE I ", i.clone()),
            (b"TYPE L 8", i.clone()),
            (b"TYPE l 8", i.clone()),
            (b"TYPE L8", i.clone()),
            (b"TYPE", Err(E::MissingArgument("TYPE"))),
            (b"TYPE ", Err(E::MissingArgument("TYPE"))),
            (
                b"TYPE A T",
                Err(E::Unsupported("TYPE A with format control")),
            ),
            (
                b"TYPE A C",
                Err(E::Unsupported("TYPE A with format control")),
            ),
            (b"TYPE E", Err(E::Unsupported("TYPE E"))),
            (b"TYPE E N", Err(E::Unsupported("TYPE E"))),
            (
                b"TYPE L 16",
                Err(E::Unsupported("TYPE L with a byte size other than 8")),
            ),
            (
                b"TYPE L36",
                Err(E::Unsupported("TYPE L with a byte size other than 8")),
            ),
            (
                b"TYPE L 99999999999999999999999",
                Err(E::Unsupported("TYPE L with a byte size other than 8")),
            ),
            (b"TYPE L", Err(E::BadArgument("TYPE L needs a byte size"))),
            (b"TYPE L x", Err(E::BadArgument("TYPE L needs a byte size"))),
            (b"TYPE X", Err(E::BadArgument("unknown TYPE"))),
            (b"TYPE AI", Err(E::BadArgument("unknown TYPE"))),
            (b"TYPE A X", Err(E::BadArgument("unknown TYPE"))),
            (b"TYPE I N", Err(E::BadArgument("unknown TYPE"))),
            (
                b"TYPE A N X",
                Err(E::BadArgument("too many TYPE parameters")),
            ),
            (b"MODE S", Ok(C::Mode('S'))),
            (b"mode s ", Ok(C::Mode('S'))),
            (b"MODE B", Err(E::Unsupported("MODE B"))),
            (b"MODE c", Err(E::Unsupported("MODE C"))),
            (b"MODE Z", Err(E::Unsupported("MODE Z"))),
            (b"mode z", Err(E::Unsupported("MODE Z"))),
            (b"MODE X", Err(E::BadArgument("MODE takes S, B, C or Z"))),
            (b"MODE SS", Err(E::BadArgument("MODE takes S, B, C or Z"))),
            (b"MODE", Err(E::MissingArgument("MODE"))),
            (b"STRU F", Ok(C::Stru('F'))),
            (b"stru f", Ok(C::Stru('F'))),
            (b"STRU R", Err(E::Unsupported("STRU R"))),
            (b"STRU p", Err(E::Unsupported("STRU P"))),
            (b"STRU Q", Err(E::BadArgument("STRU takes F, R or P"))),
            (b"STRU ", Err(E::MissingArgument("STRU"))),
        ]);
    }

    #[test]
    fn data_channel_commands() {
        let port = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 1029);
        check(&[
            (b"EPSV", Ok(C::Epsv(EpsvArg::Any))),
            (b"EPSV ", Ok(C::Epsv(EpsvArg::Any))),
            (b"EPSV ALL", Ok(C::Epsv(EpsvArg::All))),
            (b"epsv all", Ok(C::Epsv(EpsvArg::All))),
            (b"EPSV All ", Ok(C::Epsv(EpsvArg::All))),
            (b"EPSV 1", Ok(C::Epsv(EpsvArg::Proto(1)))),
            (b"EPSV 2", Ok(C::Epsv(EpsvArg::Proto(2)))),
            (b"EPSV 3", Err(E::NetworkProtocol)),
            (b"EPSV 0", Err(E::NetworkProtocol)),
            (b"EPSV 99999999999999999999999", Err(E::NetworkProtocol)),
            (b"EPSV ALLX", Err(E::BadArgument("EPSV takes ALL, 1 or 2"))),
            (b"EPSV -1", Err(E::BadArgument("EPSV takes ALL, 1 or 2"))),
            (b"PORT 127,0,0,1,4,5", Ok(C::Port(port))),
            (b"port  127,0,0,1,4,5 ", Ok(C::Port(port))),
            (b"PORT 127, 0, 0, 1, 4, 5", Ok(C::Port(port))),
            (b"PORT", Err(E::MissingArgument("PORT"))),
            (b"PORT ", Err(E::MissingArgument("PORT"))),
            (b"PORT 127,0,0,1,0,0", Err(E::BadArgument("port 0"))),
            (
                b"PORT 127,0,0,1,4,\xff",
                Err(E::BadArgument("argument is not ASCII")),
            ),
            (
                b"EPRT |1|127.0.0.1|1029|",
                Ok(C::Eprt(std::net::SocketAddr::V4(port))),
            ),
            (
                b"eprt |2|::1|21| ",
                Ok(C::Eprt("[::1]:21".parse().unwrap())),
            ),
            (b"EPRT |3|x|21|", Err(E::NetworkProtocol)),
            (b"EPRT", Err(E::MissingArgument("EPRT"))),
        ]);
        assert!(matches!(parse(b"PORT 1,2,3"), Err(E::BadArgument(_))));
        assert!(matches!(
            parse(b"EPRT |1|1.2.3.4|0|"),
            Err(E::BadArgument(_))
        ));
    }

    #[test]
    fn rest_and_allo() {
        let bad_rest = Err(E::BadArgument("REST needs a decimal byte offset"));
        let bad_allo = Err(E::BadArgument("ALLO takes <size> [R <record size>]"));
        check(&[
            (b"REST 0", Ok(C::Rest(0))),
            (b"rest 1048576", Ok(C::Rest(1_048_576))),
            (b"REST 100 ", Ok(C::Rest(100))),
            (b"REST 18446744073709551615", Ok(C::Rest(u64::MAX))),
            (b"REST 18446744073709551616", bad_rest.clone()),
            (b"REST -1", bad_rest.clone()),
            (b"REST +1", bad_rest.clone()),
            (b"REST 1e3", bad_rest.clone()),
            (b"REST 1 2", bad_rest.clone()),
            (b"REST abc", bad_rest.clone()),
            (b"REST", Err(E::MissingArgument("REST"))),
            (b"REST  ", Err(E::MissingArgument("REST"))),
            (b"ALLO", Ok(C::Allo(None))),
            (b"ALLO ", Ok(C::Allo(None))),
            (b"ALLO 1000", Ok(C::Allo(Some(1000)))),
            (b"allo 1000 R 10", Ok(C::Allo(Some(1000)))),
            (b"ALLO 1000 r 10 ", Ok(C::Allo(Some(1000)))),
            (b"ALLO x", bad_allo.clone()),
            (b"ALLO 1000 R", bad_allo.clone()),
            (b"ALLO 1000 R x", bad_allo.clone()),
            (b"ALLO 1000 X 10", bad_allo.clone()),
            (b"ALLO 1000 R 10 1", bad_allo.clone()),
        ]);
    }

    #[test]
    fn list_arguments() {
        let list = |options: &str, p: Option<&[u8]>| {
            Ok(C::List(ListArgs {
                options: options.into(),
                path: p.map(<[u8]>::to_vec),
            }))
        };
        check(&[
            (b"LIST", list("", None)),
            (b"LIST ", list("", None)),
            (b"list /pub", list("", Some(b"/pub"))),
            (b"LIST -la /pub", list("la", Some(b"/pub"))),
            (b"LIST -l", list("l", None)),
            (b"LIST -l ", list("l", None)),
            (b"LIST -a -l dir", list("al", Some(b"dir"))),
            (b"LIST  -a  -l  dir", list("al", Some(b"dir"))),
            (b"LIST -la my dir ", list("la", Some(b"my dir "))),
            (b"LIST my -dir", list("", Some(b"my -dir"))),
            (b"LIST --full-time x", list("full-time", Some(b"x"))),
            (b"LIST -", list("", None)),
            (b"LIST -l\r", list("l", None)),
            (b"LIST -l a\0", Err(E::BadArgument("NUL in pathname"))),
            (
                b"NLST -a x",
                Ok(C::Nlst(ListArgs {
                    options: "a".into(),
                    path: Some(b"x".to_vec()),
                })),
            ),
            (b"NLST", Ok(C::Nlst(ListArgs::default()))),
            // One parser for LIST, NLST, MLSD and STAT with a path.
            (
                b"stat /pub",
                Ok(C::Stat(Some(ListArgs {
                    options: String::new(),
                    path: Some(b"/pub".to_vec()),
                }))),
            ),
            (
                b"STAT -la pub",
                Ok(C::Stat(Some(ListArgs {
                    options: "la".into(),
                    path: Some(b"pub".to_vec()),
                }))),
            ),
            (
                b"STAT -la",
                Ok(C::Stat(Some(ListArgs {
                    options: "la".into(),
                    path: None,
                }))),
            ),
            (b"MLSD", Ok(C::Mlsd(ListArgs::default()))),
            (b"MLSD\r", Ok(C::Mlsd(ListArgs::default()))),
            (
                b"MLSD /pub dir",
                Ok(C::Mlsd(ListArgs {
                    options: String::new(),
                    path: Some(b"/pub dir".to_vec()),
                })),
            ),
            (
                b"NLST reports/*.txt",
                Ok(C::Nlst(ListArgs {
                    options: String::new(),
                    path: Some(b"reports/*.txt".to_vec()),
                })),
            ),
        ]);
    }

    #[test]
    fn opts() {
        check(&[
            (b"OPTS UTF8 ON", Ok(C::Opts(Opts::Utf8(true)))),
            (b"opts utf8 on", Ok(C::Opts(Opts::Utf8(true)))),
            (b"OPTS UTF8", Ok(C::Opts(Opts::Utf8(true)))),
            (b"OPTS UTF8 OFF ", Ok(C::Opts(Opts::Utf8(false)))),
            (b"OPTS UTF8  Off", Ok(C::Opts(Opts::Utf8(false)))),
            (
                b"OPTS UTF8 MAYBE",
                Err(E::BadArgument("OPTS UTF8 takes ON or OFF")),
            ),
            (
                b"OPTS MLST type;size;",
                Ok(C::Opts(Opts::Mlst(vec!["type".into(), "size".into()]))),
            ),
            (
                b"OPTS MLST Type;SIZE;UNIX.mode",
                Ok(C::Opts(Opts::Mlst(vec![
                    "type".into(),
                    "size".into(),
                    "unix.mode".into(),
                ]))),
            ),
            (b"OPTS MLST", Ok(C::Opts(Opts::Mlst(vec![])))),
            (b"OPTS MLST ;", Ok(C::Opts(Opts::Mlst(vec![])))),
            (b"OPTS mode z", Ok(C::Opts(Opts::Other("MODE".into())))),
            (b"OPTS", Err(E::MissingArgument("OPTS"))),
            (b"OPTS  ", Err(E::MissingArgument("OPTS"))),
        ]);
    }

    #[test]
    fn mfmt() {
        let mfmt = |time: i64, p: &[u8]| {
            Ok(C::Mfmt {
                time,
                path: p.to_vec(),
            })
        };
        let bad_time = Err(E::BadArgument("MFMT time must be YYYYMMDDHHMMSS"));
        check(&[
            (b"MFMT 20240102030405 file", mfmt(1_704_164_645, b"file")),
            (b"mfmt 20240102030405.123 a b", mfmt(1_704_164_645, b"a b")),
            (b"MFMT 19700101000000  lead", mfmt(0, b" lead")),
            (b"MFMT", Err(E::MissingArgument("MFMT"))),
            (b"MFMT ", Err(E::MissingArgument("MFMT"))),
            (
                b"MFMT 20240102030405",
                Err(E::BadArgument("MFMT needs a time and a pathname")),
            ),
            (
                b"MFMT 20240102030405 ",
                Err(E::BadArgument("MFMT needs a time and a pathname")),
            ),
            (b"MFMT 2024010203040 file", bad_time.clone()),
            (b"MFMT 20241302030405 file", bad_time.clone()),
            (b"MFMT file", bad_time.clone()),
            (
                b"MFMT 20240102030405 a\0",
                Err(E::BadArgument("NUL in pathname")),
            ),
        ]);
    }

    #[test]
    fn verb_names_are_canonical() {
        let cases: &[(&[u8], &str)] = &[
            (b"XPWD", "PWD"),
            (b"XCWD a", "CWD"),
            (b"XCUP", "CDUP"),
            (b"XMKD a", "MKD"),
            (b"XRMD a", "RMD"),
            (b"user x", "USER"),
            (b"PASS", "PASS"),
            (b"ACCT a", "ACCT"),
            (b"SYST", "SYST"),
            (b"FEAT", "FEAT"),
            (b"NOOP", "NOOP"),
            (b"QUIT", "QUIT"),
            (b"ABOR", "ABOR"),
            (b"PASV", "PASV"),
            (b"REIN", "REIN"),
            (b"OPTS UTF8", "OPTS"),
            (b"HELP", "HELP"),
            (b"STAT", "STAT"),
            (b"SITE x", "SITE"),
            (b"TYPE I", "TYPE"),
            (b"MODE S", "MODE"),
            (b"STRU F", "STRU"),
            (b"EPSV", "EPSV"),
            (b"PORT 1,2,3,4,5,6", "PORT"),
            (b"EPRT |1|1.2.3.4|5|", "EPRT"),
            (b"REST 1", "REST"),
            (b"RETR a", "RETR"),
            (b"SIZE a", "SIZE"),
            (b"MDTM a", "MDTM"),
            (b"LIST", "LIST"),
            (b"NLST", "NLST"),
            (b"MLSD", "MLSD"),
            (b"MLST", "MLST"),
            (b"ALLO", "ALLO"),
            (b"STOR a", "STOR"),
            (b"APPE a", "APPE"),
            (b"STOU", "STOU"),
            (b"DELE a", "DELE"),
            (b"RNFR a", "RNFR"),
            (b"RNTO a", "RNTO"),
            (b"MFMT 20240102030405 a", "MFMT"),
            (b"HOST h", "HOST"),
            (b"AUTH TLS", "AUTH"),
            (b"PBSZ 0", "PBSZ"),
            (b"PROT P", "PROT"),
            (b"CCC", "CCC"),
        ];
        for (line, verb) in cases {
            let cmd = parse(line).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
            assert_eq!(cmd.verb(), *verb);
            assert!(VERBS.contains(verb), "{verb} missing from VERBS");
        }
        // Every verb of VERBS is reached by one of the cases.
        for v in VERBS {
            assert!(cases.iter().any(|(_, c)| c == v), "{v} has no case");
        }
    }

    #[test]
    fn error_replies() {
        let cases: &[(ParseError, u16, &str)] = &[
            (E::Empty, 500, "Empty command."),
            (E::Unknown("FOO".into()), 500, "Unknown command."),
            (E::NotImplemented("ADAT"), 502, "ADAT not implemented."),
            (E::MissingArgument("RETR"), 501, "RETR needs an argument."),
            (
                E::BadArgument("port 0"),
                501,
                "Syntax error in argument: port 0.",
            ),
            (E::Unsupported("MODE B"), 504, "MODE B not supported."),
            (
                E::NetworkProtocol,
                522,
                "Network protocol not supported, use (1,2)",
            ),
        ];
        for (err, code, text) in cases {
            let reply = err.reply();
            assert_eq!(reply.code, *code, "{err:?}");
            assert_eq!(reply.text, text.as_bytes(), "{err:?}");
        }
        // The client's bytes are never echoed in the reply.
        let reply = E::Unknown("<script>".into()).reply();
        assert!(!String::from_utf8_lossy(&reply.text).contains("script"));
    }
}
