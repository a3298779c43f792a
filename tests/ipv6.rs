//! IPv6: the server on `[::1]:0`, driven by curl (EPSV, EPRT), Python's
//! ftplib (which uses EPSV/EPRT by itself on IPv6), lftp and wget; and the
//! IPv6 rules of RFC 2428 (PASV cannot carry IPv6, EPSV 1 is the wrong
//! family).

mod common;

use std::net::TcpListener;

use common::*;

fn v6_server(fx: &Fixture) -> Server {
    fx.standard_tree();
    let srv = Server::builder().listen(&["[::1]:0"]).start(fx);
    assert!(srv.addr().is_ipv6(), "listening on {}", srv.addr());
    assert_eq!(srv.url(), format!("ftp://[::1]:{}", srv.port()));
    srv
}

#[test]
fn curl_epsv_over_ipv6() {
    if !require_ipv6() {
        return;
    }
    let fx = Fixture::new();
    let srv = v6_server(&fx);
    let dest = fx.out("b.bin");
    let r = curl(&[
        "-g",
        "-v",
        "-o",
        &dest.to_string_lossy(),
        &format!("{}/dir/b.bin", srv.url()),
    ]);
    r.ok();
    assert!(r.stderr.contains("> EPSV"), "{}", r.stderr);
    assert!(r.stderr.contains("< 229"), "{}", r.stderr);
    assert_same_file(&dest, &fx.root.join("dir/b.bin"));

    // Listing over IPv6 too.
    let r = curl(&["-g", "-l", &format!("{}/dir/", srv.url())]);
    r.ok();
    let mut names: Vec<&str> = r.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["a.bin", "b.bin", "sub"]);
}

#[test]
fn curl_eprt_over_ipv6() {
    if !require_ipv6() {
        return;
    }
    let fx = Fixture::new();
    let srv = v6_server(&fx);
    for (i, port_arg) in ["::1", "-"].iter().enumerate() {
        let dest = fx.out(&format!("a{i}.bin"));
        let r = curl(&[
            "-g",
            "-v",
            "--ftp-port",
            port_arg,
            "-o",
            &dest.to_string_lossy(),
            &format!("{}/dir/a.bin", srv.url()),
        ]);
        r.ok();
        assert!(
            r.stderr.contains("> EPRT |2|::1|"),
            "-P {port_arg}: {}",
            r.stderr
        );
        assert_same_file(&dest, &fx.root.join("dir/a.bin"));
    }
}

#[test]
fn ftplib_over_ipv6() {
    if !require_ipv6() {
        return;
    }
    let fx = Fixture::new();
    let srv = v6_server(&fx);
    let out = fx.out("py");
    std::fs::create_dir_all(&out).unwrap();
    let stdout = python_scenario(
        "ftplib_client.py",
        "default",
        &[
            "::1",
            &srv.port().to_string(),
            &fx.root.to_string_lossy(),
            &out.to_string_lossy(),
        ],
    );
    assert!(stdout.contains("*cmd* 'EPSV'"), "{stdout}");
    assert!(stdout.contains("*cmd* 'EPRT |2|::1|"), "{stdout}");
    assert!(!stdout.contains("'PASV'") && !stdout.contains("'PORT "));
    // download_all saved the files in order; "active" is the EPRT one.
    for (i, f) in ["dir/b.bin", "dir/a.bin", "hello.txt", "empty"]
        .iter()
        .enumerate()
    {
        assert_same_file(&out.join(i.to_string()), &fx.root.join(f));
    }
    assert_same_file(&out.join("active"), &fx.root.join("dir/b.bin"));
}

#[test]
fn lftp_and_wget_over_ipv6() {
    if !require_ipv6() {
        return;
    }
    let fx = Fixture::new();
    let srv = v6_server(&fx);
    lftp(
        &srv.url(),
        "mirror /dir copy",
        &fx.work,
        &fx.out("lftp-home"),
    )
    .ok();
    assert_same_tree(&fx.out("copy"), &fx.root.join("dir"), &[]);
    run_client(
        60,
        "wget",
        &[
            "--no-config",
            "-nv",
            "--tries=1",
            "-O",
            "w.bin",
            &format!("{}/dir/b.bin", srv.url()),
        ],
        Some(&fx.work),
    )
    .ok();
    assert_same_file(&fx.out("w.bin"), &fx.root.join("dir/b.bin"));
}

#[test]
fn ipv6_protocol_rules() {
    if !require_ipv6() {
        return;
    }
    let fx = Fixture::new();
    let mut srv = v6_server(&fx);
    let mut f = srv.login();
    // 227 can only carry IPv4: PASV on an IPv6 control connection is
    // refused (the client should use EPSV).
    let r = f.cmd("PASV");
    assert!(
        r.code == 425 || r.code == 500 || r.code == 502 || r.code == 522,
        "PASV over IPv6: {r:?}"
    );
    // EPSV 1 asks for an IPv4 data connection: 522 names the family to use.
    let r = f.expect("EPSV 1", 522);
    assert!(r.text().contains('2'), "{r:?}");
    // EPSV 2 and plain EPSV work.
    f.expect("EPSV 2", 229);
    let got = f.retr("dir/a.bin");
    assert_bytes_eq("EPSV over IPv6", &got, &fx.read("dir/a.bin"));
    // EPRT to another address (IPv4 loopback is another host as far as
    // RFC 2577 is concerned) is refused, and nothing connects there.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    f.expect(&format!("EPRT {}", eprt_arg(l.local_addr().unwrap())), 500);
    f.expect("RETR dir/a.bin", 425);
    assert!(connection_arrives(&l, std::time::Duration::from_millis(500)).is_none());
    // PORT (IPv4 only) from an IPv6 client: refused too.
    let r = f.cmd(&format!("PORT {}", port_arg(l.local_addr().unwrap())));
    assert!(r.code >= 500, "PORT from an IPv6 client: {r:?}");
    f.expect("RETR dir/a.bin", 425);
    assert!(connection_arrives(&l, std::time::Duration::from_millis(300)).is_none());
    f.quit();
    srv.assert_serving("dir/b.bin");
}

/// An IPv4-mapped address in `--listen` or `--metrics-listen`
/// (`[::ffff:127.0.0.1]:P`, the form IPv6 tools print for an IPv4 peer)
/// is the IPv4 address. Before, `--check-config` passed it and the start
/// failed with "Invalid argument": IPv6 listeners are IPV6_V6ONLY, which
/// cannot bind a mapped address (found by a review helper).
#[test]
fn an_ipv4_mapped_listen_address_serves_on_its_ipv4_address() {
    use std::io::{Read, Write};
    const WAIT: std::time::Duration = std::time::Duration::from_secs(20);
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder()
        .listen(&["[::ffff:127.0.0.1]:0"])
        .args(&["--metrics-listen", "[::ffff:127.0.0.1]:0"])
        .start(&fx);
    assert_eq!(
        srv.addr().ip().to_string(),
        "127.0.0.1",
        "listening on {}",
        srv.addr()
    );
    let mut ftp = Ftp::connect(srv.addr());
    ftp.login();
    assert_eq!(ftp.cmd("SIZE /dir/b.bin").code, 213);

    let line = srv.stdout_line("metrics on ", WAIT);
    let metrics: std::net::SocketAddr = line["metrics on ".len()..].trim().parse().unwrap();
    assert_eq!(metrics.ip().to_string(), "127.0.0.1");
    let mut s = std::net::TcpStream::connect_timeout(&metrics, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
