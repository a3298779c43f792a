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
//! - a path a client sends is looked up as sent first (so clients that
//!   send the raw bytes back, as curl does with `%E9`, find the file), and,
//!   when that does not exist, with each component that is UTF-8 holding
//!   non-ASCII characters encoded back into the legacy charset — so the
//!   name the client was shown finds the file. A name that exists in both
//!   forms in one directory is found in its UTF-8 form.
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
pub fn check_charset(label: &str) -> Result<(), String> {
    charset(label).map(|_| ())
}

/// Sets the legacy charset from its label. Call once, before any session
/// runs; later calls are ignored.
pub fn set_legacy_charset(label: &str) -> Result<(), String> {
    let _ = LEGACY.set(charset(label)?);
    Ok(())
}

fn legacy() -> &'static Encoding {
    LEGACY.get().copied().unwrap_or(WINDOWS_1252)
}

/// How `name` is shown to clients: itself if it is UTF-8, else decoded
/// from the legacy charset.
pub fn display(name: &[u8]) -> Cow<'_, [u8]> {
    if std::str::from_utf8(name).is_ok() {
        return Cow::Borrowed(name);
    }
    let (text, _) = legacy().decode_without_bom_handling(name);
    Cow::Owned(text.into_owned().into_bytes())
}

/// The path as it may be stored on disk if the client typed a name it was
/// shown through [`display`]: each UTF-8 component with non-ASCII
/// characters encoded into the legacy charset. `None` when that changes
/// nothing, or when a component has characters the charset lacks (then it
/// cannot be a shown legacy name).
pub fn legacy_form(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.len());
    let mut changed = false;
    for (i, comp) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        match std::str::from_utf8(comp) {
            Ok(text) if !comp.is_ascii() => {
                let (bytes, _, unmappable) = legacy().encode(text);
                if unmappable {
                    return None;
                }
                out.extend_from_slice(&bytes);
                changed = true;
            }
            _ => out.extend_from_slice(comp),
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn legacy_form_only_when_it_can_differ() {
        assert_eq!(legacy_form(b"/pub/a.txt"), None);
        assert_eq!(legacy_form(b"/pub/caf\xe9"), None);
        assert_eq!(
            legacy_form("/pub/café/ü.txt".as_bytes()).as_deref(),
            Some(&b"/pub/caf\xe9/\xfc.txt"[..])
        );
        // A character windows-1252 lacks: not a shown legacy name.
        assert_eq!(legacy_form("/日本".as_bytes()), None);
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
