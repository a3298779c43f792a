//! The session state machine over any sequence of command lines (split at
//! '\n'), with the driver's I/O answered as success: no panic, paths handed
//! to the driver are absolute, the cwd stays absolute.
#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').take(64).collect();
    props::session(&lines);
});
