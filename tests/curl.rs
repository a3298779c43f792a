//! curl against the real server: passive (EPSV, PASV), active (EPRT,
//! PORT), listings (LIST, NLST), resume (REST) and awkward names.

mod common;

use common::*;

/// Percent-encodes a path for an ftp:// URL (keeps `/`).
fn url_path(p: &str) -> String {
    let mut s = String::new();
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The names in `ls -l` style LIST output (the 9th field on, without a
/// symlink's ` -> target`).
fn list_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut rest = line.trim_end_matches('\r');
        for _ in 0..8 {
            rest = rest.trim_start();
            let end = rest
                .find(char::is_whitespace)
                .unwrap_or_else(|| panic!("short LIST line {line:?}"));
            rest = &rest[end..];
        }
        let name = rest.trim_start_matches(' ');
        let name = if line.starts_with('l') {
            name.split(" -> ").next().unwrap()
        } else {
            name
        };
        names.push(name.to_string());
    }
    names.sort();
    names
}

/// Downloads `path` with curl and extra flags into work/`out`, asserts it
/// equals the served file, and returns curl's verbose log.
fn download(fx: &Fixture, srv: &Server, path: &str, flags: &[&str], out: &str) -> String {
    let url = format!("{}/{}", srv.url(), url_path(path));
    curl_download(Place::Here, &url, flags, &fx.out(out), &fx.root.join(path)).stderr
}

#[test]
fn epsv_download_is_byte_exact() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    let log = download(&fx, &srv, "dir/b.bin", &[], "b.bin");
    assert!(log.contains("> EPSV"), "curl did not use EPSV:\n{log}");
    assert!(log.contains("< 229"), "no 229 reply:\n{log}");
    download(&fx, &srv, "empty", &[], "empty");
    download(&fx, &srv, "hello.txt", &[], "hello.txt");
}

#[test]
fn pasv_download_with_disable_epsv() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    let log = download(&fx, &srv, "dir/b.bin", &["--disable-epsv"], "b.bin");
    assert!(log.contains("> PASV"), "curl did not use PASV:\n{log}");
    assert!(log.contains("< 227"), "no 227 reply:\n{log}");
    assert!(!log.contains("> EPSV"), "EPSV used despite --disable-epsv");
    // The announced address is the control connection's local address.
    assert!(
        log.contains("127,0,0,1,"),
        "227 does not announce 127.0.0.1:\n{log}"
    );
}

#[test]
fn active_eprt_download() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    let log = download(
        &fx,
        &srv,
        "dir/b.bin",
        &["--ftp-port", "127.0.0.1"],
        "b.bin",
    );
    assert!(
        log.contains("> EPRT |1|127.0.0.1|"),
        "curl did not use EPRT:\n{log}"
    );
    assert!(!log.contains("> EPSV") && !log.contains("> PASV"));
}

#[test]
fn active_port_download() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    // `-P -`: the control connection's own address; --disable-eprt: PORT.
    let log = download(
        &fx,
        &srv,
        "dir/a.bin",
        &["-P", "-", "--disable-eprt"],
        "a.bin",
    );
    assert!(
        log.contains("> PORT 127,0,0,1,"),
        "curl did not use PORT:\n{log}"
    );
    let log = download(&fx, &srv, "hello.txt", &["-P", "-"], "hello.txt");
    assert!(
        log.contains("> EPRT") || log.contains("> PORT"),
        "curl -P - did not go active:\n{log}"
    );
}

#[test]
fn list_directory() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    let r = curl(&[&format!("{}/dir/", srv.url())]);
    r.ok();
    assert_eq!(
        list_names(&r.stdout),
        ["a.bin", "b.bin", "sub"],
        "{}",
        r.stdout
    );
    for line in r.stdout.lines() {
        let size: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
        if line.ends_with("a.bin") {
            assert!(line.starts_with("-r"), "{line}");
            assert_eq!(size, 100 * 1024, "{line}");
        }
        if line.ends_with(" b.bin") {
            assert_eq!(size, (1 << 20) + 3, "{line}");
        }
        if line.ends_with(" sub") {
            assert!(line.starts_with('d'), "{line}");
        }
    }

    let r = curl(&[&format!("{}/", srv.url())]);
    r.ok();
    assert_eq!(list_names(&r.stdout), STANDARD_TOP, "{}", r.stdout);
    let link = r.stdout.lines().find(|l| l.contains("link-to-a")).unwrap();
    assert!(
        link.starts_with('l') && link.ends_with("link-to-a -> dir/a.bin"),
        "{link}"
    );
}

#[test]
fn nlst_with_list_only() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    let r = curl(&["-v", "-l", &format!("{}/dir/", srv.url())]);
    r.ok();
    assert!(r.stderr.contains("> NLST"), "{}", r.stderr);
    let mut names: Vec<&str> = r.stdout.lines().map(|l| l.trim_end_matches('\r')).collect();
    names.sort();
    assert_eq!(names, ["a.bin", "b.bin", "sub"]);
}

#[test]
fn resume_partial_download() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    let full = fx.read("dir/b.bin");
    let dest = fx.out("partial.bin");
    let cut = 300_001;
    std::fs::write(&dest, &full[..cut]).unwrap();
    let dest_s = dest.to_string_lossy().into_owned();
    let r = curl(&[
        "-v",
        "-C",
        "-",
        "-o",
        &dest_s,
        &format!("{}/dir/b.bin", srv.url()),
    ]);
    r.ok();
    assert!(
        r.stderr.contains(&format!("> REST {cut}")),
        "curl did not resume with REST {cut}:\n{}",
        r.stderr
    );
    assert_same_file(&dest, &fx.root.join("dir/b.bin"));

    // The same with a partial file whose bytes curl must not re-fetch:
    // garbage in the kept prefix stays, proving only the tail was sent.
    let mut marked = full[..cut].to_vec();
    marked[0] ^= 0xff;
    std::fs::write(&dest, &marked).unwrap();
    curl(&[
        "-C",
        "-",
        "-o",
        &dest_s,
        &format!("{}/dir/b.bin", srv.url()),
    ])
    .ok();
    let got = std::fs::read(&dest).unwrap();
    let mut want = full.clone();
    want[0] ^= 0xff;
    assert_bytes_eq("resumed tail", &got, &want);
}

#[test]
fn names_with_spaces_utf8_and_symlink() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    download(&fx, &srv, "with space.txt", &[], "space.txt");
    download(
        &fx,
        &srv,
        "h\u{e9}llo w\u{f6}rld.txt",
        &[],
        "hello-world.txt",
    );
    download(&fx, &srv, "\u{65e5}\u{672c}.txt", &[], "nihon.txt");
    download(&fx, &srv, "link-to-a", &[], "link.bin");
    download(
        &fx,
        &srv,
        "dir/sub/deeper/c.txt",
        &["--disable-epsv"],
        "c.txt",
    );
}

#[test]
fn missing_file_fails_with_550() {
    let fx = Fixture::new();
    fx.standard_tree();
    let mut srv = Server::builder().start(&fx);
    let dest = fx.out("nothing");
    let r = curl(&[
        "-v",
        "-o",
        &dest.to_string_lossy(),
        &format!("{}/no-such-file", srv.url()),
    ]);
    r.fails();
    assert!(r.stderr.contains("< 550"), "{}", r.stderr);
    assert!(!dest.exists(), "curl wrote a file for a failed download");
    srv.assert_serving("hello.txt");
}
