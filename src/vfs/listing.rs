//! Directory listing lines: the `ls -l` format of LIST and the fact lines
//! of MLSD/MLST (RFC 3659 section 7).
//!
//! LIST has no standard format, so clients (lftp, curl, wget, FileZilla,
//! Python's parsers) guess it by matching what Unix servers send. The only
//! safe choice is to be byte-for-byte what vsftpd sends, which mimics
//! `ls -l`: `"%-10s %4lu %-8s %-8s %8llu %s %s"` with numeric owners and a
//! `Mon DD HH:MM` / `Mon DD  YYYY` date in UTC. MLSD is standardised and
//! machine-readable; clients that speak it should prefer it.
//!
//! The caller does the `stat`/`readlink` and passes plain values, plus the
//! current time for the recent/old date choice; nothing here touches the
//! filesystem or the clock. Lines are appended to one buffer so a listing
//! of thousands of entries costs no allocation per entry.

use super::access::{Access, Viewer};
use super::time::{civil_from_unix, push_mdtm, MDTM_MAX, MDTM_MIN};
use super::{names, path, Stat};
use crate::auth::Perms;

/// What a listing command sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// LIST (and STAT with a path): `ls -l` lines.
    Long,
    /// NLST: names only.
    Names,
    /// MLSD: RFC 3659 fact lines.
    Machine,
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (MLSx `type=file`).
    File,
    /// A directory (MLSx `type=dir`).
    Dir,
    /// A symbolic link not resolved, e.g. a dangling one (MLSx
    /// `type=OS.unix=symlink`).
    Symlink,
    /// FIFO, socket, device: listed, never transferred.
    Other,
}

/// One directory entry as `stat(2)` (and `readlink(2)`) describe it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name inside its directory, raw bytes; written as
    /// [`names::display`] shows it (UTF-8 as is, else the legacy charset).
    pub name: Vec<u8>,
    /// File, directory, symlink or other, from the mode's `S_IFMT` bits.
    pub kind: EntryKind,
    /// Mode, links, owner, size, modification time, device and inode.
    pub stat: Stat,
    /// For symlinks in LIST: shown as `name -> target`.
    pub link_target: Option<Vec<u8>>,
}

/// Which MLSx facts to send (RFC 3659 section 7.9: the client picks them
/// with `OPTS MLST`). The order on the wire is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// `type`: file, dir or `OS.unix=...` (RFC 3659 section 7.5.1).
    pub r#type: bool,
    /// `size`: in bytes, files only (RFC 3659 section 7.5.7).
    pub size: bool,
    /// `modify`: last modification time, UTC `YYYYMMDDHHMMSS` (RFC 3659
    /// section 7.5.3).
    pub modify: bool,
    /// `perm`: what this session may do with the entry (RFC 3659 section
    /// 7.5.5).
    pub perm: bool,
    /// `unique`: `{dev:x}g{ino:x}`, the file's identity (RFC 3659 section
    /// 7.5.2).
    pub unique: bool,
    /// `UNIX.mode`: the four octal digits of the permission and
    /// set-id/sticky bits (an OS-specific fact, not defined by RFC 3659).
    pub unix_mode: bool,
}

/// All facts on: what a session sends until the client says otherwise.
impl Default for Facts {
    fn default() -> Facts {
        Facts {
            r#type: true,
            size: true,
            modify: true,
            perm: true,
            unique: true,
            unix_mode: true,
        }
    }
}

impl Facts {
    /// The facts named in `OPTS MLST` (case-insensitive). Names not listed
    /// are turned off, unknown names are ignored (RFC 3659 section 7.9).
    pub fn from_names(names: &[String]) -> Facts {
        let has = |fact: &str| names.iter().any(|n| n.eq_ignore_ascii_case(fact));
        Facts {
            r#type: has("type"),
            size: has("size"),
            modify: has("modify"),
            perm: has("perm"),
            unique: has("unique"),
            unix_mode: has("unix.mode"),
        }
    }

    /// The FEAT line advertising the facts (RFC 3659 section 7.8): every
    /// supported fact, with `*` after those currently enabled.
    pub fn feat_line(&self) -> String {
        let mut line = String::from("MLST ");
        for (name, on) in self.named() {
            line.push_str(name);
            if on {
                line.push('*');
            }
            line.push(';');
        }
        line
    }

