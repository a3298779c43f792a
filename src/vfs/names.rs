//! File names that are not UTF-8.
//!
//! FEAT advertises UTF8 (RFC 2640) and strict clients (Python's ftplib,
//! aioftp) decode every listing as UTF-8: one Latin-1 name in a directory
//! would make the whole directory unlistable for them. Linux names are
//! bytes, and old mirror trees hold such names. The rule, as ProFTPD's
//! `UseEncoding` does it:
//!
//! - a name that is valid UTF-8 is shown as it is;
//! - a name that is not is shown decoded from a legacy single-byte
//!   charset (`--legacy-charset`, default windows-1252, the WHATWG reading
//!   of ISO-8859-1), which maps every byte to a character, so every name
//!   can be shown and the mapping can be undone;
//! - a path is shown component by component, so one that mixes both
//!   kinds (a Latin-1 name in a UTF-8 directory) shows each in its form;
//! - a path a client sends is looked up as sent first (so clients that
//!   send the raw bytes back, as curl does with `%E9`, find the file), and,
//!   when that does not exist, component by component: a component that
//!   is UTF-8 holding non-ASCII characters is taken as sent where that
//!   exists, else encoded back into the legacy charset
//!   ([`super::resolve`]) — so every name the client was shown finds its
//!   file. A name that exists in both forms in one directory is found in
//!   its UTF-8 form.
//!
//! Pure: bytes in, bytes out; the charset is set once at start-up.

use std::borrow::Cow;
use std::sync::OnceLock;

use encoding_rs::{Encoding, WINDOWS_1252};

static LEGACY: OnceLock<&'static Encoding> = OnceLock::new();

/// The charset a WHATWG label (`latin1`, `windows-1252`, `iso-8859-15`,
/// `koi8-r`, ...) names, if it is one this rule can use: only single-byte
/// charsets, whose mapping is total and reversible.
fn charset(label: &str) -> Result<&'static Encoding, String> {
    let enc = Encoding::for_label(label.as_bytes())
        .ok_or_else(|| format!("--legacy-charset {label:?}: unknown charset"))?;
    if !enc.is_single_byte() {
        return Err(format!(
            "--legacy-charset {label:?}: {} is not a single-byte charset",
            enc.name()
        ));
    }
    Ok(enc)
}

/// Checks a `--legacy-charset` label (see [`set_legacy_charset`]).
pub(crate) fn check_charset(label: &str) -> Result<(), String> {
    charset(label).map(|_| ())
}

/// Sets the legacy charset from its label. Call once, before any session
/// runs; later calls are ignored.
pub(crate) fn set_legacy_charset(label: &str) -> Result<(), String> {
    let _ = LEGACY.set(charset(label)?);
    Ok(())
}

fn legacy() -> &'static Encoding {
    LEGACY.get().copied().unwrap_or(WINDOWS_1252)
}

