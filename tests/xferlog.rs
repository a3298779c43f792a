//! `--xferlog FILE`: one wu-ftpd xferlog(5) line per transfer, whose fields
//! a name with a space or a tab cannot break; logrotate's move-then-SIGHUP
//! lands the next lines in a new file on every shard; a path that cannot
//! be opened stops start-up; `--xferlog-utc` and `--xferlog-real-path`.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Fields of an xferlog line split on blanks: 5 for the time, 13 others.
const FIELDS: usize = 18;

/// The lines of an xferlog, each checked to split into [`FIELDS`] fields.
fn checked_lines(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            let f: Vec<String> = l.split_ascii_whitespace().map(str::to_string).collect();
            assert_eq!(f.len(), FIELDS, "{}: {l:?}", path.display());
            f
        })
        .collect()
}

/// Index of the file name among the fields.
const NAME: usize = 8;

#[test]
fn names_with_blanks_keep_the_fields_and_sighup_rotates_on_every_shard() {
    let fx = Fixture::new();
    fx.write("a b.txt", b"space\n");
    fx.write("tab\there.txt", b"tab\n");
    let dir = fx.work.join("log");
    std::fs::create_dir(&dir).unwrap();
    let log = dir.join("xferlog");
    let srv = Server::builder()
        .cores(2)
        .arg("--xferlog")
        .arg(log.to_string_lossy().into_owned())
        .start(&fx);
    let mut f = srv.login();
    assert_eq!(f.retr("a b.txt"), b"space\n");
    assert_eq!(f.retr("tab\there.txt"), b"tab\n");
    f.quit();
    // The line is written before the 226, so it is there now.
    let first = checked_lines(&log);
    let names: Vec<&str> = first.iter().map(|l| l[NAME].as_str()).collect();
    assert_eq!(names, ["/a_b.txt", "/tab_here.txt"]);
    for l in &first {
        assert_eq!(
            &l[9..],
            ["b", "_", "o", "a", "anonymous@", "ftp", "0", "*", "c"]
        );
        assert_eq!(l[7], if l[NAME] == "/a_b.txt" { "6" } else { "4" });
    }

    // A SIGHUP for another reason (a users-file reload) while the path
    // still names the open file: nothing to reopen, and no error, even
    // though root created the file before the drop to the service user.
    srv.signal(libc::SIGHUP);
    srv.wait_log("SIGHUP: configuration reloaded", 1, Duration::from_secs(20));
    let text = srv.log_text();
    assert!(
        !text.contains("still writing to the old file") && !text.contains("ERROR"),
        "{text}"
    );

    // logrotate: move the file away, then SIGHUP.
    let rotated = dir.join("xferlog.1");
    std::fs::rename(&log, &rotated).unwrap();
    srv.signal(libc::SIGHUP);
    srv.wait_log("reopened", 1, Duration::from_secs(20));
    // Transfers on both shards now go to the new file: sessions until
    // each shard has served at least two (SO_REUSEPORT picks the shard).
    let mut shards = Vec::new();
    let mut after = 0;
    while shards.iter().filter(|&&s| s == 0).count() < 2
        || shards.iter().filter(|&&s| s == 1).count() < 2
    {
        assert!(
            after < 200,
            "200 sessions did not reach both shards twice: {shards:?}"
        );
        let mut g = srv.login();
        shards.push(g.stat_counters().shard);
        assert_eq!(g.retr("a b.txt"), b"space\n");
        g.quit();
        after += 1;
    }
    assert_eq!(checked_lines(&rotated), first, "the rotated file changed");
    let new = checked_lines(&log);
    assert_eq!(
        new.len(),
        after,
        "shards {:?}",
        shards.iter().collect::<BTreeSet<_>>()
    );
    assert!(new.iter().all(|l| l[NAME] == "/a_b.txt"));
}

#[test]
fn an_xferlog_that_cannot_be_opened_stops_start_up() {
    let fx = Fixture::new();
    let bad = fx.work.join("no/such/dir/xferlog");
    let r = Server::builder()
        .arg("--xferlog")
        .arg(bad.to_string_lossy().into_owned())
        .start_fails(&fx);
    assert!(
        r.stderr.contains("--xferlog") && r.stderr.contains("no/such/dir/xferlog"),
        "{}",
        r.stderr
    );
}