    fn named(&self) -> [(&'static str, bool); 6] {
        [
            ("type", self.r#type),
            ("size", self.size),
            ("modify", self.modify),
            ("perm", self.perm),
            ("unique", self.unique),
            ("UNIX.mode", self.unix_mode),
        ]
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;
const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;

/// Half a Gregorian year, GNU `ls`'s boundary between "recent" dates
/// (shown with a time) and old ones (shown with a year).
const SIX_MONTHS: i64 = 31_556_952 / 2;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The `ls -l` type letter. `st_mode` decides; an entry built without
/// type bits falls back to its `kind`.
fn type_char(e: &Entry) -> u8 {
    match e.stat.mode & S_IFMT {
        S_IFREG => b'-',
        S_IFDIR => b'd',
        S_IFLNK => b'l',
        S_IFIFO => b'p',
        S_IFSOCK => b's',
        S_IFCHR => b'c',
        S_IFBLK => b'b',
        _ => match e.kind {
            EntryKind::Dir => b'd',
            EntryKind::Symlink => b'l',
            EntryKind::File | EntryKind::Other => b'-',
        },
    }
}

/// `drwxr-sr-t`-style mode string, ten bytes. Set-id and sticky bits
/// replace the matching `x` with `s`/`t`, or `S`/`T` when `x` is off.
fn push_mode_string(out: &mut Vec<u8>, e: &Entry) {
    out.push(type_char(e));
    let m = e.stat.mode;
    for (shift, special, on, off) in [
        (6, S_ISUID, b's', b'S'),
        (3, S_ISGID, b's', b'S'),
        (0, S_ISVTX, b't', b'T'),
    ] {
        let bits = (m >> shift) & 7;
        out.push(if bits & 4 != 0 { b'r' } else { b'-' });
        out.push(if bits & 2 != 0 { b'w' } else { b'-' });
        out.push(match (bits & 1 != 0, m & special != 0) {
            (true, true) => on,
            (false, true) => off,
            (true, false) => b'x',
            (false, false) => b'-',
        });
    }
}

/// Decimal digits of `v`, written into the end of `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// `%*llu`: right-aligned in `width`, wider if needed.
fn push_right(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let digits = decimal(v, &mut buf);
    out.resize(out.len() + width.saturating_sub(digits.len()), b' ');
    out.extend_from_slice(digits);
}

/// `%-*s` of a number: left-aligned in `width`, wider if needed.
fn push_left(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [0u8; 20];
    let digits = decimal(v, &mut buf);
    out.extend_from_slice(digits);
    out.resize(out.len() + width.saturating_sub(digits.len()), b' ');
}

fn push_two_digits(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// The 12-byte `ls` date: `Jan 02 03:04` when `mtime` is within the six
/// months up to `now`, else `Jan 02  2024`. Like GNU `ls`, a time in the
/// future (even by a second) shows the year: clients infer the missing
/// year of a `HH:MM` date as "the last such date not after now", so a
/// future date would be read as last year. The day is zero-padded, as
/// vsftpd's `%b %d` prints it. Years outside 0000..=9999 are clamped so the
/// column stays four digits.
fn push_list_date(out: &mut Vec<u8>, mtime: i64, now: i64) {
    let (year, month, day, hour, minute, _) = civil_from_unix(mtime.clamp(MDTM_MIN, MDTM_MAX));
    out.extend_from_slice(MONTHS[(month - 1) as usize]);
    out.push(b' ');
    push_two_digits(out, day);
    out.push(b' ');
    let recent = mtime <= now && mtime > now.saturating_sub(SIX_MONTHS);
    if recent {
        push_two_digits(out, hour);
        out.push(b':');
        push_two_digits(out, minute);
    } else {
        out.push(b' ');
        let year = year as u32; // clamped to 0..=9999 above
        push_two_digits(out, year / 100);
        push_two_digits(out, year % 100);
    }
}

/// Appends one LIST line for `e` plus CRLF, exactly as vsftpd formats it:
///
/// `-rw-r--r--    1 1000     1000         1234 Jan 02 03:04 name`
///
/// Owners are numeric (no user database lookups in a chroot-like server).
/// A symlink with a known target is shown as `name -> target`. Names are
/// written as [`names::display`] shows them; the caller decides whether names containing CR or LF
/// may be listed at all, since they would break any line-based format.
pub fn format_list_line(e: &Entry, now: i64, out: &mut Vec<u8>) {
    push_mode_string(out, e);
    out.push(b' ');
    push_right(out, e.stat.nlink, 4);
    out.push(b' ');
    push_left(out, u64::from(e.stat.uid), 8);
    out.push(b' ');
    push_left(out, u64::from(e.stat.gid), 8);
    out.push(b' ');
    push_right(out, e.stat.size, 8);
    out.push(b' ');
    push_list_date(out, e.stat.mtime, now);
    out.push(b' ');
    out.extend_from_slice(&names::display(&e.name));
    if let Some(target) = &e.link_target {
        if type_char(e) == b'l' {
            out.extend_from_slice(b" -> ");
            out.extend_from_slice(&names::display(target));
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The RFC 3659 `type` fact value. Symlinks are normally resolved by the
/// caller before formatting (MLSD describes what a client would get by
/// following the name, so a link to a file is `type=file`); an unresolved
/// one, e.g. a dangling link, is `OS.unix=symlink`. Other special files use
/// the `OS.unix=` escape the RFC provides for OS-specific types.
fn mlsx_type(e: &Entry) -> &'static [u8] {
    match e.kind {
        EntryKind::File => b"file",
        EntryKind::Dir => b"dir",
        EntryKind::Symlink => b"OS.unix=symlink",
        EntryKind::Other => match e.stat.mode & S_IFMT {
            S_IFIFO => b"OS.unix=fifo",
            S_IFSOCK => b"OS.unix=socket",
            S_IFCHR => b"OS.unix=chr",
            S_IFBLK => b"OS.unix=blk",
            _ => b"OS.unix=unknown",
        },
    }
}

fn push_hex(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends one MLSD line plus CRLF (RFC 3659 section 7.2):
///
/// `type=file;size=123;modify=20240102030405;perm=r;unique=801g2a;UNIX.mode=0644; name`
///
/// Facts come in that fixed order and those off in `facts` are left out;
/// `size` is sent for files only (a directory's `st_size` means nothing to
/// a client). `modify` is UTC, `unique` is `{dev:x}g{ino:x}` (stable for the
/// life of the file, what clients use to detect hard links and loops),
/// `UNIX.mode` the four octal digits of the permission and set-id/sticky
/// bits. `perm` says what this session may do with the entry
/// ([`push_perm_fact`]): what `perms` grants and the entry's mode bits
/// allow `viewer`. For an MLST reply the caller prefixes one space
/// (section 7.2).
pub fn format_mlsx_line(e: &Entry, facts: Facts, perms: Perms, viewer: Viewer, out: &mut Vec<u8>) {
    if facts.r#type {
        out.extend_from_slice(b"type=");
        out.extend_from_slice(mlsx_type(e));
        out.push(b';');
    }
    if facts.size && e.kind == EntryKind::File {
        out.extend_from_slice(b"size=");
        push_right(out, e.stat.size, 0);
        out.push(b';');
    }
    if facts.modify {
        out.extend_from_slice(b"modify=");
        push_mdtm(e.stat.mtime, out);
        out.push(b';');
    }
    if facts.perm {
        out.extend_from_slice(b"perm=");
        push_perm_fact(e.kind, perms, Access::of(&e.stat, viewer), out);
        out.push(b';');
    }
    if facts.unique {
        out.extend_from_slice(b"unique=");
        push_hex(out, e.stat.dev);
        out.push(b'g');
        push_hex(out, e.stat.ino);
        out.push(b';');
    }
    if facts.unix_mode {
        let bits = e.stat.mode & 0o7777;
        out.extend_from_slice(b"UNIX.mode=");
        for shift in [9, 6, 3, 0] {
            out.push(b'0' + ((bits >> shift) & 7) as u8);
        }
        out.push(b';');
    }
    out.push(b' ');
    out.extend_from_slice(&names::display(&e.name));
    out.extend_from_slice(b"\r\n");
}

/// Appends the RFC 3659 section 7.5.5 `perm` fact of an entry: the
/// letters of what this session may do with it, from its permissions and
/// what the entry's own mode bits allow (`access`, see [`Access::of`]).
/// Files: `a` APPE and `w` STOR (need write), `d` DELE, `f` RNFR, `r`
/// RETR (needs read); anything else that is not a directory (a FIFO, a
/// socket, a device, a dangling symlink) only `d` and `f`. Directories: `c` create files in it and `m` MKD in
/// it and `p` delete its entries (need write and search), `d` RMD, `e`
/// CWD (needs search), `f` RNFR, `l` LIST/NLST/MLSD (needs read and
/// search). `d` and `f` depend on the parent directory, which is not
/// checked. An anonymous session (list and read) gets `r` and `el` for
/// what the world may read, `e` for a `0711` directory.
pub fn push_perm_fact(kind: EntryKind, perms: Perms, access: Access, out: &mut Vec<u8>) {
    let Access {
        read,
        write,
        search,
    } = access;
    let letters: &[(u8, Perms, bool)] = match kind {
        EntryKind::Dir => &[
            (b'c', Perms::WRITE, write && search),
            (b'd', Perms::DELETE, true),
            (b'e', Perms::NONE, search),
            (b'f', Perms::RENAME, true),
            (b'l', Perms::LIST, read && search),
            (b'm', Perms::MKDIR, write && search),
            (b'p', Perms::DELETE, write && search),
        ],
        EntryKind::File => &[
            (b'a', Perms::APPEND, write),
            (b'd', Perms::DELETE, true),
            (b'f', Perms::RENAME, true),
            (b'r', Perms::READ, read),
            (b'w', Perms::WRITE, write),
        ],
        // A FIFO, socket, device or dangling symlink is never read or
        // appended to (RETR and APPE refuse it), whatever its mode bits
        // say; RFC 3659 section 7.5.5 gives `a`, `r` and `w` to files only
        // (a STOR to its name replaces it with a file).
        EntryKind::Symlink | EntryKind::Other => {
            &[(b'd', Perms::DELETE, true), (b'f', Perms::RENAME, true)]
        }
    };
    for &(letter, needs, allowed) in letters {
        if allowed && perms.has(needs) {
            out.push(letter);
        }
    }
}

/// How to render a listing: the command's format and options, and what
/// the session may do (for MLSD's `perm`).
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// LIST, NLST or MLSD rendering.
    pub format: ListFormat,
    /// `-a` (or `--show-dotfiles`): dot-files too.
    pub all: bool,
    /// NLST of a named directory sends path names: each name prefixed
    /// with the directory as the client typed it (RFC 959: "a list of file
    /// names"; mget uses them as given). See [`nlst_prefix`].
    pub prefix: Option<Vec<u8>>,
    /// The MLSx facts the session asked for (OPTS MLST).
    pub facts: Facts,
    /// What the session may do.
    pub perms: Perms,
    /// The current time (seconds since the epoch), for LIST's recent/old
    /// date choice.
    pub now: i64,
    /// Anonymous session: entries not published to the world (see
    /// [`super::world::visible`]) are left out.
    pub published_only: bool,
}

impl ListOptions {
    /// Whose mode bits `perm` is checked against: the world's for an
    /// anonymous session, none for an account.
    pub fn viewer(&self) -> Viewer {
        Viewer::of_session(self.published_only)
    }
}

/// The NLST prefix for a directory typed as `shown`: the path with one
/// trailing `/` (none for an empty argument).
pub fn nlst_prefix(shown: &[u8]) -> Option<Vec<u8>> {
    if shown.is_empty() {
        return None;
    }
    let mut p = shown.to_vec();
    while p.len() > 1 && p.ends_with(b"/") {
        p.pop();
    }
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    Some(p)
}

/// True for names a listing leaves out: a name with CR or LF would end a
/// listing line early and could show the client entries that do not
/// exist; a dot-file shows only with `-a` (or `--show-dotfiles`), as in
/// `ls` and vsftpd, in every listing format alike; an anonymous session
/// sees only what is published to the world ([`super::world::visible`]).
pub(crate) fn hidden(e: &Entry, opts: &ListOptions) -> bool {
    e.name.iter().any(|&b| b == b'\r' || b == b'\n')
        || (!opts.all && e.name.first() == Some(&b'.'))
        || (opts.published_only && !super::world::visible(&e.stat))
}

/// Appends the lines of a directory listing of `entries` (one per entry,
/// CRLF-terminated), leaving out CR/LF names and, without `-a`, dot-files.
pub fn render_entries(entries: &[Entry], opts: &ListOptions, out: &mut Vec<u8>) {
    for e in entries.iter().filter(|e| !hidden(e, opts)) {
        match opts.format {
            ListFormat::Long => format_list_line(e, opts.now, out),
            ListFormat::Names => {
                if let Some(p) = &opts.prefix {
                    out.extend_from_slice(p);
                }
                out.extend_from_slice(&names::display(&e.name));
                out.extend_from_slice(b"\r\n");
            }
            ListFormat::Machine => format_mlsx_line(e, opts.facts, opts.perms, opts.viewer(), out),
        }
    }
}

/// Appends the LIST or NLST line of a single file (`LIST file`), named as
/// the client typed it. MLSD of a file is refused by the caller.
pub fn render_file(e: &Entry, opts: &ListOptions, out: &mut Vec<u8>) {
    match opts.format {
        ListFormat::Long => format_list_line(e, opts.now, out),
        _ => {
            out.extend_from_slice(&names::display(&e.name));
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The text of an MLST reply (RFC 3659 section 7.2): `Listing PATH`, one
/// space-prefixed fact line for `e` (named with its full virtual path),
/// `End`. The caller sends it as a multi-line 250.
pub fn mlst_text(vpath: &[u8], e: &Entry, facts: Facts, perms: Perms, viewer: Viewer) -> Vec<u8> {
    let mut text = b"Listing ".to_vec();
    text.extend_from_slice(&names::display(vpath));
    text.extend_from_slice(b"\n ");
    format_mlsx_line(e, facts, perms, viewer, &mut text);
    while matches!(text.last(), Some(b'\r') | Some(b'\n')) {
        text.pop();
    }
    text.extend_from_slice(b"\nEnd");
    text
}

/// The text of a `STAT path` reply (RFC 959: a LIST over the control
/// connection): `Status follows:`, the listing's lines without CR, `End of
/// status`. The caller sends it as a multi-line 213.
pub fn stat_text(listing: &[u8]) -> Vec<u8> {
    let mut text = b"Status follows:\n".to_vec();
    for line in listing.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        text.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        text.push(b'\n');
    }
    text.extend_from_slice(b"End of status");
    text
}

/// The name a single-file LIST/NLST shows: what the client typed, else the
/// last component of the path.
pub fn shown_name(vpath: &[u8], shown: Option<&[u8]>) -> Vec<u8> {
    shown
        .map(|s| s.to_vec())
        .unwrap_or_else(|| path::file_name(vpath).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-02 03:04:05 UTC.
    const T: i64 = 1_704_164_645;
    const DAY: i64 = 86_400;

    fn file(name: &[u8], mode: u32, size: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            kind: EntryKind::File,
            stat: Stat {
                mode,
                nlink: 1,
                uid: 1000,
                gid: 1000,
                size,
                mtime: T,
                dev: 0x801,
                ino: 0x2a,
            },
            link_target: None,
        }
    }

    fn list(e: &Entry, now: i64) -> String {
        let mut out = Vec::new();
        format_list_line(e, now, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn mlsx(e: &Entry, facts: Facts, perms: Perms) -> String {
        let mut out = Vec::new();
        format_mlsx_line(e, facts, perms, Viewer::World, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn list_line_layout() {
        let dir = {
            let mut e = file(b"pub", 0, 0);
            e.kind = EntryKind::Dir;
            e.stat.mode = 0o040_755;
            e.stat.nlink = 2;
            e.stat.uid = 0;
            e.stat.gid = 0;
            e.stat.size = 4096;
            e
        };
        let link = {
            let mut e = file(b"latest", 0, 0);
            e.kind = EntryKind::Symlink;
            e.stat.mode = 0o120_777;
            e.stat.size = 7;
            e.link_target = Some(b"../target".to_vec());
            e
        };
        let big = {
            let mut e = file(b"big.iso", 0o100_444, 12_345_678_901);
            e.stat.nlink = 123_456;
            e.stat.uid = u32::MAX;
            e.stat.gid = 65_534;
            e
        };
        let cases: &[(Entry, &str)] = &[
            (
                file(b"name", 0o100_644, 1234),
                "-rw-r--r--    1 1000     1000         1234 Jan 02 03:04 name\r\n",
            ),
            (
                dir,
                "drwxr-xr-x    2 0        0            4096 Jan 02 03:04 pub\r\n",
            ),
            (
                link,
                "lrwxrwxrwx    1 1000     1000            7 Jan 02 03:04 latest -> ../target\r\n",
            ),
            // Wider values push the columns, keeping one space between.
            (
                big,
                "-r--r--r-- 123456 4294967295 65534    12345678901 Jan 02 03:04 big.iso\r\n",
            ),
            (
                file(b"with space ", 0o100_600, 0),
                "-rw-------    1 1000     1000            0 Jan 02 03:04 with space \r\n",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(list(e, T + DAY), *want);
        }
    }

    #[test]
    fn names_that_are_not_utf8_are_shown_in_the_legacy_charset() {
        // UTF-8 names go out as they are; others decoded from windows-1252,
        // so a strict UTF-8 client can read every listing.
        let mut out = Vec::new();
        format_list_line(&file("ä.txt".as_bytes(), 0o100_644, 1), T, &mut out);
        assert!(out.ends_with(" Jan 02 03:04 ä.txt\r\n".as_bytes()));
        out.clear();
        format_list_line(&file(b"\xe4\xff", 0o100_644, 1), T, &mut out);
        assert!(out.ends_with(" Jan 02 03:04 äÿ\r\n".as_bytes()));
        let o = ListOptions {
            format: ListFormat::Names,
            all: false,
            prefix: None,
            facts: Facts::default(),
            perms: Perms::anonymous(),
            now: T,
            published_only: false,
        };
        out.clear();
        render_entries(&[file(b"caf\xe9", 0o100_644, 1)], &o, &mut out);
        assert_eq!(out, "café\r\n".as_bytes());
    }

    #[test]
    fn mode_strings() {
        let cases: &[(u32, EntryKind, &str)] = &[
            (0o100_644, EntryKind::File, "-rw-r--r--"),
            (0o100_000, EntryKind::File, "----------"),
            (0o100_777, EntryKind::File, "-rwxrwxrwx"),
            (0o104_755, EntryKind::File, "-rwsr-xr-x"),
            (0o104_644, EntryKind::File, "-rwSr--r--"),
            (0o102_755, EntryKind::File, "-rwxr-sr-x"),
            (0o102_744, EntryKind::File, "-rwxr-Sr--"),
            (0o041_777, EntryKind::Dir, "drwxrwxrwt"),
            (0o041_776, EntryKind::Dir, "drwxrwxrwT"),
            (0o107_777, EntryKind::File, "-rwsrwsrwt"),
            (0o107_000, EntryKind::File, "---S--S--T"),
            (0o010_644, EntryKind::Other, "prw-r--r--"),
            (0o140_755, EntryKind::Other, "srwxr-xr-x"),
            (0o020_666, EntryKind::Other, "crw-rw-rw-"),
            (0o060_660, EntryKind::Other, "brw-rw----"),
            (0o120_777, EntryKind::Symlink, "lrwxrwxrwx"),
            // No type bits: the kind decides.
            (0o755, EntryKind::Dir, "drwxr-xr-x"),
            (0o777, EntryKind::Symlink, "lrwxrwxrwx"),
            (0o644, EntryKind::File, "-rw-r--r--"),
            (0o644, EntryKind::Other, "-rw-r--r--"),
        ];
        for &(mode, kind, want) in cases {
            let e = {
                let mut e = file(b"x", mode, 0);
                e.kind = kind;
                e
            };
            let line = list(&e, T);
            assert_eq!(&line[..10], want, "mode {mode:o}");
        }
    }

    #[test]
    fn list_dates() {
        let six = SIX_MONTHS;
        let cases: &[(i64, i64, &str)] = &[
            // (mtime, now, date field)
            (T, T, "Jan 02 03:04"),
            (T, T + DAY, "Jan 02 03:04"),
            (T, T + six - 1, "Jan 02 03:04"),
            (T, T + six, "Jan 02  2024"),
            (T, T + 400 * DAY, "Jan 02  2024"),
            // In the future, even slightly: show the year.
            (T, T - 1, "Jan 02  2024"),
            (T, T - 30 * DAY, "Jan 02  2024"),
            (0, T, "Jan 01  1970"),
            (-1, T, "Dec 31  1969"),
            (1_709_251_199, 1_709_251_199, "Feb 29 23:59"),
            (951_782_400, T, "Feb 29  2000"),
            // Day-of-month is zero-padded; the clock is 24-hour.
            (1_704_067_200 + 23 * 3600 + 59 * 60, T, "Jan 01 23:59"),
            (1_701_302_400, T, "Nov 30 00:00"),
            // Far outside 0000..=9999: clamped, still four digits.
            (i64::MIN, T, "Jan 01  0000"),
            (i64::MAX, T, "Dec 31  9999"),
            (i64::MIN, i64::MIN, "Jan 01  0000"),
        ];
        for &(mtime, now, want) in cases {
            let e = {
                let mut e = file(b"n", 0o100_644, 1);
                e.stat.mtime = mtime;
                e
            };
            let line = list(&e, now);
            let date = &line[line.len() - 2 - 2 - 12..line.len() - 4];
            assert_eq!(date, want, "mtime {mtime} now {now}");
        }
    }

    #[test]
    fn list_link_target_only_for_symlinks() {
        // A resolved entry that still carries a target must not grow " -> ".
        let e = {
            let mut e = file(b"f", 0o100_644, 1);
            e.link_target = Some(b"t".to_vec());
            e
        };
        assert!(list(&e, T).ends_with(" f\r\n"));
        // A symlink whose target could not be read is listed without one.
        let e = {
            let mut e = file(b"l", 0o120_777, 1);
            e.kind = EntryKind::Symlink;
            e
        };
        assert!(list(&e, T).ends_with(" l\r\n"));
    }

    #[test]
    fn mlsx_lines() {
        let all = Facts::default();
        let dir = {
            let mut e = file(b"pub", 0, 4096);
            e.kind = EntryKind::Dir;
            e.stat.mode = 0o042_755;
            e
        };
        let link = {
            let mut e = file(b"dangling", 0, 9);
            e.kind = EntryKind::Symlink;
            e.stat.mode = 0o120_777;
            e
        };
        let fifo = {
            let mut e = file(b"p", 0o010_600, 0);
            e.kind = EntryKind::Other;
            e
        };
        let big = {
            let mut e = file(b"a b", 0o104_755, u64::MAX);
            e.stat.dev = u64::MAX;
            e.stat.ino = 0;
            e
        };
        let cases: &[(Entry, Facts, Perms, &str)] = &[
            (
                file(b"name", 0o100_644, 123),
                all,
                Perms::anonymous(),
                "type=file;size=123;modify=20240102030405;perm=r;unique=801g2a;UNIX.mode=0644; name\r\n",
            ),
            (
                dir,
                all,
                Perms::anonymous(),
                "type=dir;modify=20240102030405;perm=el;unique=801g2a;UNIX.mode=2755; pub\r\n",
            ),
            (
                link,
                all,
                Perms::NONE,
                "type=OS.unix=symlink;modify=20240102030405;perm=;unique=801g2a;UNIX.mode=0777; dangling\r\n",
            ),
            (
                fifo,
                all,
                Perms::NONE,
                "type=OS.unix=fifo;modify=20240102030405;perm=;unique=801g2a;UNIX.mode=0600; p\r\n",
            ),
            (
                big,
                all,
                Perms::anonymous(),
                "type=file;size=18446744073709551615;modify=20240102030405;perm=r;unique=ffffffffffffffffg0;UNIX.mode=4755; a b\r\n",
            ),
            (
                file(b"x", 0o100_644, 0),
                Facts::from_names(&["size".into(), "type".into()]),
                Perms::anonymous(),
                "type=file;size=0; x\r\n",
            ),
            (
                file(b"x", 0o100_644, 5),
                Facts::from_names(&["UNIX.MODE".into(), "Modify".into()]),
                Perms::anonymous(),
                "modify=20240102030405;UNIX.mode=0644; x\r\n",
            ),
            // No facts at all: just SP name (RFC 3659 allows empty facts).
            (file(b"x", 0o100_644, 5), Facts::from_names(&[]), Perms::anonymous(), " x\r\n"),
        ];
        for (e, facts, perm, want) in cases {
            assert_eq!(mlsx(e, *facts, *perm), *want);
        }
    }

    #[test]
    fn facts_from_names_and_feat() {
        assert_eq!(
            Facts::default().feat_line(),
            "MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;"
        );
        let some = Facts::from_names(&["type".into(), "unix.mode".into(), "bogus".into()]);
        assert_eq!(
            some,
            Facts {
                r#type: true,
                size: false,
                modify: false,
                perm: false,
                unique: false,
                unix_mode: true,
            }
        );
        assert_eq!(
            some.feat_line(),
            "MLST type*;size;modify;perm;unique;UNIX.mode*;"
        );
        let every: Vec<String> = ["TYPE", "Size", "modify", "perm", "unique", "unix.mode"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(Facts::from_names(&every), Facts::default());
        assert_eq!(
            Facts::from_names(&[]).feat_line(),
            "MLST type;size;modify;perm;unique;UNIX.mode;"
        );
    }

    #[test]
    fn many_lines_append_to_one_buffer() {
        let mut out = Vec::new();
        for i in 0..3u64 {
            let e = {
                let mut e = file(format!("f{i}").as_bytes(), 0o100_644, i);
                e.stat.ino = i;
                e
            };
            format_list_line(&e, T, &mut out);
            format_mlsx_line(
                &e,
                Facts::default(),
                Perms::anonymous(),
                Viewer::World,
                &mut out,
            );
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("\r\n").count(), 6);
        assert!(text.contains("unique=801g2;UNIX.mode=0644; f2\r\n"));
    }

    fn all_perms() -> Perms {
        Perms::NAMES
            .iter()
            .fold(Perms::default(), |p, (_, b)| p.with(*b))
    }

    #[test]
    fn perm_fact_follows_the_session() {
        // (permissions, file, directory, FIFO or dangling symlink).
        let table: &[(Perms, &str, &str, &str)] = &[
            (Perms::anonymous(), "r", "el", ""),
            (all_perms(), "adfrw", "cdeflmp", "df"),
            (Perms::NONE, "", "e", ""),
            (Perms::WRITE, "w", "ce", ""),
            (Perms::APPEND, "a", "e", ""),
            (Perms::DELETE, "d", "dep", "d"),
            (Perms::RENAME, "f", "ef", "f"),
            (Perms::MKDIR, "", "em", ""),
            (Perms::CHMOD, "", "e", ""),
        ];
        for (perms, file_fact, dir_fact, other_fact) in table {
            for (kind, want) in [
                (EntryKind::File, file_fact),
                (EntryKind::Symlink, other_fact),
                (EntryKind::Other, other_fact),
                (EntryKind::Dir, dir_fact),
            ] {
                let mut out = Vec::new();
                push_perm_fact(kind, *perms, Access::ALL, &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), *want, "{perms:?} {kind:?}");
            }
        }
    }

    #[test]
    fn perm_fact_follows_the_mode_bits() {
        let access = |read, write, search| Access {
            read,
            write,
            search,
        };
        // (access, file letters, directory letters), every permission.
        let table = [
            (access(true, true, true), "adfrw", "cdeflmp"),
            (access(true, false, true), "dfr", "defl"),
            (access(false, false, true), "df", "def"),
            (access(true, true, false), "adfrw", "df"),
            (access(false, true, true), "adfw", "cdefmp"),
            (access(false, false, false), "df", "df"),
        ];
        for (a, file_fact, dir_fact) in table {
            for (kind, want) in [(EntryKind::File, file_fact), (EntryKind::Dir, dir_fact)] {
                let mut out = Vec::new();
                push_perm_fact(kind, all_perms(), a, &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), want, "{a:?} {kind:?}");
            }
        }
        // Anonymous, by the world's bits: a 0711 directory can be entered,
        // not listed; a 0755 one both.
        let dir = |mode| Entry {
            name: b"d".to_vec(),
            kind: EntryKind::Dir,
            stat: Stat::with_mode(libc::S_IFDIR | mode),
            link_target: None,
        };
        let facts = Facts::from_names(&["perm".into()]);
        for (mode, want) in [(0o711, "perm=e; d\r\n"), (0o755, "perm=el; d\r\n")] {
            let mut out = Vec::new();
            format_mlsx_line(
                &dir(mode),
                facts,
                Perms::anonymous(),
                Viewer::World,
                &mut out,
            );
            assert_eq!(String::from_utf8(out).unwrap(), want, "{mode:o}");
        }
    }

    fn opts(format: ListFormat, all: bool) -> ListOptions {
        ListOptions {
            format,
            all,
            prefix: None,
            facts: Facts::from_names(&["type".into(), "perm".into()]),
            perms: all_perms(),
            now: T,
            published_only: false,
        }
    }

    #[test]
    fn anonymous_listings_show_only_published_entries() {
        let dir = |name: &[u8], mode| Entry {
            kind: EntryKind::Dir,
            stat: Stat {
                mode: libc::S_IFDIR | mode,
                ..file(name, 0, 0).stat
            },
            ..file(name, 0, 0)
        };
        let entries = [
            file(b"private", 0o100_600, 1),
            file(b"public", 0o100_644, 1),
            file(b"group-only", 0o100_640, 1),
            dir(b"closed", 0o700),
            dir(b"drop-box", 0o711),
            dir(b"pub", 0o755),
        ];
        let mut o = opts(ListFormat::Names, false);
        assert_eq!(
            render(&entries, &o),
            "private\r\npublic\r\ngroup-only\r\nclosed\r\ndrop-box\r\npub\r\n"
        );
        o.published_only = true;
        assert_eq!(render(&entries, &o), "public\r\ndrop-box\r\npub\r\n");
    }

    fn render(entries: &[Entry], o: &ListOptions) -> String {
        let mut out = Vec::new();
        render_entries(entries, o, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn listings_hide_dotfiles_without_a_and_never_show_crlf_names() {
        let entries = [
            file(b".hidden", 0o100_644, 1),
            file(b"a", 0o100_644, 1),
            file(b"bad\r\nname", 0o100_644, 1),
            file(b"lf\nonly", 0o100_644, 1),
        ];
        let table: &[(ListFormat, bool, &str)] = &[
            (ListFormat::Names, false, "a\r\n"),
            (ListFormat::Names, true, ".hidden\r\na\r\n"),
            // MLSD follows the same rule.
            (ListFormat::Machine, false, "type=file;perm=adfrw; a\r\n"),
            (
                ListFormat::Machine,
                true,
                "type=file;perm=adfrw; .hidden\r\ntype=file;perm=adfrw; a\r\n",
            ),
        ];
        for (format, all, want) in table {
            assert_eq!(
                render(&entries, &opts(*format, *all)),
                *want,
                "{format:?} -a {all}"
            );
        }
        let long = render(&entries, &opts(ListFormat::Long, false));
        assert_eq!(long.lines().count(), 1, "{long}");
        assert!(long.ends_with(" a\r\n"), "{long}");
    }

    #[test]
    fn nlst_of_a_named_directory_sends_path_names() {
        for (shown, want) in [
            (&b""[..], None),
            (b"sub", Some(&b"sub/"[..])),
            (b"sub/", Some(b"sub/")),
            (b"sub///", Some(b"sub/")),
            (b"/", Some(b"/")),
            (b"/pub/x", Some(b"/pub/x/")),
        ] {
            assert_eq!(nlst_prefix(shown).as_deref(), want, "{shown:?}");
        }
        let mut o = opts(ListFormat::Names, false);
        o.prefix = nlst_prefix(b"sub");
        assert_eq!(render(&[file(b"f", 0o100_644, 1)], &o), "sub/f\r\n");
        // A single file is named as the client typed it.
        let mut out = Vec::new();
        let e = file(&shown_name(b"/x/f.txt", Some(b"x/f.txt")), 0o100_644, 1);
        render_file(&e, &o, &mut out);
        assert_eq!(out, b"x/f.txt\r\n");
        assert_eq!(shown_name(b"/x/f.txt", None), b"f.txt");
    }

    #[test]
    fn mlst_and_stat_texts() {
        let e = file(b"/pub/f", 0o100_644, 3);
        let facts = Facts::from_names(&["type".into(), "size".into(), "perm".into()]);
        assert_eq!(
            String::from_utf8(mlst_text(
                b"/pub/f",
                &e,
                facts,
                Perms::anonymous(),
                Viewer::World
            ))
            .unwrap(),
            "Listing /pub/f\n type=file;size=3;perm=r; /pub/f\nEnd"
        );
        assert_eq!(
            String::from_utf8(stat_text(b"line one\r\nline two\r\n")).unwrap(),
            "Status follows:\nline one\nline two\nEnd of status"
        );
        assert_eq!(
            String::from_utf8(stat_text(b"")).unwrap(),
            "Status follows:\nEnd of status"
        );
    }
}
