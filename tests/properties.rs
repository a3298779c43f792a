//! Property tests (proptest) over the code hostile input reaches first: the
//! command parser, the control-line reader, the PORT/EPRT/PASV/EPSV
//! codecs, virtual path joining, real openat2 resolution under a root full
//! of escaping symlinks, and the session state machine. The properties
//! live in tests/props and are shared with the cargo-fuzz targets in
//! fuzz/, which run them for longer on nightly.

mod props;

use proptest::prelude::*;

/// Bytes that look like FTP: verbs, arguments, separators and junk.
fn ftpish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"USER ".to_vec()),
        Just(b"PASS ".to_vec()),
        Just(b"RETR ".to_vec()),
        Just(b"CWD ".to_vec()),
        Just(b"PORT ".to_vec()),
        Just(b"EPRT |2|::1|".to_vec()),
        Just(b"TYPE ".to_vec()),
        Just(b"REST ".to_vec()),
        Just(b"MFMT 20200101000000 ".to_vec()),
        Just(b"SITE CHMOD ".to_vec()),
        Just(b"LIST -la ".to_vec()),
        Just(b"../".to_vec()),
        Just(b"\xff\xf4\xff\xf2".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        "[0-9,|. ]{0,12}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

/// Paths built from the test tree's names (symlinks included) and `..`.
fn tree_path() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        proptest::sample::select(props::Tree::NAMES).prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    (any::<bool>(), proptest::collection::vec(name, 0..8)).prop_map(|(abs, parts)| {
        let mut p = if abs { b"/".to_vec() } else { Vec::new() };
        p.extend(parts.join(&b'/'));
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_accepts_any_line(line in ftpish()) {
        // The parser sees lines without their '\n'.
        let line: Vec<u8> = line.into_iter().filter(|&b| b != b'\n').collect();
        props::command(&line);
    }

    #[test]
    fn parser_accepts_any_bytes(line in proptest::collection::vec(any::<u8>(), 0..64)) {
        props::command(&line);
    }

    #[test]
    fn line_reader_is_bounded_and_cut_independent(
        data in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(0xffu8), Just(0xfb), any::<u8>()],
            0..400,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max in 1usize..40,
    ) {
        props::line_reader(&data, &cuts, max);
    }

    #[test]
    fn address_codecs_round_trip(text in "[0-9a-f:.,|() ]{0,40}") {
        props::addr(&text);
    }

    #[test]
    fn address_codecs_take_any_text(text in any::<String>()) {
        props::addr(&text);
    }

    #[test]
    fn joined_paths_are_absolute_and_normalized(cwd in tree_path(), arg in tree_path()) {
        props::path_join(&cwd, &arg);
    }

    #[test]
    fn session_survives_any_command_sequence(
        lines in proptest::collection::vec(ftpish(), 0..24),
    ) {
        let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
        props::session(&refs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn openat2_never_leaves_the_root(p in tree_path()) {
        thread_local! {
            static TREE: props::Tree = props::Tree::new();
        }
        TREE.with(|t| {
            t.resolve(&p);
        });
    }
}

#[test]
fn known_escapes_are_refused_and_inside_links_work() {
    let t = props::Tree::new();
    // The tree is really hostile: followed naively, these leave the root.
    for p in [
        "out/secret",
        "a/out",
        "abs-outside/secret",
        "a/b/c/chain/secret",
    ] {
        let real = std::fs::canonicalize(t.root.join(p)).unwrap();
        assert!(!real.starts_with(&t.root), "{p} -> {}", real.display());
    }
    // The escapes an attacker tries first, through symlinks or `..`.
    for p in [
        "../outside/secret",
        "out/secret",
        "a/out",
        "abs/passwd",
        "abs-root/etc/passwd",
        "abs-outside/secret",
        "a/b/c/chain/secret",
        "a/up/../outside",
        "a/b/upup/../outside",
        "proc-self/etc/passwd",
        "/etc/passwd",
        "loop",
    ] {
        assert!(!t.resolve(p.as_bytes()), "{p} opened");
    }
    // Links that stay inside resolve normally.
    for p in [
        "in/c",
        "pub/latest/x.iso",
        "a/up/a/file",
        "a/b/upup/empty",
        ".",
    ] {
        assert!(t.resolve(p.as_bytes()), "{p} did not open");
    }
}
