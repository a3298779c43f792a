//! Wildcards in listing arguments: `NLST *.txt` (what `mget *.txt` sends
//! in tnftp, BSD and Windows ftp), `LIST reports/*.txt`, `ncftpget
//! 'dir/*.txt'`. vsftpd, ProFTPD and pure-ftpd expand them; so do we.
//!
//! The rule: only the last component of a path may be a pattern (`*`, `?`
//! and `[...]`, with `[!...]` for negation, as in the shell); a wildcard in
//! a middle component is taken literally. A path that exists as typed is
//! never a pattern, so a file literally named `a[1].txt` is still listed.
//! Braces and backslashes have no special meaning. A pattern matches
//! neither `.` nor `..`, and a leading `.` only when the listing shows
//! dot-files or the pattern itself starts with `.` (`NLST .*`: in the
//! shell a leading dot is matched only explicitly, so `ls .*` shows
//! dot-files). Pure: names in, yes or no out.

use globset::{ErrorKind, GlobBuilder, GlobMatcher};

/// The bytes that make a path component a pattern.
fn is_wildcard(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[')
}

/// A compiled last-component pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// `None`: a well-formed pattern that can match nothing (`[z-a]`).
    matcher: Option<GlobMatcher>,
    /// The pattern starts with a literal `.`.
    dot: bool,
}

impl Pattern {
    /// Compiles `component`, or `None` if it holds no wildcard or is not
    /// a valid pattern (an unclosed `[`, a name that is not UTF-8): then
    /// it is a plain name. A class with an inverted range (`[z-a]`) is a
    /// pattern that matches nothing, as in the shell, so its listing is
    /// empty like any other pattern's that matches nothing.
    pub(crate) fn new(component: &[u8]) -> Option<Pattern> {
        if !component.iter().copied().any(is_wildcard) {
            return None;
        }
        let text = std::str::from_utf8(component).ok()?;
        // Braces and backslashes are literal here: escape them for globset.
        let mut escaped = String::with_capacity(text.len() + 4);
        for c in text.chars() {
            if matches!(c, '{' | '}' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        let glob = GlobBuilder::new(&escaped)
            .literal_separator(true)
            .backslash_escape(true)
            .build();
        let dot = component.first() == Some(&b'.');
        match glob {
            Ok(glob) => Some(Pattern {
                matcher: Some(glob.compile_matcher()),
                dot,
            }),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidRange(..)) => {
                Some(Pattern { matcher: None, dot })
            }
            Err(_) => None,
        }
    }

    /// True when the pattern starts with a literal `.` and so asks for
    /// dot-files by name (`.*`, `.bash*`): the listing shows them without
    /// `-a`, as the shell's `ls .*` does.
    pub(crate) fn names_dotfiles(&self) -> bool {
        self.dot
    }

    /// True if the directory entry `name` (UTF-8, as shown to the client)
    /// matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        name != "." && name != ".." && self.matcher.as_ref().is_some_and(|m| m.is_match(name))
    }
}

/// Splits a virtual path whose last component is a pattern into the
/// directory to list and the pattern; `None` when the last component holds
/// no wildcard. The directory is taken literally, wildcards and all: a
/// directory named `br[ack]` is listed by `br[ack]/*.txt`, and `re*ts/x*`
/// names no directory unless one is called `re*ts`.
pub(crate) fn split(vpath: &[u8]) -> Option<(Vec<u8>, Pattern)> {
    let cut = vpath.iter().rposition(|&b| b == b'/')?;
    let (dir, last) = (&vpath[..cut], &vpath[cut + 1..]);
    let pattern = Pattern::new(last)?;
    let dir = if dir.is_empty() {
        b"/".to_vec()
    } else {
        dir.to_vec()
    };
    Some((dir, pattern))
}

/// The directory part of a path as the client typed it (`reports/` of
/// `reports/*.txt`, and of `reports/*/`, whose trailing `/` or `/.` only
/// says the pattern names directories), for the path names NLST sends;
/// empty when the pattern had no directory part.
pub(crate) fn typed_dir(shown: &[u8]) -> &[u8] {
    let mut shown = shown;
    while let Some(rest) = shown
        .strip_suffix(b"/")
        .or_else(|| shown.strip_suffix(b"/."))
    {
        shown = rest;
    }
    match shown.iter().rposition(|&b| b == b'/') {
        Some(i) => &shown[..=i],
        None => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pattern_starting_with_a_dot_names_dotfiles() {
        for (pattern, dot) in [
            (".*", true),
            (".b*", true),
            ("*", false),
            ("?x", false),
            ("[.]*", false),
        ] {
            let p = Pattern::new(pattern.as_bytes()).unwrap();
            assert_eq!(p.names_dotfiles(), dot, "{pattern}");
        }
        // `.*` still matches neither `.` nor `..`.
        let p = Pattern::new(b".*").unwrap();
        assert!(p.matches(".profile") && !p.matches(".") && !p.matches(".."));
    }

    #[test]
    fn patterns_match_like_the_shell() {
        let table: &[(&str, &str, bool)] = &[
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txt.gz", false),
            ("*.txt", "dir/a.txt", false),
            ("?.txt", "a.txt", true),
            ("?.txt", "ab.txt", false),
            ("[ab].txt", "b.txt", true),
            ("[ab].txt", "c.txt", false),
            ("[!ab].txt", "c.txt", true),
            ("[a-c]*", "bob", true),
            ("*", "anything at all", true),
            ("*", ".", false),
            ("*", "..", false),
            // Braces and backslashes are literal.
            ("{a,b}*", "{a,b}x", true),
            ("{a,b}*", "a", false),
            ("a\\*", "a\\bc", true),
            ("café*", "café.txt", true),
            // An inverted range matches nothing, not even its own text.
            ("[z-a]", "[z-a]", false),
            ("[z-a]", "b", false),
            ("[z-a]*", "zebra", false),
        ];
        for (pattern, name, want) in table {
            let p = Pattern::new(pattern.as_bytes()).expect(pattern);
            assert_eq!(p.matches(name), *want, "{pattern} ~ {name}");
        }
        // No wildcard, or not a valid pattern: a plain name.
        for plain in [&b"a.txt"[..], b"", b"{a,b}", b"[unclosed", b"\xff*"] {
            assert!(Pattern::new(plain).is_none(), "{plain:?}");
        }
    }

    #[test]
    fn only_the_last_component_is_a_pattern() {
        let table: &[(&[u8], Option<&[u8]>)] = &[
            (b"/reports/*.txt", Some(b"/reports")),
            (b"/*.txt", Some(b"/")),
            (b"/a/b/c?", Some(b"/a/b")),
            (b"/reports/feb.txt", None),
            (b"/re*ts/feb.txt", None),
            // A middle component is a literal name.
            (b"/re*ts/*.txt", Some(b"/re*ts")),
            (b"/br[ack]/*", Some(b"/br[ack]")),
            (b"/", None),
        ];
        for (vpath, dir) in table {
            assert_eq!(split(vpath).map(|(d, _)| d).as_deref(), *dir, "{vpath:?}");
        }
        assert_eq!(typed_dir(b"reports/*.txt"), b"reports/");
        assert_eq!(typed_dir(b"/x/y/*"), b"/x/y/");
        assert_eq!(typed_dir(b"*.txt"), b"");
        // A trailing `/` (or `/.`) is not the directory part.
        assert_eq!(typed_dir(b"reports/*/"), b"reports/");
        assert_eq!(typed_dir(b"f*/"), b"");
        assert_eq!(typed_dir(b"/x/*//./"), b"/x/");
    }
}
