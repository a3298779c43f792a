//! The command parser on any line: no panic; an error reply is one line of
//! the server's own printable ASCII.
#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The line reader never delivers a '\n'; split like it would.
    for line in data.split(|&b| b == b'\n') {
        props::command(line);
    }
});
