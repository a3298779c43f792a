//! The properties that hostile input must not break, written once and
//! checked two ways: by proptest in the normal test suite
//! (tests/properties.rs) and by the cargo-fuzz targets in fuzz/, which
//! include this file. Each function panics on a violation.
//!
//! - [`command`]: the parser takes any bytes; its error replies are one
//!   line of the server's own printable ASCII, never the client's bytes.
//! - [`line_reader`]: memory stays bounded by the line limit, no line is
//!   longer than the limit, and how the stream was cut does not matter.
//! - [`addr`]: the PORT/EPRT/227/229 codecs never panic, and what they
//!   parse formats back to itself.
//! - [`path_join`]: a joined virtual path is absolute and normalized: no
//!   `.`, `..` or empty component can reach openat2.
//! - [`Tree::resolve`]: whatever path a client sends, openat2 with
//!   RESOLVE_BENEATH never opens anything outside the root, symlinks
//!   pointing out included.
//! - [`session`]: the session state machine survives any command sequence.
#![allow(
    unreachable_pub,
    reason = "shared by tests/properties.rs and the fuzz targets"
)]
#![allow(dead_code)]

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ringftp::auth::login::Account;
use ringftp::auth::Perms;
use ringftp::engine::sys;
use ringftp::proto::{addr as codec, parse, LineEvent, LineReader, MAX_LINE};
use ringftp::session::{Rules, Session, Step};
use ringftp::vfs::{path, resolve};

/// The parser on one line (as the line reader delivers it).
pub fn command(line: &[u8]) {
    match parse(line) {
        Ok(cmd) => {
            let verb = cmd.verb();
            assert!(!verb.is_empty() && verb.bytes().all(|b| b.is_ascii_uppercase()));
        }
        Err(e) => {
            let wire = e.reply().to_bytes();
            // One reply line, ending with CRLF, made of printable ASCII
            // only: whatever bytes the client sent, none is echoed into
            // the reply (the texts are the server's own).
            assert!(wire.ends_with(b"\r\n"), "{wire:?}");
            let text = &wire[..wire.len() - 2];
            assert!(text.iter().all(|b| (0x20..0x7f).contains(b)), "{wire:?}");
        }
    }
}

/// The line reader fed `data` whole and cut at `cuts` (offsets, any
/// order, taken modulo the length): same events, bounded memory.
pub fn line_reader(data: &[u8], cuts: &[usize], max: usize) {
    let mut whole = LineReader::new(max);
    whole.feed(data);
    let want: Vec<LineEvent> = std::iter::from_fn(|| whole.next_event()).collect();
    for ev in &want {
        if let LineEvent::Line(l) = ev {
            assert!(l.len() <= max, "a line of {} bytes > {max}", l.len());
            assert!(!l.contains(&b'\n'));
        }
    }
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    let mut r = LineReader::new(max);
    let mut got = Vec::new();
    for w in points.windows(2) {
        r.feed(&data[w[0]..w[1]]);
        got.extend(std::iter::from_fn(|| r.next_event()));
        assert!(
            r.buffered() <= max + 1,
            "buffered {} > {}",
            r.buffered(),
            max + 1
        );
    }
    assert_eq!(got, want, "events depend on how the stream was cut");
}

/// The address codecs on arbitrary text.
pub fn addr(text: &str) {
    if let Ok(a) = codec::parse_port(text) {
        assert_eq!(codec::parse_port(&codec::format_port(a)), Ok(a));
        assert_ne!(a.port(), 0);
    }
    if let Ok(a) = codec::parse_eprt(text) {
        assert_eq!(codec::parse_eprt(&codec::format_eprt(a)), Ok(a), "{text:?}");
    }
    if let Some(a) = codec::parse_pasv_reply(text) {
        assert_eq!(
            codec::parse_pasv_reply(&codec::format_pasv_reply(a)),
            Some(a)
        );
    }
    if let Some(p) = codec::parse_epsv_reply(text) {
        assert_ne!(p, 0);
        assert_eq!(
            codec::parse_epsv_reply(&codec::format_epsv_reply(p)),
            Some(p)
        );
    }
}

/// `path::join` and `path::relative`: the result is absolute, normalized,
/// a fixed point of joining, and its relative form cannot climb.
pub fn path_join(cwd: &[u8], arg: &[u8]) {
    // The session's cwd is always itself a joined path.
    let cwd = path::join(b"/", cwd);
    let p = path::join(&cwd, arg);
    assert_eq!(p[0], b'/', "{p:?}");
    if p.len() > 1 {
        assert!(!p.ends_with(b"/"), "{p:?}");
        for comp in p[1..].split(|&b| b == b'/') {
            assert!(
                !comp.is_empty() && comp != b"." && comp != b"..",
                "component {comp:?} in {p:?}"
            );
        }
    }
    assert_eq!(path::join(b"/", &p), p, "not a fixed point");
    assert_eq!(path::join(&cwd, &p), p, "an absolute path ignores the cwd");
    assert!(p.starts_with(&path::parent(&p)));
    match path::relative(&p) {
        Some(rel) => {
            let rel = rel.as_bytes();
            assert!(!rel.starts_with(b"/"), "{rel:?}");
            assert!(!rel.split(|&b| b == b'/').any(|c| c == b".."), "{rel:?}");
        }
        None => assert!(p.contains(&0), "relative refused {p:?}"),
    }
}