/// Parses an xferlog time (`Mon Nov 30 13:58:11 2026`) as UTC Unix seconds.
fn unix_of(fields: &[String]) -> i64 {
    let text = fields[..5].join(" ");
    jiff::civil::DateTime::strptime("%a %b %e %H:%M:%S %Y", &text)
        .and_then(|t| jiff::tz::TimeZone::UTC.to_timestamp(t))
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .as_second()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn times_are_local_by_default() {
    // A zone with no daylight saving time, read from the zone files as
    // any named zone is (the sandbox closes them once the server runs).
    let zone = "Asia/Kolkata";
    assert!(
        Path::new("/usr/share/zoneinfo").join(zone).exists(),
        "this test needs the tz database (tzdata)"
    );
    let fx = Fixture::new();
    fx.write("x.bin", b"12345");
    let log = fx.work.join("xferlog");
    let srv = Server::builder()
        .env("TZ", zone)
        .arg("--xferlog")
        .arg(log.to_string_lossy().into_owned())
        .start(&fx);
    let t0 = now();
    let mut f = srv.login();
    assert_eq!(f.retr("x.bin"), b"12345");
    f.quit();
    let t1 = now();
    let got = checked_lines(&log);
    assert_eq!(got.len(), 1, "{got:?}");
    // +05:30: the line shows UTC plus 19,800 s.
    let shown = unix_of(&got[0]) - 19_800;
    assert!(
        (t0..=t1).contains(&shown),
        "{shown} not in {t0}..={t1}: {:?}",
        got[0]
    );
    srv.wait_log("times in Asia/Kolkata", 1, Duration::from_secs(20));
}

#[test]
fn utc_times_and_real_paths_on_request() {
    let fx = Fixture::new();
    let users = fx.users_file(
        "users.toml",
        &[Account::new("alice", &["list", "read", "write"])],
    );
    fx.write("alice/in/x.bin", b"12345");
    let log = fx.work.join("xferlog");
    let srv = Server::builder()
        .users(&users)
        .args(&["--xferlog-utc", "--xferlog-real-path", "--xferlog"])
        .arg(log.to_string_lossy().into_owned())
        .start(&fx);
    let t0 = now();
    let mut f = srv.login_as("alice", "alice-pw");
    assert_eq!(f.retr("in/x.bin"), b"12345");
    f.stor("in/y z.bin", b"abc");
    f.quit();
    let t1 = now();
    let got = checked_lines(&log);
    assert_eq!(got.len(), 2, "{got:?}");
    let root = std::fs::canonicalize(&fx.root).unwrap();
    let real = |name: &str| format!("{}/alice/in/{name}", root.display());
    assert_eq!(got[0][NAME], real("x.bin"));
    assert_eq!(got[1][NAME], real("y_z.bin"));
    assert_eq!(&got[0][11..14], ["o", "r", "alice"]);
    assert_eq!(&got[1][11..14], ["i", "r", "alice"]);
    for l in &got {
        let t = unix_of(l);
        assert!((t0..=t1).contains(&t), "{t} not in {t0}..={t1}: {l:?}");
    }
}

/// A line written on a full filesystem may land in part (tmpfs fills the
/// file's last page, then says ENOSPC). That counts as a failed write, and
/// the next line starts on a line of its own: the part line stands alone,
/// and every whole line keeps its 18 fields.
#[test]
fn a_short_write_on_a_full_disk_tears_no_later_line() {
    let fx = Fixture::new();
    fx.write("f.txt", b"hello\n");
    let mnt = fx.work.join("logfs");
    let Some(_tmpfs) = Tmpfs::mount(&mnt, "64k") else {
        return;
    };
    let log = mnt.join("xferlog");
    let srv = Server::builder()
        .arg("--xferlog")
        .arg(log.to_string_lossy())
        .start(&fx);
    let mut f = srv.login();
    assert_eq!(f.retr("f.txt"), b"hello\n");
    let one = std::fs::read(&log).unwrap();
    // Pad the log (by hand, as another writer could) to end 10 bytes
    // before a page boundary, then fill the filesystem: the next line
    // gets only those 10 bytes.
    let pad = 4096 - (one.len() + 10) % 4096;
    let mut text = one.clone();
    text.extend(std::iter::repeat_n(b'#', pad - 1));
    text.push(b'\n');
    std::fs::write(&log, &text).unwrap();
    let filler = mnt.join("filler");
    let mut fill = std::fs::File::create(&filler).unwrap();
    while fill.write_all(&[0; 4096]).is_ok() {}
    drop(fill);
    assert_eq!(f.retr("f.txt"), b"hello\n");
    let torn = std::fs::read(&log).unwrap();
    assert_eq!(torn.len(), text.len() + 10, "the write landed in part");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(f.retr("f.txt"), b"hello\n");
    f.quit();
    let all = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 4, "{all}");
    assert_eq!(lines[2].len(), 10, "the part line: {all}");
    let last: Vec<&str> = lines[3].split_ascii_whitespace().collect();
    assert_eq!(last.len(), FIELDS, "{:?}", lines[3]);
    assert_eq!(last[NAME], "/f.txt");
    srv.wait_log("short write", 1, Duration::from_secs(10));
}
