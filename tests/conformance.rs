//! What real clients trip over (issue 11), byte and reply level: TYPE A
//! and the octet counts of SIZE and REST, Telnet IAC bytes in names and
//! replies, CR/LF/NUL in path arguments, a trailing `/` (a directory),
//! names that are not UTF-8 (the `--legacy-charset` rule), the MLSx `perm` fact, the 500/501/502/504
//! replies, STAT's counters, and a full disk answered with 452. Each test
//! asserts exact replies and bytes for a kind and its siblings, against
//! the real binary on loopback (and Python's ftplib, curl where a real
//! client adds something). Listing arguments, wildcards, dot-files,
//! symlinks and listing memory are in tests/conformance_listing.rs.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;

use common::*;

/// The names of an NLST listing, in order.
fn nlst_lines(data: &[u8]) -> Vec<String> {
    String::from_utf8(data.to_vec())
        .expect("NLST listing is not UTF-8")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The (facts, name) of each line of an MLSD listing.
fn mlsd_entries(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8(data.to_vec())
        .expect("MLSD listing is not UTF-8")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (facts, name) = l.split_once(' ').expect("MLSD line without a name");
            (facts.to_string(), name.to_string())
        })
        .collect()
}

/// The value of fact `name` in an MLSx facts string (`type=file;size=3;`).
fn fact<'a>(facts: &'a str, name: &str) -> Option<&'a str> {
    facts
        .split(';')
        .find_map(|f| {
            f.split_once('=')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v)
}

/// The name of a LIST line (`ls -l` style: eight fields, then the name).
fn list_name(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..8 {
        rest = rest.trim_start();
        rest = &rest[rest.find(' ').unwrap_or(rest.len())..];
    }
    rest.trim_start()
}

/// The names of a LIST listing, in order.
fn list_names(data: &[u8]) -> Vec<String> {
    String::from_utf8(data.to_vec())
        .expect("LIST listing is not UTF-8")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| list_name(l).to_string())
        .collect()
}

/// Reads the plain 226 that ends a transfer.
#[track_caller]
fn end_226(f: &mut Ftp) {
    let r = f.read_reply();
    assert_eq!(r.lines, ["226 Transfer complete."]);
}

// ------------------------------------------------------------ kind 1: TYPE A