/// A directory tree with symlinks that point inside, outside (relative
/// and absolute), at themselves and at magic /proc links, next to a
/// directory that must never be reached.
pub struct Tree {
    _dir: tempfile::TempDir,
    /// The served root, canonical.
    pub root: PathBuf,
    root_fd: OwnedFd,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("ringftp-props-")
            .tempdir()
            .unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        for d in ["a/b/c", "empty", "pub/debian"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        std::fs::write(root.join("a/file"), b"file").unwrap();
        std::fs::write(root.join("pub/debian/x.iso"), b"iso").unwrap();
        let links: &[(&str, &str)] = &[
            ("in", "a/b"),
            ("a/up", ".."),
            ("a/b/upup", "../.."),
            ("out", "../outside"),
            ("a/out", "../../outside/secret"),
            ("abs", "/etc"),
            ("abs-root", "/"),
            ("abs-outside", outside.to_str().unwrap()),
            ("loop", "loop"),
            ("a/b/c/chain", "../../../out"),
            ("proc-self", "/proc/self/root"),
            ("dangling", "nowhere/at/all"),
            ("pub/latest", "debian"),
        ];
        for (name, target) in links {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        }
        let root_fd: OwnedFd = std::fs::File::open(&root).unwrap().into();
        Tree {
            _dir: dir,
            root,
            root_fd,
        }
    }

    /// Names worth combining into paths (the fuzzer and proptest pick
    /// from these besides arbitrary bytes).
    pub const NAMES: &'static [&'static str] = &[
        "a",
        "b",
        "c",
        "file",
        "in",
        "up",
        "upup",
        "out",
        "abs",
        "abs-root",
        "abs-outside",
        "loop",
        "chain",
        "proc-self",
        "dangling",
        "pub",
        "debian",
        "latest",
        "x.iso",
        "empty",
        "..",
        ".",
        "",
        "/",
        "//",
        "secret",
        "outside",
        "etc",
        "passwd",
    ];

    /// Opens `raw` below the root as the server does (openat2,
    /// RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), both as the client's raw
    /// bytes and after the session's `path::join`; whatever opens must lie
    /// inside the root. Returns whether the raw form opened.
    pub fn resolve(&self, raw: &[u8]) -> bool {
        let opened = match CString::new(raw) {
            Ok(c) => self.check(&c, raw),
            Err(_) => false,
        };
        let joined = path::join(b"/", raw);
        if let Some(rel) = path::relative(&joined) {
            self.check(&rel, raw);
        }
        opened
    }

    fn check(&self, rel: &CString, raw: &[u8]) -> bool {
        let Ok(fd) = sys::openat2_blocking(
            self.root_fd.as_raw_fd(),
            rel,
            libc::O_PATH,
            resolve::RESOLVE,
        ) else {
            return false;
        };
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert!(
            inside(&real, &self.root),
            "{raw:?} (as {rel:?}) opened {} outside the root {}",
            real.display(),
            self.root.display()
        );
        true
    }
}

fn inside(p: &Path, root: &Path) -> bool {
    p.starts_with(root)
}

/// Runs the session state machine over `lines`, answering its I/O
/// requests the way the driver would when everything succeeds.
pub fn session(lines: &[&[u8]]) {
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), 40000);
    let mut s = Session::new(peer, Rules::default(), Instant::now());
    for line in lines {
        let Ok(cmd) = parse(line) else { continue };
        match s.handle(cmd, Instant::now()) {
            Step::CheckLogin { user, .. } => {
                if user.len() % 2 == 0 {
                    let all = Perms::NAMES
                        .iter()
                        .fold(Perms::anonymous(), |p, (_, q)| p.with(*q));
                    let mut account = Account::anonymous(&user);
                    account.anonymous = false;
                    account.perms = all;
                    s.logged_in(account);
                } else {
                    s.login_refused();
                }
            }
            Step::OpenPassive { .. } => s.passive_opened(),
            Step::ChangeDir(p) => {
                assert_eq!(p[0], b'/');
                s.cwd_changed(p);
            }
            Step::RenameFrom { path, directory } => s.rename_from(path, directory),
            Step::Retr { path, .. }
            | Step::Store { path, .. }
            | Step::Delete(path)
            | Step::MakeDir(path)
            | Step::RemoveDir(path)
            | Step::Mlst(path)
            | Step::Size(path)
            | Step::Mdtm(path) => assert_eq!(path[0], b'/'),
            Step::List { listing, .. } | Step::StatPath(listing) => {
                assert_eq!(listing.path[0], b'/')
            }
            _ => {}
        }
        assert_eq!(s.cwd()[0], b'/');
    }
}

/// The line limit the server uses.
pub const LINE_LIMIT: usize = MAX_LINE;
