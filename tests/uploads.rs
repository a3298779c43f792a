//! Uploads and file management with real clients over real sockets: curl
//! `-T` in every data mode and its resume, Python ftplib (STOR, APPE, STOU,
//! REST + STOR, TYPE A, file management), lftp `mirror -R` of a tree and
//! back, and the exact replies of MKD/RMD/RNFR/RNTO/MFMT/SITE CHMOD. Every
//! uploaded file is compared byte for byte (sha256 in the failure message)
//! with its source.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// A fixture with one full-permission account `alice` (password
/// `alice-pw`, home /alice) and a server for it.
fn alice_server(extra: &[&str]) -> (Fixture, Server) {
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    let srv = Server::builder().users(&users).args(extra).start(&fx);
    (fx, srv)
}

fn url(srv: &Server, user: &str, path: &str) -> String {
    format!("ftp://{user}:{user}-pw@{}{path}", srv.addr())
}

#[test]
fn curl_uploads_in_every_data_mode() {
    let (fx, srv) = alice_server(&[]);
    let modes: [(&str, &[&str], &str); 4] = [
        ("epsv", &[], "EPSV"),
        ("pasv", &["--disable-epsv"], "PASV"),
        ("eprt", &["--ftp-port", "127.0.0.1"], "EPRT"),
        (
            "port",
            &["--ftp-port", "127.0.0.1", "--disable-eprt"],
            "PORT",
        ),
    ];
    for (i, (mode, flags, verb)) in modes.iter().enumerate() {
        let data = pattern(10 + i as u64, (3 << 20) + 17 * i);
        let local = write(&fx.work, &format!("{mode}.bin"), &data);
        let mut args: Vec<&str> = flags.to_vec();
        let local_s = local.to_string_lossy().into_owned();
        let target = url(&srv, "alice", &format!("/incoming/{mode}/"));
        args.extend(["-v", "--ftp-create-dirs", "-T", &local_s, &target]);
        let r = curl(&args);
        r.ok();
        assert!(
            r.stderr.contains(&format!("> {verb}")),
            "curl {mode} did not use {verb}:\n{}",
            r.stderr
        );
        assert_same_file(
            &fx.root.join(format!("alice/incoming/{mode}/{mode}.bin")),
            &local,
        );
    }
    // A name with spaces and UTF-8 (percent-encoded in the URL), and an
    // empty file.
    let data = pattern(20, 100_000);
    let local = write(&fx.work, "src.bin", &data);
    let target = url(&srv, "alice", "/h%C3%A9llo%20w%C3%B6rld%20%E6%97%A5.bin");
    curl(&["-T", &local.to_string_lossy(), &target]).ok();
    assert_same_file(
        &fx.root.join("alice/h\u{e9}llo w\u{f6}rld \u{65e5}.bin"),
        &local,
    );
    let empty = write(&fx.work, "empty", b"");
    curl(&["-T", &empty.to_string_lossy(), &url(&srv, "alice", "/")]).ok();
    assert_eq!(fx.read("alice/empty"), b"");
    // Nothing hidden is left behind, nothing outside the home was touched.
    assert_eq!(
        names_in(&fx.root.join("alice")),
        ["empty", "h\u{e9}llo w\u{f6}rld \u{65e5}.bin", "incoming"]
    );
    assert_eq!(names_in(&fx.root), ["alice"]);
}

#[test]
fn curl_resumes_an_upload() {
    let (fx, srv) = alice_server(&[]);
    let data = pattern(30, (10 << 20) + 5);
    let local = write(&fx.work, "big.bin", &data);
    for cut in [1usize, 65536, 2 << 20, data.len() - 1] {
        fx.write("alice/big.bin", &data[..cut]);
        let r = curl(&[
            "-v",
            "-C",
            "-",
            "-T",
            &local.to_string_lossy(),
            &url(&srv, "alice", "/big.bin"),
        ]);
        r.ok();
        assert!(
            r.stderr.contains("> SIZE big.bin"),
            "curl -C - asks SIZE first:\n{}",
            r.stderr
        );
        assert_same_file(&fx.root.join("alice/big.bin"), &local);
    }
    // Nothing left to send: the file stays as it is.
    curl(&[
        "-C",
        "-",
        "-T",
        &local.to_string_lossy(),
        &url(&srv, "alice", "/big.bin"),
    ])
    .ok();
    assert_same_file(&fx.root.join("alice/big.bin"), &local);
}

