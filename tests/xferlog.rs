//! `--xferlog FILE`: one wu-ftpd xferlog(5) line per transfer.

mod common;

use std::io::Read;

use common::*;

/// The fields of each line of the log.
fn lines(path: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Checks one xferlog line: current-time (5 fields) transfer-time
/// remote-host file-size filename transfer-type special-action direction
/// access-mode username service-name authentication-method
/// authenticated-user-id completion-status.
#[track_caller]
fn check_line(f: &[String], size: u64, path: &str, kind: &str, status: &str) {
    assert_eq!(f.len(), 18, "xferlog line has {} fields: {f:?}", f.len());
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert!(days.contains(&f[0].as_str()), "weekday {f:?}");
    assert!(months.contains(&f[1].as_str()), "month {f:?}");
    let day: u32 = f[2].parse().unwrap();
    assert!((1..=31).contains(&day), "{f:?}");
    let hms: Vec<u32> = f[3].split(':').map(|x| x.parse().unwrap()).collect();
    assert!(
        hms.len() == 3 && hms[0] < 24 && hms[1] < 60 && hms[2] < 61,
        "{f:?}"
    );
    let year: i32 = f[4].parse().unwrap();
    let now_year = run_client(10, "date", &["-u", "+%Y"], None)
        .stdout
        .trim()
        .parse::<i32>()
        .unwrap();
    assert!((year - now_year).abs() <= 1, "year {year} in {f:?}");
    let _secs: u64 = f[5].parse().expect("transfer-time");
    assert_eq!(f[6], "127.0.0.1", "remote-host");
    assert_eq!(f[7], size.to_string(), "file-size in {f:?}");
    assert_eq!(f[8], path, "filename");
    assert_eq!(f[9], kind, "transfer-type");
    assert_eq!(f[10], "_", "special-action");
    assert_eq!(f[11], "o", "direction");
    assert_eq!(f[12], "a", "access-mode");
    assert_eq!(f[13], "anonymous@", "username (anonymous: the @ form)");
    assert_eq!(f[14], "ftp", "service-name");
    assert_eq!(f[15], "0", "authentication-method");
    assert_eq!(f[16], "*", "authenticated-user-id");
    assert_eq!(f[17], status, "completion-status");
}

#[test]
fn one_line_per_download() {
    let fx = Fixture::new();
    fx.standard_tree();
    let log = fx.out("xferlog");
    let srv = Server::builder()
        .arg("--xferlog")
        .arg(log.to_string_lossy())
        .start(&fx);

    // A curl download.
    let dest = fx.out("b.bin");
    curl(&[
        "-o",
        &dest.to_string_lossy(),
        &format!("{}/dir/b.bin", srv.url()),
    ])
    .ok();
    assert_same_file(&dest, &fx.root.join("dir/b.bin"));
    let l = lines(&log);
    assert_eq!(l.len(), 1, "after one download: {l:?}");
    check_line(&l[0], (1 << 20) + 3, "/dir/b.bin", "b", "c");

    // Listings are not transfers of files: no line.
    let mut f = srv.login();
    f.listing("LIST");
    f.listing("NLST dir");
    assert_eq!(lines(&log).len(), 1);

    // TYPE A: transfer-type a; spaces in the name become `_`.
    f.expect("TYPE A", 200);
    let got = f.retr("with space.txt");
    assert_eq!(got, b"a name with spaces\r\n");
    let l = lines(&log);
    assert_eq!(l.len(), 2, "{l:?}");
    check_line(&l[1], 19, "/with_space.txt", "a", "c");
    f.expect("TYPE I", 200);

    // REST: the bytes actually sent.
    let got = f.retr_from("dir/a.bin", 102_400 - 1000);
    assert_eq!(got.len(), 1000);
    let l = lines(&log);
    assert_eq!(l.len(), 3, "{l:?}");
    check_line(&l[2], 1000, "/dir/a.bin", "b", "c");
    f.quit();
}

#[test]
fn incomplete_transfer_is_marked_i() {
    let fx = Fixture::new();
    fx.write("big.bin", &pattern(5, 32 << 20));
    let log = fx.out("xferlog");
    let srv = Server::builder()
        .arg("--xferlog")
        .arg(log.to_string_lossy())
        .start(&fx);
    let mut f = srv.login();
    let mut data = f.epsv_connect();
    f.expect("RETR big.bin", 150);
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    while n < (1 << 20) {
        n += data.read(&mut buf).unwrap();
    }
    drop(data);
    assert_eq!(f.read_reply().code, 426);
    let l = lines(&log);
    assert_eq!(l.len(), 1, "{l:?}");
    let sent: u64 = l[0][7].parse().unwrap();
    // The server counts whole splice chunks, so the logged size may lag
    // what the client got by part of a chunk; it is never 0 here (a full
    // MiB arrived) nor the whole file.
    assert!(
        ((1 << 20)..(32 << 20)).contains(&sent),
        "incomplete transfer logged {sent} bytes (client read {n})"
    );
    check_line(&l[0], sent, "/big.bin", "b", "i");
}
