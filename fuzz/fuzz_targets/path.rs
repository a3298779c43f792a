//! Virtual path joining: absolute, normalized, `..` never above `/`, and a
//! relative form for openat2 that cannot climb. The input is
//! `cwd 0x00 arg` (a cwd of its own is joined first, as the session's is).
#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (cwd, arg) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/"[..], data),
    };
    props::path_join(cwd, arg);
});