/// How `name` is shown to clients: itself if it is UTF-8, else decoded
/// from the legacy charset. A path is shown component by component, so a
/// legacy name inside a UTF-8 directory (or the reverse) shows each in its
/// own form; `/` is the same byte in every charset this rule accepts.
pub(crate) fn display(name: &[u8]) -> Cow<'_, [u8]> {
    if std::str::from_utf8(name).is_ok() {
        return Cow::Borrowed(name);
    }
    let mut out = Vec::with_capacity(name.len() + name.len() / 2);
    for (i, comp) in name.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        match std::str::from_utf8(comp) {
            Ok(_) => out.extend_from_slice(comp),
            Err(_) => {
                let (text, _) = legacy().decode_without_bom_handling(comp);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    Cow::Owned(out)
}

/// The name as it may be stored on disk if the client typed a name it was
/// shown through [`display`]: a UTF-8 component with non-ASCII characters
/// encoded into the legacy charset. `None` when that changes nothing
/// (ASCII, or not UTF-8), or when it has characters the charset lacks
/// (then it cannot be a shown legacy name).
pub(crate) fn legacy_name(comp: &[u8]) -> Option<Vec<u8>> {
    if comp.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(comp).ok()?;
    let (bytes, _, unmappable) = legacy().encode(text);
    (!unmappable).then(|| bytes.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`legacy_name`] of every component that has one, the others kept;
    /// `None` when nothing changes (what the resolver tries, when every
    /// component was shown in its legacy form).
    fn legacy_form(path: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(path.len());
        let mut changed = false;
        for (i, comp) in path.split(|&b| b == b'/').enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            match legacy_name(comp) {
                Some(form) => {
                    out.extend_from_slice(&form);
                    changed = true;
                }
                None => out.extend_from_slice(comp),
            }
        }
        changed.then_some(out)
    }

    #[test]
    fn shown_names_are_utf8_and_map_back() {
        let table: &[(&[u8], &str)] = &[
            (b"plain.txt", "plain.txt"),
            ("café.txt".as_bytes(), "café.txt"),
            (b"caf\xe9.txt", "café.txt"),
            (b"bad\xffname", "badÿname"),
            (b"\x80\x9f", "€Ÿ"),
            (b"\x81", "\u{81}"),
        ];
        for (raw, shown) in table {
            let got = display(raw);
            assert_eq!(std::str::from_utf8(&got).unwrap(), *shown, "{raw:?}");
            if std::str::from_utf8(raw).is_err() {
                // Every shown legacy name finds the file again.
                assert_eq!(legacy_form(&got).as_deref(), Some(*raw), "{shown}");
            }
        }
        // Every byte round-trips, alone or in a path.
        for b in 0x80..=0xffu8 {
            let raw = [b'/', b'd', b'/', b'x', b, b'y'];
            let shown = display(&raw);
            assert_eq!(legacy_form(&shown).as_deref(), Some(&raw[..]), "{b:#x}");
        }
    }

    #[test]
    fn paths_are_shown_component_by_component() {
        let table: &[(&[u8], &str)] = &[
            (b"/h\xc3\xa9llo/caf\xe9.txt", "/h\u{e9}llo/caf\u{e9}.txt"),
            (b"lat\xe9dir/\xc3\xbc.txt", "lat\u{e9}dir/\u{fc}.txt"),
            (b"/a/b\xff/", "/a/b\u{ff}/"),
            (b"/plain/path", "/plain/path"),
        ];
        for (raw, shown) in table {
            let got = display(raw);
            assert_eq!(std::str::from_utf8(&got).unwrap(), *shown, "{raw:?}");
        }
    }

    #[test]
    fn legacy_form_only_when_it_can_differ() {
        assert_eq!(legacy_form(b"/pub/a.txt"), None);
        assert_eq!(legacy_form(b"/pub/caf\xe9"), None);
        assert_eq!(
            legacy_form("/pub/café/ü.txt".as_bytes()).as_deref(),
            Some(&b"/pub/caf\xe9/\xfc.txt"[..])
        );
        // A character windows-1252 lacks: not a shown legacy name; the
        // other components still have theirs.
        assert_eq!(legacy_form("/日本".as_bytes()), None);
        let mut want = "/日本/".as_bytes().to_vec();
        want.extend_from_slice(b"caf\xe9");
        assert_eq!(legacy_form("/日本/café".as_bytes()), Some(want));
        assert_eq!(legacy_name(b"plain"), None);
        assert_eq!(legacy_name(b"caf\xe9"), None);
        assert_eq!(
            legacy_name("café".as_bytes()).as_deref(),
            Some(&b"caf\xe9"[..])
        );
    }

    #[test]
    fn charset_labels() {
        for ok in [
            "latin1",
            "ISO-8859-1",
            "windows-1252",
            "iso-8859-15",
            "koi8-r",
        ] {
            assert!(check_charset(ok).is_ok(), "{ok}");
        }
        for bad in ["shift_jis", "utf-8", "no-such-charset"] {
            assert!(check_charset(bad).is_err(), "{bad}");
        }
    }
}
