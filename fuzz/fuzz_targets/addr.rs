//! PORT/EPRT arguments and 227/229 reply texts: no panic, and whatever
//! parses formats back to the same address.
#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    props::addr(&String::from_utf8_lossy(data));
});
