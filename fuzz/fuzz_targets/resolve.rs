//! Real path resolution: openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
//! in a temporary root full of symlinks that point out (relative,
//! absolute, chained, /proc magic links). Whatever opens must lie inside
//! the root. Input bytes below 0x20 pick names from the tree's list, so
//! the fuzzer combines real names and symlinks quickly; other bytes are
//! taken as they are.
#![no_main]

#[path = "../../tests/props/mod.rs"]
mod props;

use std::sync::OnceLock;

static TREE: OnceLock<props::Tree> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let tree = TREE.get_or_init(props::Tree::new);
    let names = props::Tree::NAMES;
    let mut path = Vec::with_capacity(data.len() * 4);
    for &b in data {
        if b < 0x20 {
            path.extend_from_slice(names[b as usize % names.len()].as_bytes());
            path.push(b'/');
        } else {
            path.push(b);
        }
    }
    tree.resolve(&path);
});
