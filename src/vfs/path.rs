//! Virtual paths: what the client sees, `/` being `--root`.
//!
//! Joining a client argument onto the working directory is pure string
//! work here; it removes `.`, `..` and doubled slashes so logs and replies
//! show clean paths and `..` can never climb above `/`. This is *not* the
//! security boundary: symlinks are only known to the kernel, so
//! [`crate::vfs::resolve`] opens every path with openat2(RESOLVE_BENEATH).

use std::ffi::CString;

/// Joins `arg` onto the absolute virtual directory `cwd` and normalizes the
/// result to an absolute virtual path without `.`/`..`/empty components.
/// An absolute `arg` ignores `cwd`. `..` at `/` stays at `/`, as in a chroot.
pub fn join(cwd: &[u8], arg: &[u8]) -> Vec<u8> {
    // What clients send most (a name, or a path, with nothing to resolve)
    // is copied as it is: one allocation, no component list.
    if is_normal(arg) {
        return arg.to_vec();
    }
    if is_normal(cwd) && !arg.is_empty() && arg.split(|&b| b == b'/').all(plain_component) {
        let slash = if cwd == b"/" { 0 } else { 1 };
        let mut out = Vec::with_capacity(cwd.len() + slash + arg.len());
        out.extend_from_slice(cwd);
        if slash == 1 {
            out.push(b'/');
        }
        out.extend_from_slice(arg);
        return out;
    }
    join_components(cwd, arg)
}

/// [`join`] the long way: component by component.
fn join_components(cwd: &[u8], arg: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let base: &[u8] = if arg.first() == Some(&b'/') { b"" } else { cwd };
    for comp in base.split(|&b| b == b'/').chain(arg.split(|&b| b == b'/')) {
        match comp {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(cwd.len() + arg.len() + 1);
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Whether `vpath` is what [`join`] returns: `/`, or `/` followed by
/// components separated by single slashes, none of them `.` or `..`, no
/// trailing slash.
pub fn is_normal(vpath: &[u8]) -> bool {
    if vpath == b"/" {
        return true;
    }
    vpath.first() == Some(&b'/') && vpath[1..].split(|&b| b == b'/').all(plain_component)
}

/// A component [`join`] keeps as it is: not empty, `.` or `..`.
fn plain_component(c: &[u8]) -> bool {
    !matches!(c, b"" | b"." | b"..")
}

/// Whether a client path argument names a directory by its form: it ends
/// in `/` or `/.` (POSIX pathname resolution, XBD 4.13: such a path
/// resolves only to a directory), which [`join`] does not keep.
pub fn names_directory(arg: &[u8]) -> bool {
    arg.ends_with(b"/") || arg.ends_with(b"/.")
}

/// The path relative to the root that openat2 takes: `/a/b` -> `a/b`,
/// `/` -> `.`. `None` if the path holds a NUL byte (no file can have one).
pub fn relative(vpath: &[u8]) -> Option<CString> {
    let trimmed = match vpath.iter().position(|&b| b != b'/') {
        Some(i) => &vpath[i..],
        None => b".",
    };
    CString::new(trimmed).ok()
}

/// The parent of an absolute virtual path (`/` is its own parent).
pub fn parent(vpath: &[u8]) -> Vec<u8> {
    join(vpath, b"..")
}

/// The last component of an absolute virtual path (empty for `/`).
pub fn file_name(vpath: &[u8]) -> &[u8] {
    match vpath.iter().rposition(|&b| b == b'/') {
        Some(i) => &vpath[i + 1..],
        None => vpath,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_what_join_returns() {
        for p in [&b"/"[..], b"/a", b"/a/b", b"/a.b/..c/.d"] {
            assert!(is_normal(p), "{}", String::from_utf8_lossy(p));
            assert_eq!(join(b"/", p), p);
        }
        for p in [
            &b""[..],
            b"a",
            b"//",
            b"/a/",
            b"/a//b",
            b"/./a",
            b"/a/..",
            b"/a/../b",
        ] {
            assert!(!is_normal(p), "{}", String::from_utf8_lossy(p));
            assert!(is_normal(&join(b"/", p)));
        }
    }

    #[test]
    fn join_table() {
        let table: &[(&str, &str, &str)] = &[
            ("/", "pub", "/pub"),
            ("/", "/pub", "/pub"),
            ("/pub", "debian", "/pub/debian"),
            ("/pub", "/etc/passwd", "/etc/passwd"),
            ("/pub", "..", "/"),
            ("/pub", "../..", "/"),
            ("/", "../../etc/passwd", "/etc/passwd"),
            ("/a/b", "../c", "/a/c"),
            ("/a/b", "./././c/", "/a/b/c"),
            ("/", "//a//b//", "/a/b"),
            ("/", "", "/"),
            ("/a", "", "/a"),
            ("/a", ".", "/a"),
            ("/a", "/", "/"),
            ("/", "a/../../../b", "/b"),
            ("/", "name with spaces ", "/name with spaces "),
            ("/", "...", "/..."),
            ("/", "..a", "/..a"),
        ];
        for (cwd, arg, want) in table {
            assert_eq!(
                String::from_utf8(join(cwd.as_bytes(), arg.as_bytes())).unwrap(),
                *want,
                "join({cwd:?}, {arg:?})"
            );
        }
    }

    #[test]
    fn the_short_ways_join_as_the_long_way_does() {
        // Every pair of these, both ways round: the fast paths (a normal
        // absolute argument; a relative one of plain components under a
        // normal directory) and the component walk must agree.
        let paths: &[&[u8]] = &[
            b"",
            b"/",
            b"a",
            b"/a",
            b"a/b",
            b"/a/b",
            b"a/",
            b"/a/",
            b"a//b",
            b".",
            b"..",
            b"./a",
            b"a/.",
            b"a/..",
            b"/a/../b",
            b"//a",
            b"...",
            b"a.b/..c",
            b"\xff/\x00",
        ];
        for &cwd in paths.iter().filter(|p| is_normal(p)) {
            for &arg in paths {
                assert_eq!(
                    join(cwd, arg),
                    join_components(cwd, arg),
                    "{:?} + {:?}",
                    String::from_utf8_lossy(cwd),
                    String::from_utf8_lossy(arg)
                );
            }
        }
        for cwd in ["/x", "/x/y"] {
            for arg in ["a", "a/b", "/a/b"] {
                let joined = join(cwd.as_bytes(), arg.as_bytes());
                assert_eq!(joined, join_components(cwd.as_bytes(), arg.as_bytes()));
            }
        }
    }

    #[test]
    fn join_never_escapes() {
        // Whatever the argument, the result is absolute and has no `..`.
        for arg in [
            "..",
            "../",
            "/..",
            "a/../..",
            "../../../../../x",
            "./../.",
            "x/../../y/../../z",
        ] {
            let p = join(b"/deep/dir", arg.as_bytes());
            assert_eq!(p[0], b'/');
            assert!(!p.split(|&b| b == b'/').any(|c| c == b".."), "{arg}");
        }
    }

    #[test]
    fn relative_table() {
        assert_eq!(relative(b"/").unwrap().as_bytes(), b".");
        assert_eq!(relative(b"/a/b").unwrap().as_bytes(), b"a/b");
        assert!(relative(b"/a\0b").is_none());
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent(b"/a/b"), b"/a");
        assert_eq!(parent(b"/a"), b"/");
        assert_eq!(parent(b"/"), b"/");
        assert_eq!(file_name(b"/a/b.iso"), b"b.iso");
        assert_eq!(file_name(b"/"), b"");
    }
}