/// SIZE and REST count octets as transferred (RFC 3659 sections 4 and 5),
/// which in TYPE A are not the file's bytes: SIZE is refused there
/// (ProFTPD's rule), a restarted RETR or STOR too (vsftpd's text), the
/// data connection set up for it stays for the next command, the ASCII
/// 150 promises no byte count, and plain TYPE A transfers (RETR, STOR,
/// APPE, REST 0) work with CRLF on the wire and LF on disk.
#[test]
fn type_a_refuses_octet_counts_and_keeps_the_data_connection() {
    let fx = Fixture::new();
    let text = text_lines(50);
    fx.write("pub/hello.txt", &text);
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.write("alice/log.txt", b"one\n");
    let srv = Server::builder().users(&users).start(&fx);

    let mut f = srv.login();
    // TYPE I (and its spelling L 8): SIZE is the size on disk.
    for t in ["TYPE I", "TYPE L 8", "TYPE L8"] {
        f.expect(t, 200);
        let r = f.expect("SIZE pub/hello.txt", 213);
        assert_eq!(r.lines, [format!("213 {}", text.len())], "{t}");
    }
    // TYPE A (and A N): refused, with the reason.
    for t in ["TYPE A", "TYPE A N"] {
        f.expect(t, 200);
        let r = f.expect("SIZE pub/hello.txt", 550);
        assert_eq!(r.lines, ["550 SIZE not allowed in ASCII mode; use TYPE I."]);
    }
    // REST then RETR: refused; the EPSV connection is kept, and the next
    // RETR (no REST) uses it for the whole converted text.
    let mut data = f.epsv_connect();
    f.expect("REST 10", 350);
    let r = f.expect("RETR pub/hello.txt", 550);
    assert_eq!(r.lines, ["550 No support for resume of ASCII transfer."]);
    let r = f.expect("RETR pub/hello.txt", 150);
    assert_eq!(
        r.lines,
        ["150 Opening ASCII mode data connection for hello.txt."],
        "the ASCII 150 gives no byte count"
    );
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    end_226(&mut f);
    assert_bytes_eq("TYPE A RETR", &got, &crlf(&text));
    // REST 0 is no restart: the transfer goes ahead.
    let mut data = f.epsv_connect();
    f.expect("REST 0", 350);
    f.expect("RETR pub/hello.txt", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    end_226(&mut f);
    assert_bytes_eq("TYPE A RETR after REST 0", &got, &crlf(&text));
    // Back in TYPE I: SIZE, a restart and the byte count of the 150.
    f.expect("TYPE I", 200);
    f.expect("SIZE pub/hello.txt", 213);
    assert_bytes_eq(
        "TYPE I REST 10",
        &f.retr_from("pub/hello.txt", 10),
        &text[10..],
    );
    let mut data = f.epsv_connect();
    let r = f.expect("RETR pub/hello.txt", 150);
    assert_eq!(
        r.lines,
        [format!(
            "150 Opening BINARY mode data connection for hello.txt ({} bytes).",
            text.len()
        )]
    );
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    end_226(&mut f);
    assert_bytes_eq("TYPE I RETR", &got, &text);
    f.quit();

    // Uploads: REST then STOR in TYPE A is refused and creates nothing;
    // the kept connection takes the STOR that follows; APPE works.
    let mut f = srv.login_as("alice", "alice-pw");
    f.expect("TYPE A", 200);
    let mut data = f.epsv_connect();
    f.expect("REST 5", 350);
    let r = f.expect("STOR up.txt", 550);
    assert_eq!(r.lines, ["550 No support for resume of ASCII transfer."]);
    assert!(!fx.root.join("alice/up.txt").exists());
    let r = f.expect("STOR up.txt", 150);
    assert_eq!(r.lines, ["150 Ok to send data (ASCII mode)."]);
    data.write_all(b"a\r\nb\r\n").unwrap();
    drop(data);
    end_226(&mut f);
    assert_eq!(fx.read("alice/up.txt"), b"a\nb\n");
    f.upload("APPE log.txt", b"two\r\nthree\r\n");
    assert_eq!(fx.read("alice/log.txt"), b"one\ntwo\nthree\n");
    // REST then APPE: APPE has no offset to refuse.
    let mut data = f.epsv_connect();
    f.expect("REST 3", 350);
    f.expect("APPE log.txt", 150);
    data.write_all(b"four\r\n").unwrap();
    drop(data);
    end_226(&mut f);
    assert_eq!(fx.read("alice/log.txt"), b"one\ntwo\nthree\nfour\n");
    f.quit();
}

// ------------------------------------------------------------ kind 3: Telnet

/// RFC 854 on the control connection: IAC IAC is a data 0xFF; IAC before
/// a byte that is no Telnet command (< 240, the CR of the line end
/// included) is data, both bytes kept, so a raw 0xFF in a Latin-1 name
/// works (curl's `%FF` included); a real Telnet command (IP, WILL x) is
/// dropped. The shown form of the name (`ÿ`, windows-1252) finds the file
/// too.
#[test]
fn telnet_iac_in_names_is_data_unless_it_is_a_command() {
    let fx = Fixture::new();
    write_raw(&fx.root, b"bad\xffname.txt", b"ff\n");
    write_raw(&fx.root, b"end\xff", b"tail\n");
    fx.write("badname.txt", b"no 0xff\n");
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();
    let table: &[(&[u8], &str)] = &[
        (b"SIZE bad\xffname.txt", "213 3"),
        (b"SIZE bad\xff\xffname.txt", "213 3"),
        ("SIZE bad\u{ff}name.txt".as_bytes(), "213 3"),
        // IAC right before the line's CR.
        (b"SIZE end\xff", "213 5"),
        (b"SIZE end\xff\xff", "213 5"),
        // IAC IP and IAC WILL ECHO are Telnet commands: dropped.
        (b"SIZE bad\xff\xf4name.txt", "213 8"),
        (b"SIZE bad\xff\xfb\x01name.txt", "213 8"),
        (b"SIZE \xff\xf4\xff\xf2badname.txt", "213 8"),
    ];
    for (line, want) in table {
        let r = f.cmd_bytes(line);
        assert_eq!(r.lines, [*want], "{:?}", String::from_utf8_lossy(line));
    }
    let (got, _) = f.transfer_bytes(b"RETR bad\xffname.txt");
    assert_eq!(got, b"ff\n");
    let (got, _) = f.transfer_bytes(b"RETR bad\xff\xffname.txt");
    assert_eq!(got, b"ff\n");
    // The session is still in step.
    f.expect("NOOP", 200);
    f.quit();
    // curl sends `%FF` as the raw byte, undoubled, as most clients do.
    let dest = fx.out("curl-ff.txt");
    let url = format!("ftp://{}/bad%FFname.txt", srv.addr());
    curl(&["-s", "-S", "-o", &dest.to_string_lossy(), &url]).ok();
    assert_eq!(std::fs::read(&dest).unwrap(), b"ff\n", "curl {url}");
}

/// A name with a raw 0xFF byte (the Telnet IAC), sent doubled or not,
/// reaches the disk as one 0xFF; no reply carries a bare 0xFF: the 257 of
/// MKD and PWD, MLST and STAT show the name in its legacy-charset form
/// (`ÿ` in UTF-8), as listings do. (Any 0xFF a reply did carry would go
/// out doubled: `proto::reply`'s encoder, unit-tested there.)
#[test]
fn replies_double_every_0xff() {
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    let srv = Server::builder().users(&users).start(&fx);
    let mut f = srv.login_as("alice", "alice-pw");

    f.send_raw(b"MKD new\xffdir\r\n");
    assert_eq!(
        f.read_reply_bytes(),
        "257 \"/new\u{ff}dir\" created\r\n".as_bytes()
    );
    assert!(fx.root.join("alice").join(os(b"new\xffdir")).is_dir());
    f.send_raw(b"MKD x\xff\xffy\r\n");
    assert_eq!(
        f.read_reply_bytes(),
        "257 \"/x\u{ff}y\" created\r\n".as_bytes()
    );
    assert!(fx.root.join("alice").join(os(b"x\xffy")).is_dir());

    let r = f.cmd_bytes(b"CWD new\xff\xffdir");
    assert_eq!(r.code, 250, "{r:?}");
    f.send_raw(b"PWD\r\n");
    assert_eq!(
        f.read_reply_bytes(),
        "257 \"/new\u{ff}dir\" is the current directory\r\n".as_bytes()
    );
    // MKD of a nested path: one 0xFF on disk, shown in UTF-8.
    f.send_raw(b"MKD sub\xff\r\n");
    assert_eq!(
        f.read_reply_bytes(),
        "257 \"/new\u{ff}dir/sub\u{ff}\" created\r\n".as_bytes()
    );
    assert!(fx
        .root
        .join("alice")
        .join(os(b"new\xffdir/sub\xff"))
        .is_dir());
    f.expect("CWD /", 250);

    f.send_raw(b"MLST new\xffdir\r\n");
    let mlst = f.read_reply_bytes();
    let text = String::from_utf8(mlst.clone()).expect("MLST reply is not UTF-8");
    assert!(text.starts_with("250-"), "{text}");
    assert!(text.contains("type=dir;"), "{text}");
    assert!(text.contains(" /new\u{ff}dir\r\n"), "{text}");
    f.send_raw(b"STAT .\r\n");
    let stat = f.read_reply_bytes();
    let text = String::from_utf8(stat).expect("STAT reply is not UTF-8");
    assert!(text.starts_with("213-"), "{text}");
    assert!(text.contains(" new\u{ff}dir\r\n"), "{text}");
    assert!(text.contains(" x\u{ff}y\r\n"), "{text}");
    f.quit();
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b)
}