#[test]
fn ftplib_stor_in_pasv_and_port() {
    let (fx, srv) = alice_server(&[]);
    let out = upload_scenario(&fx, &srv, "stor", None);
    assert!(out.contains("*cmd* 'PASV'") && out.contains("*cmd* 'PORT "));
    assert!(!out.contains(".ringftp-upload"));
    let hidden: Vec<_> = names_in(&fx.root.join("alice"))
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn ftplib_appe_appends() {
    let (fx, srv) = alice_server(&[]);
    let out = upload_scenario(&fx, &srv, "appe", None);
    assert!(out.contains("*cmd* 'APPE log.bin'"), "{out}");
}

#[test]
fn ftplib_stou_names_the_file_it_made() {
    let (fx, srv) = alice_server(&[]);
    let out = upload_scenario(&fx, &srv, "stou", None);
    assert!(out.contains("*resp* '150 FILE: unique.bin'"), "{out}");
    // Four distinct files, all in the home.
    let names = names_in(&fx.root.join("alice"));
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn ftplib_rest_stor_resumes() {
    let (fx, srv) = alice_server(&[]);
    let out = upload_scenario(&fx, &srv, "rest", None);
    assert!(out.contains("*cmd* 'REST 1048576'"), "{out}");
}

/// REST sent before the data connection is set up (REST, TYPE, PASV or
/// EPSV, then the transfer) still restarts the transfer, as vsftpd and
/// pure-ftpd keep it: a client doing so must not overwrite the file it
/// meant to resume. Any other command in between cancels it.
#[test]
fn rest_before_pasv_or_epsv_still_restarts() {
    let (fx, srv) = alice_server(&[]);
    let old: Vec<u8> = (0..100u8).collect();
    let mut f = srv.login_as("alice", "alice-pw");
    // Upload: REST, TYPE I, EPSV, STOR resumes at 10.
    fx.write("alice/long.bin", &old);
    f.expect("REST 10", 350);
    f.expect("TYPE I", 200);
    let mut conn = f.epsv_connect();
    f.expect("STOR long.bin", 150);
    conn.write_all(b"new").unwrap();
    drop(conn);
    assert_eq!(f.read_reply().code, 226);
    let mut want = old[..10].to_vec();
    want.extend_from_slice(b"new");
    assert_eq!(fx.read("alice/long.bin"), want);
    // Download: REST, PASV, RETR sends from 5; the next RETR from 0.
    fx.write("alice/long.bin", &old);
    f.expect("REST 5", 350);
    let addr = f.pasv();
    let mut data = std::net::TcpStream::connect(addr).unwrap();
    f.expect("RETR long.bin", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(f.read_reply().code, 226);
    assert_eq!(got, old[5..]);
    assert_eq!(f.retr("long.bin"), old);
    // Another command in between: the offset is gone.
    f.expect("REST 5", 350);
    f.expect("NOOP", 200);
    assert_eq!(f.retr("long.bin"), old);
    // So does a line refused before it is a command: unknown, a missing or
    // bad argument (a bad REST does not leave the older offset standing).
    for between in ["BOGUS", "SIZE", "REST abc", "CLNT x"] {
        f.expect("REST 5", 350);
        let code = f.cmd(between).code;
        assert!((500..=504).contains(&code), "{between}: {code}");
        assert_eq!(f.retr("long.bin"), old, "{between}");
    }
    // A refused data set-up (a bad PORT) keeps it, as a failed PASV does.
    f.expect("REST 5", 350);
    f.expect("PORT 1,2", 501);
    assert_eq!(f.retr("long.bin"), old[5..]);
    f.quit();
}

/// REST N + STOR onto a longer file is a resumed upload: the first N old
/// bytes stay, the new data follows, and the file ends where it ends (the
/// old tail is cut, as pure-ftpd does). Also REST 0 and REST at the end.
#[test]
fn rest_stor_keeps_the_head_and_cuts_the_old_tail() {
    let (fx, srv) = alice_server(&[]);
    let old: Vec<u8> = (0..100u8).collect();
    let mut f = srv.login_as("alice", "alice-pw");
    f.expect("TYPE I", 200);
    // (offset, new data): in the middle, at 0, nothing after 4, at the
    // old end (an append).
    for (offset, new) in [
        (10usize, &b"xyz"[..]),
        (0, b"head"),
        (4, b""),
        (100, b"tail"),
    ] {
        fx.write("alice/long.bin", &old);
        // REST right before STOR (RFC 3659 5.3), after EPSV, as ftplib
        // and curl send it.
        let mut conn = f.epsv_connect();
        f.expect(&format!("REST {offset}"), 350);
        f.expect("STOR long.bin", 150);
        conn.write_all(new).unwrap();
        drop(conn);
        assert_eq!(f.read_reply().code, 226, "REST {offset}");
        let mut want = old[..offset].to_vec();
        want.extend_from_slice(new);
        assert_eq!(fx.read("alice/long.bin"), want, "REST {offset}");
    }
    // Past the end: refused, saying why, and the file is untouched.
    fx.write("alice/long.bin", &old);
    let _conn = f.epsv_connect();
    f.expect("REST 101", 350);
    let r = f.expect("STOR long.bin", 554);
    assert_eq!(
        r.lines,
        ["554 Restart offset 101 is past the end of the file (100 bytes)."]
    );
    assert_eq!(fx.read("alice/long.bin"), old);
    // Broken off (ABOR): the first 10 bytes, then whatever of the new data
    // arrived, and nothing of the old tail; SIZE says where to go on.
    let mut conn = f.epsv_connect();
    f.expect("REST 10", 350);
    f.expect("STOR long.bin", 150);
    conn.write_all(b"vwxyz").unwrap();
    f.send_raw(b"ABOR\r\n");
    assert_eq!(f.read_reply().code, 426);
    assert_eq!(f.read_reply().code, 226);
    drop(conn);
    let got = fx.read("alice/long.bin");
    assert!(
        got.starts_with(&old[..10]) && b"vwxyz".starts_with(&got[10..]),
        "{got:?}"
    );
    let r = f.expect("SIZE long.bin", 213);
    assert_eq!(r.lines, [format!("213 {}", got.len())]);
    // A data connection that never comes: 425, and the file as it was.
    fx.write("alice/long.bin", &old);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap();
    drop(closed);
    f.expect(&format!("EPRT {}", eprt_arg(port)), 200);
    f.expect("REST 10", 350);
    f.expect("STOR long.bin", 425);
    assert_eq!(fx.read("alice/long.bin"), old);
    // Through a symlink the offset is checked against, and the data goes
    // into, the file it points to; so does APPE's.
    fx.write("alice/target.bin", &old);
    std::os::unix::fs::symlink("target.bin", fx.root.join("alice/link")).unwrap();
    let mut conn = f.epsv_connect();
    f.expect("REST 50", 350);
    f.expect("STOR link", 150);
    conn.write_all(b"xyz").unwrap();
    drop(conn);
    assert_eq!(f.read_reply().code, 226);
    assert_eq!(fx.read("alice/target.bin"), [&old[..50], b"xyz"].concat());
    f.upload("APPE link", b"+");
    assert_eq!(fx.read("alice/target.bin"), [&old[..50], b"xyz+"].concat());
}

/// Under the Landlock sandbox an account may rename what is in its home
/// whatever its kind: a symlink and a FIFO move like a file (a rename
/// needs the right to make that kind of entry in the target directory).
#[test]
fn rnfr_rnto_moves_symlinks_and_fifos_under_the_sandbox() {
    let (fx, srv) = alice_server(&["--sandbox", "required"]);
    let home = fx.root.join("alice");
    fx.write("alice/sub/keep.txt", b"k\n");
    std::os::unix::fs::symlink("sub/keep.txt", home.join("link")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(home.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success());
    let mut f = srv.login_as("alice", "alice-pw");
    // A FIFO may be deleted and renamed, never read or written: its MLST
    // `perm` says so (RFC 3659 section 7.5.5), whatever its mode bits.
    let r = f.expect("MLST pipe", 250);
    assert!(r.lines[1].contains(";perm=df;"), "{r:?}");
    let r = f.expect("MLST link", 250);
    assert!(r.lines[1].contains(";perm=adfrw;"), "{r:?}");
    for (from, to) in [
        ("link", "link2"),
        ("link2", "sub/link3"),
        ("pipe", "sub/pipe2"),
    ] {
        f.expect(&format!("RNFR {from}"), 350);
        f.expect(&format!("RNTO {to}"), 250);
    }
    let link = std::fs::symlink_metadata(home.join("sub/link3")).unwrap();
    assert!(link.file_type().is_symlink());
    use std::os::unix::fs::FileTypeExt;
    let pipe = std::fs::symlink_metadata(home.join("sub/pipe2")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert!(std::fs::symlink_metadata(home.join("link")).is_err());
    assert!(std::fs::symlink_metadata(home.join("pipe")).is_err());
    f.quit();
}

#[test]
fn type_a_upload_converts_crlf_to_lf() {
    let (fx, srv) = alice_server(&[]);
    upload_scenario(&fx, &srv, "ascii", None);
    // A lone CR (not before LF) is data and stays; CRLF split across
    // writes still becomes LF.
    let mut f = srv.login_as("alice", "alice-pw");
    f.expect("TYPE A", 200);
    f.stor("cr.txt", b"a\rb\r\nc\r\r\nd\r");
    assert_eq!(fx.read("alice/cr.txt"), b"a\rb\nc\r\nd\r");
}

#[test]
fn ftplib_file_management() {
    let (fx, srv) = alice_server(&[]);
    upload_scenario(&fx, &srv, "manage", None);
    assert_eq!(names_in(&fx.root.join("alice")), ["t.bin"]);
}

#[test]
fn lftp_mirror_r_then_mirror_back() {
    let (fx, srv) = alice_server(&[]);
    let tree = fx.work.join("tree");
    write(&tree, "a/b/c/deep.bin", &pattern(40, 300_000));
    write(&tree, "a/zero", b"");
    write(
        &tree,
        "a/with space \u{e9}\u{65e5}.txt",
        b"spaces and UTF-8\n",
    );
    write(&tree, "big.bin", &pattern(41, (65 << 20) + 3));
    write(&tree, "top.txt", &text_lines(100));
    mkdir(&tree, "a/empty dir");
    let home = fx.work.join("lftp-home");
    let r = lftp(
        &url(&srv, "alice", ""),
        "mirror -R --no-perms ./tree /tree",
        &fx.work,
        &home,
    );
    r.ok();
    let want = sha256_tree(&tree);
    let on_server = sha256_tree(&fx.root.join("alice/tree"));
    assert_eq!(on_server, want, "mirror -R: the server's tree differs");
    let r = lftp(
        &url(&srv, "alice", ""),
        "mirror /tree ./back",
        &fx.work,
        &home,
    );
    r.ok();
    assert_eq!(
        sha256_tree(&fx.work.join("back")),
        want,
        "mirror back: the downloaded tree differs"
    );
    assert_same_tree(&fx.work.join("back"), &tree, &[]);
    // Mirroring again uploads nothing new and changes nothing.
    lftp(
        &url(&srv, "alice", ""),
        "mirror -R --no-perms ./tree /tree",
        &fx.work,
        &home,
    )
    .ok();
    assert_eq!(sha256_tree(&fx.root.join("alice/tree")), want);
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn file_management_replies() {
    let fx = Fixture::new();
    let users = fx.users_file(
        "users.toml",
        &[
            Account::full("alice"),
            Account::new("nochmod", &["list", "read", "write", "rename"]),
        ],
    );
    let srv = Server::builder().users(&users).start(&fx);
    let home = fx.root.join("alice");
    let mut f = srv.login_as("alice", "alice-pw");

    let r = f.expect("MKD d1", 257);
    assert_eq!(r.lines[0], "257 \"/d1\" created");
    let r = f.expect("XMKD d1/x \"q\"", 257);
    // RFC 959: a quote in the path is doubled.
    assert_eq!(r.lines[0], "257 \"/d1/x \"\"q\"\"\" created");
    assert!(home.join("d1/x \"q\"").is_dir());
    f.expect("MKD d1", 550);
    f.expect("CWD d1", 250);
    let r = f.expect("MKD sub", 257);
    assert_eq!(r.lines[0], "257 \"/d1/sub\" created");
    f.expect("XRMD sub", 250);
    f.expect("CWD /", 250);
    assert!(!home.join("d1/sub").exists());
    f.expect("RMD d1", 550); // not empty
    f.expect("RMD d1/x \"q\"", 250);
    f.expect("RMD d1", 250);
    f.expect("RMD d1", 550);
    f.expect("RMD /", 550);
    assert_eq!(names_in(&home), Vec::<String>::new());

    f.stor("a.bin", &pattern(1, 5000));
    f.expect("DELE a.bin", 250);
    assert!(!home.join("a.bin").exists());
    f.expect("DELE a.bin", 550);
    f.expect("MKD dir", 257);
    f.expect("DELE dir", 550);
    assert!(home.join("dir").is_dir());

    // RNFR/RNTO: 350 then 250; RNTO without RNFR: 503; RNFR of nothing: 550.
    f.stor("r.bin", b"rename me");
    f.expect("RNTO s.bin", 503);
    f.expect("RNFR nothing", 550);
    f.expect("RNTO s.bin", 503);
    f.expect("RNFR r.bin", 350);
    f.expect("RNTO dir/s.bin", 250);
    assert_eq!(std::fs::read(home.join("dir/s.bin")).unwrap(), b"rename me");
    assert!(!home.join("r.bin").exists());
    // RNFR then another command: the rename is forgotten.
    f.expect("RNFR dir/s.bin", 350);
    f.expect("NOOP", 200);
    f.expect("RNTO t.bin", 503);
    // Directories rename too; a directory cannot go inside itself.
    f.expect("RNFR dir", 350);
    f.expect("RNTO dir2", 250);
    f.expect("RNFR dir2", 350);
    let r = f.expect("RNTO dir2/inner", 550);
    assert_eq!(r.lines[0], "550 Cannot move a directory into itself.");
    assert!(home.join("dir2/s.bin").is_file());
    // A name over the filesystem's 255-byte limit says so, whatever the
    // command.
    let long = "n".repeat(300);
    for line in [
        format!("MKD {long}"),
        format!("CWD {long}"),
        format!("SIZE dir2/{long}"),
        format!("DELE {long}"),
    ] {
        let r = f.expect(&line, 550);
        assert_eq!(r.lines[0], "550 File name too long.", "{line}");
    }
    f.expect("RNFR dir2/s.bin", 350);
    let r = f.expect(&format!("RNTO {long}"), 550);
    assert_eq!(r.lines[0], "550 File name too long.");
    let conn = f.epsv_connect();
    let r = f.cmd(&format!("STOR {long}"));
    assert_eq!(r.lines[0], "550 File name too long.", "STOR");
    conn.shutdown(std::net::Shutdown::Both).ok();

    // MFMT, then MDTM shows it (and the disk has it).
    let r = f.expect("MFMT 20210304050607 dir2/s.bin", 213);
    assert!(r.lines[0].contains("Modify=20210304050607"), "{r:?}");
    let r = f.expect("MDTM dir2/s.bin", 213);
    assert_eq!(r.lines[0], "213 20210304050607");
    let mtime = std::fs::metadata(home.join("dir2/s.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_614_834_367
    );
    f.expect("MFMT 20210304050607 nothing", 550);
    f.expect("MFMT yesterday dir2/s.bin", 501);

    // SITE CHMOD changes the mode on disk; no set-id bits.
    f.expect("SITE CHMOD 640 dir2/s.bin", 200);
    assert_eq!(mode_of(&home.join("dir2/s.bin")), 0o640);
    f.expect("SITE CHMOD 711 dir2", 200);
    assert_eq!(mode_of(&home.join("dir2")), 0o711);
    f.expect("SITE CHMOD 4755 dir2/s.bin", 501);
    assert_eq!(mode_of(&home.join("dir2/s.bin")), 0o640);

    // Uploads the server must refuse before any data moves.
    for line in [
        "STOR no/such/dir/f",
        "STOR dir2",
        "STOR .",
        "STOR ..",
        "STOR /",
        "APPE dir2",
    ] {
        f.epsv();
        let r = f.cmd(line);
        assert_eq!(r.code, 550, "{line}: {r:?}");
    }
    f.expect("ALLO 1000", 202);
    f.stor("allo.bin", b"after ALLO");
    assert_eq!(std::fs::read(home.join("allo.bin")).unwrap(), b"after ALLO");

    // FEAT lists what was added.
    let feat = f.expect("FEAT", 211).text();
    for want in ["MFMT", "UTF8", "REST STREAM", "SIZE", "MDTM"] {
        assert!(
            feat.lines().any(|l| l.trim().starts_with(want)),
            "FEAT lacks {want}: {feat}"
        );
    }
    f.quit();

    // Without the chmod permission SITE CHMOD is refused and the mode stays.
    let home2 = fx.root.join("nochmod");
    let mut g = srv.login_as("nochmod", "nochmod-pw");
    g.stor("f", b"x");
    let before = mode_of(&home2.join("f"));
    g.expect("SITE CHMOD 777 f", 550);
    assert_eq!(mode_of(&home2.join("f")), before);
    g.expect("DELE f", 550);
    g.expect("MKD d", 550);
    g.expect("RNFR f", 350);
    g.expect("RNTO g", 250);
    assert!(home2.join("g").is_file());
    g.quit();
}

#[test]
fn max_upload_rate_caps_an_account() {
    let fx = Fixture::new();
    let users = fx.users_file(
        "users.toml",
        &[
            Account::full("slow").extra("max_upload_rate = \"1MiB\""),
            Account::full("fast"),
        ],
    );
    let srv = Server::builder().users(&users).start(&fx);
    let data = pattern(50, 3 << 20);
    let mut took = Vec::new();
    for user in ["slow", "fast"] {
        let mut f = srv.login_as(user, &format!("{user}-pw"));
        let t = std::time::Instant::now();
        f.stor("up.bin", &data);
        took.push(t.elapsed());
        assert_bytes_eq(user, &fx.read(&format!("{user}/up.bin")), &data);
        f.quit();
    }
    eprintln!(
        "3 MiB upload: capped at 1 MiB/s {:?}, uncapped {:?}",
        took[0], took[1]
    );
    // 3 MiB at 1 MiB/s: about 2 s or more (the first chunk may go at once).
    assert!(
        took[0] >= std::time::Duration::from_millis(1800),
        "max_upload_rate = 1MiB: 3 MiB took only {:?}",
        took[0]
    );
    assert!(took[1] < took[0], "{took:?}");
}

/// A paced upload is not taken for a stalled one: 4 KiB at 1 KiB a second
/// with `--data-timeout 2s` lands whole. The client's bytes arrive at once
/// and wait in the server's receive buffer while the pacer works through
/// them, so TCP itself shows no progress for four seconds; the watchdog
/// counts the bytes the upload moves too. Before, it read TCP alone and
/// cut such an upload with 426 "no progress" (found by a review helper).
#[test]
fn a_paced_upload_is_not_taken_for_a_stalled_one() {
    let fx = Fixture::new();
    let users = fx.users_file(
        "users.toml",
        &[Account::full("slow").extra("max_upload_rate = \"1KiB\"")],
    );
    let srv = Server::builder()
        .users(&users)
        .args(&["--data-timeout", "2s"])
        .start(&fx);
    let data = pattern(51, 4096);
    let mut f = srv.login_as("slow", "slow-pw");
    f.stor("paced.bin", &data);
    assert_bytes_eq("paced upload", &fx.read("slow/paced.bin"), &data);
    f.quit();
}

/// STOR to a name that is already taken: a new name is created (O_EXCL),
/// and only when the kernel says something is there does the upload look
/// at what: a directory refuses with 550 and stays as it was, a file is
/// replaced whole, a symlink is replaced by the file itself (its target,
/// dangling or not, is neither created nor changed) unless it leads to a
/// directory (refused like the directory), and a file that appeared
/// between two STORs is replaced, not appended to.
#[test]
fn stor_onto_names_already_taken() {
    let (fx, srv) = alice_server(&[]);
    let home = fx.root.join("alice");
    std::fs::create_dir(home.join("dir")).unwrap();
    std::fs::write(home.join("dir/inside.txt"), b"keep").unwrap();
    std::fs::write(home.join("old.bin"), pattern(7, 9000)).unwrap();
    std::os::unix::fs::symlink("missing-target", home.join("dangling")).unwrap();
    std::os::unix::fs::symlink("dir", home.join("dirlink")).unwrap();
    std::fs::write(home.join("target.txt"), b"the target").unwrap();
    std::os::unix::fs::symlink("target.txt", home.join("filelink")).unwrap();
    let mut f = srv.login_as("alice", "alice-pw");

    for onto in ["dir", "dirlink"] {
        f.epsv();
        let r = f.cmd(&format!("STOR {onto}"));
        assert_eq!(r.text(), "550 Is a directory.", "STOR {onto}");
        assert!(home.join("dir").is_dir());
        assert_eq!(std::fs::read(home.join("dir/inside.txt")).unwrap(), b"keep");
    }
    let m = std::fs::symlink_metadata(home.join("dirlink")).unwrap();
    assert!(m.file_type().is_symlink(), "{m:?}");
    if nix::unistd::geteuid().is_root() {
        // A link into a directory the server's user may not search (made
        // by root after the server started): what it leads to cannot be
        // told, so it is refused, not replaced unseen.
        std::fs::create_dir_all(home.join("rootdir/xdir")).unwrap();
        std::fs::set_permissions(home.join("rootdir"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::os::unix::fs::symlink("rootdir/xdir", home.join("l_hidden")).unwrap();
        f.epsv();
        assert_eq!(f.cmd("STOR l_hidden").text(), "550 Permission denied.");
        let m = std::fs::symlink_metadata(home.join("l_hidden")).unwrap();
        assert!(m.file_type().is_symlink(), "{m:?}");
        std::fs::remove_file(home.join("l_hidden")).unwrap();
        std::fs::remove_dir_all(home.join("rootdir")).unwrap();
    }

    f.stor("filelink", b"replaces the link");
    let m = std::fs::symlink_metadata(home.join("filelink")).unwrap();
    assert!(m.is_file(), "the link itself is replaced: {m:?}");
    assert_eq!(
        std::fs::read(home.join("filelink")).unwrap(),
        b"replaces the link"
    );
    assert_eq!(
        std::fs::read(home.join("target.txt")).unwrap(),
        b"the target"
    );
    for gone in ["dirlink", "filelink", "target.txt"] {
        std::fs::remove_file(home.join(gone)).unwrap();
    }

    f.stor("old.bin", b"short");
    assert_eq!(std::fs::read(home.join("old.bin")).unwrap(), b"short");

    f.stor("dangling", b"a file now");
    let m = std::fs::symlink_metadata(home.join("dangling")).unwrap();
    assert!(m.is_file(), "the link itself is replaced: {m:?}");
    assert_eq!(std::fs::read(home.join("dangling")).unwrap(), b"a file now");
    assert!(!home.join("missing-target").exists());

    f.stor("new.bin", &pattern(3, 70_000));
    assert_eq!(
        std::fs::read(home.join("new.bin")).unwrap(),
        pattern(3, 70_000)
    );
    std::fs::write(home.join("new.bin"), b"someone else's").unwrap();
    f.stor("new.bin", b"mine");
    assert_eq!(std::fs::read(home.join("new.bin")).unwrap(), b"mine");
    assert_eq!(names_in(&home).len(), 4, "{:?}", names_in(&home));
}

/// Two uploads may not write one file in place at once. While an APPE
/// runs, another session's APPE or REST + STOR of that file gets 450
/// ("file busy", RFC 959) and writes nothing; once the first is answered,
/// the file is free again. Before, both APPEs wrote at the length they had
/// found, over each other's bytes, and an APPE that failed cut the file
/// back to where it began, taking another session's acknowledged bytes
/// with it (found by a review helper).
#[test]
fn uploads_into_one_file_wait_their_turn() {
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.write("alice/log.txt", b"head\n");
    let srv = Server::builder().users(&users).start(&fx);
    let mut a = srv.login_as("alice", "alice-pw");
    let mut b = srv.login_as("alice", "alice-pw");

    let mut conn = a.epsv_connect();
    a.expect("APPE log.txt", 150);
    conn.write_all(b"from a\n").unwrap();
    b.epsv();
    let r = b.cmd("APPE log.txt");
    assert_eq!(r.code, 450, "{r:?}");
    assert!(r.lines[0].contains("busy"), "{r:?}");
    b.expect("REST 2", 350);
    b.epsv();
    assert_eq!(b.cmd("STOR log.txt").code, 450);
    drop(conn);
    assert_eq!(a.read_reply().code, 226);
    assert_eq!(fx.read("alice/log.txt"), b"head\nfrom a\n");
    // Answered, the file is free: no retry needed.
    b.upload("APPE log.txt", b"from b\n");
    assert_eq!(fx.read("alice/log.txt"), b"head\nfrom a\nfrom b\n");

    // B's APPE fails (ABOR) while A is refused: B undoes only its own bytes.
    let mut conn = b.epsv_connect();
    b.expect("APPE log.txt", 150);
    conn.write_all(b"partial").unwrap();
    a.epsv();
    assert_eq!(a.cmd("APPE log.txt").code, 450);
    b.send_raw(b"ABOR\r\n");
    let mut codes = vec![b.read_reply().code];
    if codes[0] == 426 {
        codes.push(b.read_reply().code);
    }
    assert_eq!(codes, [426, 226], "ABOR of an APPE");
    drop(conn);
    assert_eq!(fx.read("alice/log.txt"), b"head\nfrom a\nfrom b\n");
    a.upload("APPE log.txt", b"from a again\n");
    assert_eq!(
        fx.read("alice/log.txt"),
        b"head\nfrom a\nfrom b\nfrom a again\n"
    );

    // A new file is held the same way while it arrives.
    let mut conn = a.epsv_connect();
    a.expect("STOR new.txt", 150);
    conn.write_all(b"new ").unwrap();
    b.epsv();
    assert_eq!(b.cmd("APPE new.txt").code, 450);
    conn.write_all(b"file\n").unwrap();
    drop(conn);
    assert_eq!(a.read_reply().code, 226);
    assert_eq!(fx.read("alice/new.txt"), b"new file\n");
    a.quit();
    b.quit();
}

/// With --atomic-uploads a STOU arrives under a hidden name and is renamed
/// over the empty file that reserves its unique name; that file is held
/// meanwhile, so another session's APPE into it gets 450 instead of a 226
/// for bytes the commit then replaces (found by a review helper).
#[test]
fn an_atomic_stou_holds_its_reserved_name() {
    let (fx, srv) = alice_server(&["--atomic-uploads"]);
    let mut a = srv.login_as("alice", "alice-pw");
    let mut b = srv.login_as("alice", "alice-pw");
    let mut conn = a.epsv_connect();
    let r = a.expect("STOU", 150);
    let name = r.lines[0]
        .strip_prefix("150 FILE: ")
        .unwrap_or_else(|| panic!("{r:?}"))
        .to_string();
    conn.write_all(b"unique ").unwrap();
    b.epsv();
    let r = b.cmd(&format!("APPE {name}"));
    assert_eq!(r.code, 450, "{r:?}");
    conn.write_all(b"bytes\n").unwrap();
    drop(conn);
    assert_eq!(a.read_reply().code, 226);
    assert_eq!(fx.read(&format!("alice/{name}")), b"unique bytes\n");
    b.upload(&format!("APPE {name}"), b"more\n");
    assert_eq!(fx.read(&format!("alice/{name}")), b"unique bytes\nmore\n");
}

#[test]
fn a_client_that_half_closes_its_upload_gets_the_226_and_the_servers_end() {
    // Some clients end an upload with shutdown(SHUT_WR) and read the data
    // connection to its end before they read the 226; others read the 226
    // first. Either way the server must end the data connection on its
    // own once the upload is in, without waiting for another command: for
    // a new file and for one that replaces a file (which waits briefly to
    // tell a dead client from a live one).
    let (fx, srv) = alice_server(&[]);
    std::fs::write(fx.root.join("alice/old.bin"), b"old contents").unwrap();
    let mut f = srv.login_as("alice", "alice-pw");
    for (name, eof_first) in [("new.bin", true), ("old.bin", true), ("new2.bin", false)] {
        let data = pattern(name.len() as u64, 100_000);
        let mut conn = f.epsv_connect();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        f.expect(&format!("STOR {name}"), 150);
        conn.write_all(&data).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        if eof_first {
            conn.read_to_end(&mut rest)
                .unwrap_or_else(|e| panic!("STOR {name}: no end of the data connection: {e}"));
            assert_eq!(f.read_reply().code, 226, "STOR {name}");
        } else {
            assert_eq!(f.read_reply().code, 226, "STOR {name}");
            conn.read_to_end(&mut rest)
                .unwrap_or_else(|e| panic!("STOR {name}: no end after the 226: {e}"));
        }
        assert!(rest.is_empty(), "STOR {name}: the server sent {rest:?}");
        assert_eq!(fx.read(&format!("alice/{name}")), data, "STOR {name}");
    }
    f.expect("NOOP", 200);
}

#[test]
fn mfmt_answers_the_time_the_file_kept_and_stat_names_an_upload_received() {
    let (fx, srv) = alice_server(&[]);
    fx.write("alice/t.bin", b"t");
    let mut f = srv.login_as("alice", "alice-pw");
    // Times a filesystem may not store (ext4 keeps 1901-12-13 to
    // 2446-05-10 and clamps the rest, silently): the 213 says what MDTM
    // says afterwards, whatever the filesystem kept.
    for asked in ["99991231235959", "19000101000000", "20210304050607"] {
        let r = f.expect(&format!("MFMT {asked} t.bin"), 213);
        let said = r.lines[0]
            .strip_prefix("213 Modify=")
            .and_then(|t| t.split(';').next())
            .unwrap_or_else(|| panic!("{r:?}"))
            .to_string();
        let r = f.expect("MDTM t.bin", 213);
        assert_eq!(r.lines[0], format!("213 {said}"), "MFMT {asked}");
    }

    // STAT during an upload: the bytes received so far.
    let mut conn = f.epsv_connect();
    f.expect("STOR up.bin", 150);
    conn.write_all(&pattern(5, 100_000)).unwrap();
    let r = f.cmd("STAT");
    assert_eq!(r.code, 213, "{r:?}");
    let moved = r.progress("received").unwrap_or_else(|| panic!("{r:?}"));
    assert!(moved <= 100_000, "{moved}");
    drop(conn);
    assert_eq!(f.read_reply().code, 226);
    assert_eq!(fx.read("alice/up.bin"), pattern(5, 100_000));
}

#[test]
fn an_upload_whose_temporary_file_was_replaced_is_not_committed() {
    // While A replaces target.bin, another process swaps A's hidden
    // temporary file for a file of its own. A must not be told 226 with
    // the other bytes under the name, and that file must not land there.
    let (fx, srv) = alice_server(&[]);
    let home = fx.root.join("alice");
    let original = pattern(1, 50_000);
    fx.write("alice/target.bin", &original);
    let mut a = srv.login_as("alice", "alice-pw");
    let mut conn = a.epsv_connect();
    a.expect("STOR target.bin", 150);
    conn.write_all(&pattern(2, 100_000)).unwrap();
    let temp = || {
        std::fs::read_dir(&home)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(".ringftp-upload"))
    };
    wait_until(
        "A's temporary file",
        std::time::Duration::from_secs(30),
        || temp().is_some(),
    );
    let name = temp().unwrap();
    // No session may touch that name (a_temporary_upload_name_is_refused_
    // _to_clients); another process on the machine can.
    std::fs::remove_file(home.join(&name)).unwrap();
    std::fs::write(home.join(&name), b"FROM-B").unwrap();
    conn.write_all(b"the end").unwrap();
    drop(conn);
    let r = a.read_reply();
    assert_eq!(r.code, 451, "{r:?}");
    assert_eq!(fx.read("alice/target.bin"), original, "target.bin changed");
    a.expect("NOOP", 200);
}