// ------------------------------------------------------------ CR, LF, NUL

/// A CR or NUL inside a path argument is 501 for every command that takes
/// a path, and nothing is created, deleted, renamed or listed (a bare LF
/// ends the line, as RFC 959 allows, so the rest is a new command).
#[test]
fn cr_or_nul_in_a_path_is_501_and_changes_nothing() {
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.write("alice/keep.txt", b"keep\n");
    let srv = Server::builder().users(&users).start(&fx);
    let mut f = srv.login_as("alice", "alice-pw");
    let verbs = [
        "MKD", "XMKD", "RMD", "DELE", "RNFR", "CWD", "SIZE", "MDTM", "RETR", "STOR", "APPE",
        "STOU", "MLST", "LIST", "NLST", "MLSD", "STAT",
    ];
    for verb in verbs {
        let listing = ["LIST", "NLST", "MLSD", "STAT"].contains(&verb);
        for (bad, why) in [
            (&b"a\rb"[..], "CR or LF in pathname"),
            (b"\rb", "CR or LF in pathname"),
            (b"a\0b", "NUL in pathname"),
        ] {
            if listing && bad[0] == b'\r' {
                // Between listing options and the path, whitespace
                // (a CR too) only separates.
                continue;
            }
            let mut line = format!("{verb} ").into_bytes();
            line.extend_from_slice(bad);
            let r = f.cmd_bytes(&line);
            assert_eq!(
                r.lines,
                [format!("501 Syntax error in argument: {why}.")],
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
    }
    // RNTO and MFMT carry the path after something else.
    f.expect("RNFR keep.txt", 350);
    let r = f.cmd_bytes(b"RNTO a\rb");
    assert_eq!(r.code, 501, "{r:?}");
    let r = f.cmd_bytes(b"MFMT 20240101000000 keep\r.txt");
    assert_eq!(r.code, 501, "{r:?}");
    assert_eq!(names_in(&fx.root.join("alice")), ["keep.txt"]);
    assert_eq!(fx.read("alice/keep.txt"), b"keep\n");
    // A bare LF ends the line: "MKD a" and then a command "b".
    f.send_raw(b"MKD a\nb\r\n");
    assert_eq!(f.read_reply().lines, ["257 \"/a\" created"]);
    assert_eq!(f.read_reply().code, 500);
    assert_eq!(names_in(&fx.root.join("alice")), ["a", "keep.txt"]);
    f.expect("NOOP", 200);
    f.quit();
}

// ------------------------------------------------------ trailing slashes

/// A path that ends in `/` (or `/.`) names a directory, as POSIX pathname
/// resolution has it: the file verbs refuse it without touching the file
/// of that name (`STOR new/` made a file `new`, `DELE f/` deleted `f`),
/// the verbs that take either (RNFR, RNTO, MFMT, SITE CHMOD, MLST) act
/// only when it is a directory, and a listing of `f/` is refused as `ls
/// f/` is. MKD, RMD and CWD keep taking `d/`.
#[test]
fn a_trailing_slash_names_a_directory() {
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.write("alice/f", b"file\n");
    fx.write("alice/d/inside", b"in\n");
    symlink(&fx.root, "alice/ld", "d");
    let srv = Server::builder().users(&users).start(&fx);
    let mut f = srv.login_as("alice", "alice-pw");
    for line in [
        "RETR f/", "SIZE f/", "MDTM f/", "DELE f/", "DELE f/.", "SIZE d/", "DELE d/",
    ] {
        let r = f.cmd(line);
        assert_eq!(r.lines, ["550 A file name cannot end in '/'."], "{line}");
    }
    for line in [
        "STOR new/",
        "APPE new/",
        "STOU new/",
        "STOR f/",
        "APPE f/.",
        "STOR d/",
    ] {
        let r = f.cmd(line);
        assert_eq!(
            r.lines,
            ["553 File name not allowed: a file name cannot end in '/'."],
            "{line}"
        );
    }
    // Refused before any lookup, as TYPE A + REST is: the data connection
    // set up for it serves the next transfer (as in vsftpd), and so
    // after a SIZE.
    let data = f.epsv_connect();
    f.expect("STOR f/", 553);
    f.expect("RETR f/", 550);
    assert_eq!(f.transfer_on(data, "RETR f"), b"file\n");
    let data = f.epsv_connect();
    f.expect("SIZE f/", 550);
    assert_eq!(f.transfer_on(data, "RETR f"), b"file\n");
    // Either kind: only a directory passes.
    for line in ["RNFR f/", "MFMT 20200101000000 f/", "SITE CHMOD 600 f/"] {
        let r = f.cmd(line);
        assert_eq!(r.lines, ["550 Not a directory."], "{line}");
    }
    assert_eq!(f.cmd("RNFR nothing/").code, 550);
    // RNTO `g/` moves a directory there, never a file.
    f.expect("RNFR f", 350);
    assert_eq!(f.cmd("RNTO g/").lines, ["550 Not a directory."]);
    // A symlink to a directory is not one to rename(2) (`mv ld/ x`:
    // ENOTDIR), by RNFR's argument or by RNTO's.
    assert_eq!(f.cmd("RNFR ld/").lines, ["550 Not a directory."]);
    f.expect("RNFR ld", 350);
    assert_eq!(f.cmd("RNTO x/").lines, ["550 Not a directory."]);
    // Onto an existing file, a directory does not go either.
    f.expect("RNFR d/", 350);
    assert_eq!(f.cmd("RNTO f").lines, ["550 Not a directory."]);
    f.expect("RNFR d/", 350);
    f.expect("RNTO e/", 250);
    assert_eq!(f.cmd("MFMT 20200101000000 e/").code, 213);
    f.expect("SITE CHMOD 750 e/.", 200);
    f.expect("MKD m/", 257);
    f.expect("CWD m/", 250);
    f.expect("CWD /", 250);
    f.expect("RMD m/", 250);
    // Listing `f/` is listing a directory (`ls f/`: ENOTDIR).
    f.epsv();
    assert_eq!(f.cmd("LIST f/").lines, ["550 Not a directory."]);
    f.epsv();
    assert_eq!(f.cmd("NLST -a f/.").lines, ["550 Not a directory."]);
    assert_eq!(f.cmd("STAT f/").lines, ["550 Not a directory."]);
    assert_eq!(f.cmd("MLST f/").lines, ["550 Not a directory."]);
    assert_eq!(f.cmd("MLST e/").code, 250);
    assert!(f.listing("NLST e/").contains("inside"));
    // Without the slash, the file verbs act on the file as before.
    assert_eq!(f.cmd("SIZE f").lines, ["213 5"]);
    assert!(f.listing("LIST f").ends_with(" f\r\n"));
    f.quit();
    let home = fx.root.join("alice");
    assert_eq!(names_in(&home), ["e", "f", "ld"]);
    assert!(home.join("ld").is_symlink());
    assert_eq!(fx.read("alice/f"), b"file\n");
    assert_eq!(fx.read("alice/e/inside"), b"in\n");
    let meta = std::fs::metadata(home.join("f")).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_ne!(meta.mtime(), 1_577_836_800, "MFMT f/ changed the file");
    assert_ne!(
        meta.permissions().mode() & 0o777,
        0o600,
        "CHMOD f/ changed the file"
    );
    let e = std::fs::metadata(home.join("e")).unwrap();
    assert_eq!(e.mtime(), 1_577_836_800);
    assert_eq!(e.permissions().mode() & 0o777, 0o750);
}

// ------------------------------------------------------------ kind 4: names

/// Names that are not UTF-8 are shown decoded from the legacy charset
/// (windows-1252 by default) in every listing, so the listing is UTF-8;
/// the shown name finds the file (RETR, SIZE, MDTM, CWD), the raw bytes
/// do too, and a name that exists in both forms is found in the form sent.
#[test]
fn legacy_names_are_listed_as_utf8_and_found_by_either_form() {
    let fx = Fixture::new();
    write_raw(&fx.root, b"caf\xe9.txt", b"latin\n");
    write_raw(&fx.root, b"bad\xffname.txt", b"ff\n");
    write_raw(&fx.root, b"\x80uro.txt", b"euro\n");
    write_raw(&fx.root, b"na\xefve.txt", b"legacy form\n");
    fx.write("na\u{ef}ve.txt", b"utf-8 form\n");
    write_raw(&fx.root, b"lat\xe9dir/inner.txt", b"inner\n");
    fx.write("plain.txt", b"plain\n");
    // 200 legacy bytes: shown as 400 UTF-8 bytes, over the filesystem's
    // 255-byte name limit as sent; also a directory of such a name.
    let long_raw = vec![0xe9u8; 200];
    let long_shown = "\u{e9}".repeat(200);
    write_raw(&fx.root, &long_raw, b"long\n");
    let mut long_dir = vec![0xe8u8; 150];
    long_dir.extend_from_slice(b"/in.txt");
    write_raw(&fx.root, &long_dir, b"deep\n");
    let long_dir_shown = "\u{e8}".repeat(150);
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();

    let shown = [
        "bad\u{ff}name.txt",
        "caf\u{e9}.txt",
        "lat\u{e9}dir",
        "na\u{ef}ve.txt",
        "na\u{ef}ve.txt",
        "plain.txt",
        "\u{20ac}uro.txt",
        &long_shown,
        &long_dir_shown,
    ];
    let mut want: Vec<&str> = shown.to_vec();
    want.sort();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let nlst = sorted(nlst_lines(&f.transfer("NLST")));
    assert_eq!(nlst, want, "NLST");
    let list = sorted(list_names(&f.transfer("LIST")));
    assert_eq!(list, want, "LIST");
    let mlsd = sorted(
        mlsd_entries(&f.transfer("MLSD"))
            .into_iter()
            .map(|(_, n)| n)
            .collect(),
    );
    assert_eq!(mlsd, want, "MLSD");

    // Each shown name, sent back, finds its file; so do the raw bytes.
    let long_dir_file = format!("{long_dir_shown}/in.txt");
    let table: &[(&[u8], &[u8])] = &[
        ("caf\u{e9}.txt".as_bytes(), b"latin\n"),
        (b"caf\xe9.txt", b"latin\n"),
        ("bad\u{ff}name.txt".as_bytes(), b"ff\n"),
        ("\u{20ac}uro.txt".as_bytes(), b"euro\n"),
        (b"\x80uro.txt", b"euro\n"),
        // Both forms on disk: each is found by its own bytes.
        ("na\u{ef}ve.txt".as_bytes(), b"utf-8 form\n"),
        (b"na\xefve.txt", b"legacy form\n"),
        ("lat\u{e9}dir/inner.txt".as_bytes(), b"inner\n"),
        (b"lat\xe9dir/inner.txt", b"inner\n"),
        (long_shown.as_bytes(), b"long\n"),
        (&long_raw, b"long\n"),
        (long_dir_file.as_bytes(), b"deep\n"),
    ];
    for (name, want) in table {
        let what = String::from_utf8_lossy(name);
        let mut line = b"RETR ".to_vec();
        line.extend_from_slice(name);
        let (got, _) = f.transfer_bytes(&line);
        assert_eq!(&got, want, "RETR {what}");
        let mut line = b"SIZE ".to_vec();
        line.extend_from_slice(name);
        assert_eq!(
            f.cmd_bytes(&line).lines,
            [format!("213 {}", want.len())],
            "SIZE {what}"
        );
        let mut line = b"MDTM ".to_vec();
        line.extend_from_slice(name);
        assert_eq!(f.cmd_bytes(&line).code, 213, "MDTM {what}");
    }
    f.expect("CWD lat\u{e9}dir", 250);
    assert_eq!(nlst_lines(&f.transfer("NLST")), ["inner.txt"]);
    assert_eq!(f.retr("inner.txt"), b"inner\n");
    f.expect("CWD ..", 250);
    f.expect(&format!("CWD {long_dir_shown}"), 250);
    f.expect("CWD /", 250);
    // Inside such a directory, a wildcard expands and a missing name is
    // missing (not "too long").
    assert_eq!(
        nlst_lines(&f.transfer(&format!("NLST {long_dir_shown}/*.txt"))),
        [format!("{long_dir_shown}/in.txt")]
    );
    let r = f.expect(&format!("SIZE {long_dir_shown}/missing.txt"), 550);
    assert_eq!(r.lines, ["550 No such file or directory."]);
    // A character windows-1252 lacks is no shown legacy name.
    f.expect("SIZE \u{65e5}.txt", 550);
    f.quit();
}

/// Writing by the shown name acts on the legacy-named file: STOR
/// overwrites it (no UTF-8 twin appears), DELE removes it, RNFR renames
/// it, APPE appends to it; a new name is created as sent (UTF-8).
#[test]
fn writes_by_the_shown_name_act_on_the_legacy_file() {
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    let home = fx.root.join("alice");
    write_raw(&home, b"caf\xe9.txt", b"old\n");
    write_raw(&home, b"d\xe9l.txt", b"delete me\n");
    write_raw(&home, b"ren\xe9.txt", b"rename me\n");
    write_raw(&home, b"app\xe9.txt", b"one\n");
    // Shown as 260 UTF-8 bytes: too long as sent, found in legacy form.
    write_raw(&home, &[0xe9u8; 130], b"long\n");
    let srv = Server::builder().users(&users).start(&fx);
    let mut f = srv.login_as("alice", "alice-pw");
    let long_shown = "\u{e9}".repeat(130);
    f.stor(&long_shown, b"long, new\n");
    assert_eq!(
        std::fs::read(home.join(os(&[0xe9u8; 130]))).unwrap(),
        b"long, new\n"
    );
    f.expect(&format!("DELE {long_shown}"), 250);
    // A new name that long is refused, not truncated.
    let r = f.cmd(&format!("DELE {long_shown}"));
    assert_eq!(r.lines, ["550 File name too long."]);

    f.stor("caf\u{e9}.txt", b"new\n");
    assert_eq!(
        std::fs::read(home.join(os(b"caf\xe9.txt"))).unwrap(),
        b"new\n"
    );
    f.expect("DELE d\u{e9}l.txt", 250);
    f.expect("RNFR ren\u{e9}.txt", 350);
    f.expect("RNTO renamed.txt", 250);
    f.upload("APPE app\u{e9}.txt", b"two\n");
    assert_eq!(
        std::fs::read(home.join(os(b"app\xe9.txt"))).unwrap(),
        b"one\ntwo\n"
    );
    f.stor("n\u{e9}w.txt", b"fresh\n");
    let mut want: Vec<Vec<u8>> = vec![
        b"app\xe9.txt".to_vec(),
        b"caf\xe9.txt".to_vec(),
        "n\u{e9}w.txt".as_bytes().to_vec(),
        b"renamed.txt".to_vec(),
    ];
    want.sort();
    assert_eq!(raw_names_in(&home), want);
    assert_eq!(fx.read("alice/renamed.txt"), b"rename me\n");
    // The 150 names a legacy-named file as listings do, sent raw or not.
    for line in [
        &b"RETR caf\xe9.txt\r\n"[..],
        "RETR caf\u{e9}.txt\r\n".as_bytes(),
    ] {
        let mut data = f.epsv_connect();
        f.send_raw(line);
        assert_eq!(
            f.read_reply_bytes(),
            "150 Opening BINARY mode data connection for caf\u{e9}.txt (4 bytes).\r\n".as_bytes()
        );
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut data, &mut got).unwrap();
        assert_eq!(got, b"new\n");
        assert_eq!(f.read_reply().code, 226);
    }
    // A legacy-named link to a directory, by its shown name: APPE meets
    // the directory, as STOR does.
    std::fs::create_dir(home.join("sub")).unwrap();
    std::os::unix::fs::symlink("sub", home.join(os(b"l\xe9d"))).unwrap();
    for verb in ["APPE", "STOR"] {
        f.epsv();
        let r = f.cmd(&format!("{verb} l\u{e9}d"));
        assert_eq!(r.lines, ["550 Is a directory."], "{verb}");
    }
    std::fs::remove_file(home.join(os(b"l\xe9d"))).unwrap();
    std::fs::remove_dir(home.join("sub")).unwrap();
    // A client that sends a name in the legacy charset itself is answered
    // with the name as listings show it (UTF-8), in MKD's and PWD's 257.
    f.send_raw(b"MKD d\xe9j\xe0\r\n");
    assert_eq!(
        f.read_reply_bytes(),
        "257 \"/d\u{e9}j\u{e0}\" created\r\n".as_bytes()
    );
    assert!(home.join(os(b"d\xe9j\xe0")).is_dir());
    f.send_raw(b"CWD d\xe9j\xe0\r\n");
    assert_eq!(f.read_reply().code, 250);
    f.send_raw(b"PWD\r\n");
    assert_eq!(
        f.read_reply_bytes(),
        "257 \"/d\u{e9}j\u{e0}\" is the current directory\r\n".as_bytes()
    );
    // Sent in the shown form, the same directory is found.
    f.expect("CWD /d\u{e9}j\u{e0}", 250);
    f.quit();
}

/// The charset is `--legacy-charset`: the same bytes are `Привет` in
/// KOI8-R and `ðÒÉ×ÅÔ` in windows-1252, each found by its shown form; a
/// multi-byte or unknown charset is refused at start.
#[test]
fn legacy_charset_is_configurable_and_single_byte_only() {
    let fx = Fixture::new();
    let raw = b"\xf0\xd2\xc9\xd7\xc5\xd4.txt";
    write_raw(&fx.root, raw, b"privet\n");
    for (charset, shown) in [
        (None, "\u{f0}\u{d2}\u{c9}\u{d7}\u{c5}\u{d4}.txt"),
        (
            Some("windows-1252"),
            "\u{f0}\u{d2}\u{c9}\u{d7}\u{c5}\u{d4}.txt",
        ),
        (
            Some("koi8-r"),
            "\u{41f}\u{440}\u{438}\u{432}\u{435}\u{442}.txt",
        ),
    ] {
        let mut b = Server::builder();
        if let Some(c) = charset {
            b = b.args(&["--legacy-charset", c]);
        }
        let srv = b.start(&fx);
        let mut f = srv.login();
        assert_eq!(nlst_lines(&f.transfer("NLST")), [shown], "{charset:?}");
        assert_eq!(f.retr(shown), b"privet\n", "{charset:?}");
        f.quit();
    }
    for (bad, says) in [
        ("shift_jis", "not a single-byte charset"),
        ("utf-8", "not a single-byte charset"),
        ("no-such-charset", "unknown charset"),
    ] {
        let r = Server::builder()
            .args(&["--legacy-charset", bad])
            .start_fails(&fx);
        assert!(
            r.stderr.contains(says),
            "--legacy-charset {bad}: {}",
            r.all()
        );
    }
}

/// A path may mix components of both kinds: a legacy name inside a UTF-8
/// directory, a UTF-8 name inside a legacy one. Every path a client is
/// shown (by `LIST -R`, or by listing each directory) must find its file,
/// and MLST and the `-R` headers show each component in its own form.
#[test]
fn mixed_legacy_and_utf8_components_are_found_and_shown() {
    let fx = Fixture::new();
    write_raw(&fx.root, b"h\xc3\xa9llo/caf\xe9.txt", b"a\n");
    write_raw(&fx.root, b"lat\xe9dir/\xc3\xbc.txt", b"b\n");
    write_raw(&fx.root, b"h\xc3\xa9llo/sub\xe9/deep.txt", b"c\n");
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();
    for (path, want) in [
        ("h\u{e9}llo/caf\u{e9}.txt", &b"a\n"[..]),
        ("lat\u{e9}dir/\u{fc}.txt", b"b\n"),
        ("h\u{e9}llo/sub\u{e9}/deep.txt", b"c\n"),
    ] {
        assert_eq!(f.retr(path), want, "RETR {path}");
        f.expect(&format!("SIZE {path}"), 213);
        let r = f.expect(&format!("MLST {path}"), 250);
        assert_eq!(r.lines[0], format!("250-Listing /{path}"));
        assert!(r.lines[1].ends_with(&format!(" /{path}")), "{r:?}");
    }
    f.expect("CWD h\u{e9}llo/sub\u{e9}", 250);
    assert_eq!(f.retr("deep.txt"), b"c\n");
    f.expect("CWD /", 250);
    let text = f.listing("LIST -R h\u{e9}llo");
    let headers: Vec<&str> = text.split("\r\n").filter(|l| l.ends_with(':')).collect();
    assert_eq!(headers, ["h\u{e9}llo:", "h\u{e9}llo/sub\u{e9}:"], "{text}");
    f.quit();
}

/// Python's ftplib decodes every reply and listing as strict UTF-8: a
/// directory holding Latin-1 names lists with mlsd(), nlst() and LIST,
/// and every name it was shown downloads.
#[test]
fn ftplib_lists_and_fetches_a_directory_of_legacy_names() {
    let fx = Fixture::new();
    write_raw(&fx.root, b"names/caf\xe9.txt", b"latin\n");
    write_raw(&fx.root, b"names/bad\xffname.txt", b"ff\n");
    write_raw(&fx.root, b"names/\x80uro.txt", b"euro\n");
    fx.write("names/plain.txt", b"plain\n");
    fx.write("names/utf8-\u{65e5}\u{672c}.txt", b"nihon\n");
    let srv = Server::builder().start(&fx);
    let out = python_scenario(
        "conformance_client.py",
        "legacy_names",
        &[
            &srv.addr().ip().to_string(),
            &srv.port().to_string(),
            "names",
        ],
    );
    for name in [
        "bad\u{ff}name.txt",
        "caf\u{e9}.txt",
        "plain.txt",
        "utf8-\u{65e5}\u{672c}.txt",
        "\u{20ac}uro.txt",
    ] {
        assert!(out.contains(&format!("fetched {name} ")), "{name}:\n{out}");
    }
}

// ------------------------------------------------------------ kind 5: perm

/// The MLSx `perm` fact says what this session may do (RFC 3659 7.5.5):
/// files `a`ppend `d`elete `f` rename `r`ead `w`rite, directories `c`reate
/// `d`elete `e`nter `f` rename `l`ist `m`kdir `p`urge, each letter only
/// where the account has the permission; MLSD and MLST agree.
#[test]
fn mlsx_perm_fact_follows_the_session_permissions() {
    let fx = Fixture::new();
    let accounts = [
        (Account::full("alice"), "adfrw", "cdeflmp"),
        (Account::new("reader", &["list", "read"]), "r", "el"),
        (
            Account::new("writer", &["list", "write", "mkdir"]),
            "w",
            "celm",
        ),
        (
            Account::new("janitor", &["list", "append", "delete"]),
            "ad",
            "delp",
        ),
        (Account::new("mover", &["list", "rename"]), "f", "efl"),
        (Account::new("chmoder", &["list", "chmod"]), "", "el"),
    ];
    let list: Vec<Account> = accounts.iter().map(|(a, _, _)| a.clone()).collect();
    let users = fx.users_file("users.toml", &list);
    for (a, _, _) in &accounts {
        fx.write(&format!("{}/f.txt", a.name), b"f\n");
        mkdir(&fx.root, &format!("{}/d", a.name));
    }
    fx.write("f.txt", b"f\n");
    mkdir(&fx.root, "d");
    let srv = Server::builder().users(&users).start(&fx);
    let mut sessions: Vec<(String, Ftp, &str, &str)> = accounts
        .iter()
        .map(|(a, file, dir)| {
            let f = srv.login_as(&a.name, &a.password);
            (a.name.clone(), f, *file, *dir)
        })
        .collect();
    sessions.push(("anonymous".into(), srv.login(), "r", "el"));
    for (who, f, file, dir) in &mut sessions {
        let entries = mlsd_entries(&f.transfer("MLSD"));
        let perm_of = |name: &str| {
            let (facts, _) = entries
                .iter()
                .find(|(_, n)| n == name)
                .unwrap_or_else(|| panic!("{who}: no {name} in MLSD"));
            fact(facts, "perm").unwrap().to_string()
        };
        assert_eq!(perm_of("f.txt"), *file, "{who}: MLSD perm of a file");
        assert_eq!(perm_of("d"), *dir, "{who}: MLSD perm of a directory");
        for (path, want) in [("f.txt", *file), ("d", *dir)] {
            let r = f.expect(&format!("MLST {path}"), 250);
            assert_eq!(
                fact(r.lines[1].trim_start(), "perm"),
                Some(want),
                "{who}: MLST {path}: {r:?}"
            );
        }
    }
}

// ------------------------------------------------------------ kind 7: replies

/// 504 for a parameter that is defined but not implemented (MODE B, C,
/// Z), 501 for one that is not defined; 502 for verbs some RFC or draft
/// defines that ringftp does not implement, before and after login (AUTH
/// too, when no certificate is configured); 500 for verbs nobody defines.
#[test]
fn unimplemented_unknown_and_unsupported_parameters() {
    let fx = Fixture::new();
    let srv = Server::builder().start(&fx);
    let mut f = Ftp::connect(srv.addr());
    let not_implemented = [
        ("HASH", "HASH"),
        ("hash", "HASH"),
        ("XMD5 f", "XMD5"),
        ("XSHA1 f", "XSHA1"),
        ("XSHA256 f", "XSHA256"),
        ("XSHA512 f", "XSHA512"),
        ("XCRC f", "XCRC"),
        ("CLNT curl", "CLNT"),
        ("AVBL", "AVBL"),
        ("LPRT 4,4,127,0,0,1,2,200,0", "LPRT"),
        ("LPSV", "LPSV"),
        ("SPSV", "SPSV"),
        ("LANG en", "LANG"),
        ("SMNT /", "SMNT"),
    ];
    for round in ["before login", "after login"] {
        for (line, verb) in not_implemented {
            let r = f.cmd(line);
            assert_eq!(
                r.lines,
                [format!("502 {verb} not implemented.")],
                "{line} {round}"
            );
        }
        for line in ["FROB", "XYZZY now", "GET file"] {
            let r = f.cmd(line);
            assert_eq!(r.code, 500, "{line} {round}: {r:?}");
        }
        // FTPS verbs on a server without a certificate: AUTH is not
        // available (502, saying why), PBSZ and PROT are out of sequence.
        for line in ["AUTH TLS", "AUTH SSL"] {
            assert_eq!(
                f.cmd(line).lines,
                ["502 AUTH not available: no TLS certificate configured."],
                "{line} {round}"
            );
        }
        assert_eq!(f.cmd("PBSZ 0").code, 503, "PBSZ {round}");
        assert_eq!(f.cmd("PROT P").code, 503, "PROT {round}");
        if round == "before login" {
            f.login();
        }
    }
    for line in ["MODE S", "MODE s", "mode S"] {
        assert_eq!(f.cmd(line).lines, ["200 Mode set to S."], "{line}");
    }
    for (line, want) in [
        ("MODE B", "504 MODE B not supported."),
        ("MODE C", "504 MODE C not supported."),
        ("MODE Z", "504 MODE Z not supported."),
        ("MODE z", "504 MODE Z not supported."),
    ] {
        assert_eq!(f.cmd(line).lines, [want], "{line}");
    }
    for line in ["MODE X", "MODE SS", "MODE 1"] {
        assert_eq!(
            f.cmd(line).lines,
            ["501 Syntax error in argument: MODE takes S, B, C or Z."],
            "{line}"
        );
    }
    assert_eq!(f.cmd("MODE").code, 501);
    f.expect("NOOP", 200);
    f.quit();
}

/// STAT without an argument: a session sees its own transfer counters,
/// never another session's; only a named account also gets the shard's
/// line "(all sessions)".
#[test]
fn stat_shows_each_session_its_own_counters() {
    let fx = Fixture::new();
    let data = pattern(5, 300_000);
    fx.write("pub/f.bin", &data);
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    let srv = Server::builder().users(&users).start(&fx);

    let mut a = srv.login();
    let mut b = srv.login();
    assert_eq!(a.retr("pub/f.bin"), data);
    assert_eq!(a.retr("pub/f.bin"), data);
    let mine = a.stat_counters();
    assert_eq!(
        mine.spliced + mine.copied,
        2 * data.len() as u64,
        "{mine:?}"
    );
    let r = a.expect("STAT", 211);
    assert!(r.text().contains("this session: 2 transfers"), "{r:?}");
    let r = b.expect("STAT", 211);
    assert!(
        r.text()
            .contains("this session: 0 transfers, 0 bytes spliced"),
        "{r:?}"
    );
    assert_eq!(
        parse_counters(&r.text()).map(|c| c.spliced + c.copied),
        Some(0)
    );
    for r in [a.expect("STAT", 211), b.expect("STAT", 211)] {
        assert!(
            parse_shard_counters(&r.text()).is_none(),
            "an anonymous session is shown the shard's counters: {r:?}"
        );
    }
    // A named account: its own line (nothing yet) and the shard's.
    let mut alice = srv.login_as("alice", "alice-pw");
    let own = alice.stat_counters();
    assert_eq!(own.spliced + own.copied, 0, "{own:?}");
    let shard = alice.shard_counters();
    assert!(
        shard.spliced + shard.copied >= 2 * data.len() as u64,
        "{shard:?}"
    );
    a.quit();
    b.quit();
    alice.quit();
}

// ------------------------------------------------------------ full disk

/// A STOR, an overwrite and an APPE that fill a small tmpfs: the client
/// can send everything it has (the server reads and discards the rest),
/// then reads 452; nothing on disk is lost or left half-written, and the
/// session goes on.
#[test]
fn full_disk_lets_the_client_finish_then_answers_452() {
    let fx = Fixture::new();
    let mnt = fx.work.join("tmpfs");
    let _tmpfs = Tmpfs::mount(&mnt, "2m").expect("mounting a tmpfs (run as root)");
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    let home = mnt.join("alice");
    std::fs::create_dir_all(&home).unwrap();
    let existing = pattern(20, 256 << 10);
    std::fs::write(home.join("existing.bin"), &existing).unwrap();
    std::fs::write(home.join("log.bin"), b"log\n").unwrap();
    let srv = Server::builder().root(&mnt).users(&users).start(&fx);
    let big = pattern(21, 6 << 20);

    let mut f = srv.login_as("alice", "alice-pw");
    for line in ["STOR new.bin", "STOR existing.bin", "APPE log.bin"] {
        let mut data = f.epsv_connect();
        f.expect(line, 150);
        data.write_all(&big)
            .unwrap_or_else(|e| panic!("{line}: the server stopped reading at ENOSPC: {e}"));
        data.shutdown(Shutdown::Write).unwrap();
        read_all_lenient(&mut data);
        let r = f.read_reply();
        assert_eq!(
            r.lines,
            ["452 Insufficient storage space; transfer aborted."],
            "{line}"
        );
        f.expect("NOOP", 200);
    }
    assert!(
        !home.join("new.bin").exists(),
        "the partial new file stayed"
    );
    assert_bytes_eq(
        "existing.bin",
        &std::fs::read(home.join("existing.bin")).unwrap(),
        &existing,
    );
    assert_eq!(std::fs::read(home.join("log.bin")).unwrap(), b"log\n");
    assert_eq!(names_in(&home), ["existing.bin", "log.bin"]);
    // The space came back: the session stores a file that fits.
    let small = pattern(22, 512 << 10);
    f.stor("small.bin", &small);
    assert_bytes_eq(
        "small.bin",
        &std::fs::read(home.join("small.bin")).unwrap(),
        &small,
    );
    f.quit();
}

/// A client that stops sending at ENOSPC without closing its data
/// connection gets its 452 once `--data-timeout` has passed, not never.
#[test]
fn full_disk_waits_at_most_the_data_timeout() {
    let fx = Fixture::new();
    let mnt = fx.work.join("tmpfs");
    let _tmpfs = Tmpfs::mount(&mnt, "2m").expect("mounting a tmpfs (run as root)");
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    std::fs::create_dir_all(mnt.join("alice")).unwrap();
    let srv = Server::builder()
        .root(&mnt)
        .users(&users)
        .args(&["--data-timeout", "2s"])
        .start(&fx);
    let mut f = srv.login_as("alice", "alice-pw");
    let mut data = f.epsv_connect();
    f.expect("STOR new.bin", 150);
    data.write_all(&pattern(23, 3 << 20)).unwrap();
    // The data connection stays open, silent.
    let r = f.read_reply();
    assert_eq!(
        r.lines,
        ["452 Insufficient storage space; transfer aborted."]
    );
    f.expect("NOOP", 200);
    assert!(!mnt.join("alice/new.bin").exists());
    drop(data);
    f.quit();
}

/// Real clients on a full disk: Python's ftplib raises error_temp 452
/// (not a broken pipe) and the session goes on; curl reports the 452.
#[test]
fn full_disk_reaches_ftplib_and_curl_as_452() {
    let fx = Fixture::new();
    let mnt = fx.work.join("tmpfs");
    let _tmpfs = Tmpfs::mount(&mnt, "2m").expect("mounting a tmpfs (run as root)");
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    std::fs::create_dir_all(mnt.join("alice")).unwrap();
    let srv = Server::builder().root(&mnt).users(&users).start(&fx);
    python_scenario(
        "conformance_client.py",
        "full_disk",
        &[
            &srv.addr().ip().to_string(),
            &srv.port().to_string(),
            "alice",
            "alice-pw",
            &(6u32 << 20).to_string(),
        ],
    );
    assert_eq!(names_in(&mnt.join("alice")), ["fits.bin"]);

    let local = fx.out("big.bin");
    std::fs::write(&local, pattern(24, 6 << 20)).unwrap();
    let url = format!("ftp://alice:alice-pw@{}/curl.bin", srv.addr());
    let r = curl(&["-v", "-T", &local.to_string_lossy(), &url]);
    r.fails();
    assert!(
        r.stderr.contains("< 452 Insufficient storage space"),
        "curl did not see the 452:\n{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Broken pipe"), "{}", r.stderr);
    assert_eq!(names_in(&mnt.join("alice")), ["fits.bin"]);
}
