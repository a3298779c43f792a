//! Uploads that go wrong: a client killed mid-upload, a data connection
//! reset, ABOR, a failed overwrite or APPE, a full disk (a small tmpfs
//! mounted as the root), and concurrent or observed uploads with
//! --atomic-uploads. The rule under test: nothing already on disk is ever
//! truncated or lost, a broken new file is deleted (or kept with
//! --keep-partial, and then resumable to the exact file), and the server
//! keeps serving everyone else.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;

fn alice_fixture() -> (Fixture, PathBuf) {
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.write("pub/dl.bin", &pattern(99, 3 << 20));
    (fx, users)
}

fn start(fx: &Fixture, users: &Path, extra: &[&str]) -> Server {
    Server::builder()
        .users(users)
        .ports(20)
        .args(extra)
        .start(fx)
}

/// [`start`], with `--atomic-uploads` when `atomic`.
fn start_atomic(fx: &Fixture, users: &Path, atomic: bool) -> Server {
    start(fx, users, if atomic { &["--atomic-uploads"] } else { &[] })
}

/// Hidden temporary upload files left in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with(".ringftp-upload"))
        .collect()
}

/// The size of the largest file in `dir` whose name starts with `prefix`
/// (0 if none).
fn size_of_prefixed(dir: &Path, prefix: &str) -> u64 {
    names_in(dir)
        .iter()
        .filter(|n| n.starts_with(prefix))
        .filter_map(|n| std::fs::metadata(dir.join(n)).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// How long the tests wait for an upload to get somewhere (a bound on a
/// hang, not a measurement).
const WAIT: Duration = Duration::from_secs(20);

/// Starts curl uploading `local` to `url` at `rate` (killed on drop).
struct Curl(Child);

impl Curl {
    fn upload(local: &Path, url: &str, rate: &str, extra: &[&str]) -> Curl {
        let mut cmd = Command::new("curl");
        cmd.args(["-q", "-sS", "--noproxy", "*", "--limit-rate", rate])
            .args(extra)
            .arg("-T")
            .arg(local)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        Curl(cmd.spawn().expect("curl"))
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How many uploads the server has logged as ended (complete or not).
fn uploads_ended(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            [
                "STOR complete",
                "STOR incomplete",
                "APPE complete",
                "APPE incomplete",
            ]
            .iter()
            .any(|m| l.contains(m))
        })
        .count()
}

/// Waits for the server to log the end of the `n`-th upload transfer.
fn wait_upload_logged(srv: &Server, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = srv.log_text();
        if uploads_ended(&log) >= n {
            // The cleanup runs right after the log line.
            std::thread::sleep(Duration::from_millis(100));
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "the server logged no end of upload {n}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// STOR-like `line` over EPSV; sends `data` and returns the session and
/// the still open data connection.
fn start_upload(srv: &Server, line: &str, data: &[u8]) -> (Ftp, TcpStream) {
    let mut f = srv.login_as("alice", "alice-pw");
    let mut conn = f.epsv_connect();
    f.expect(line, 150);
    conn.write_all(data).unwrap();
    (f, conn)
}

// ------------------------------------------------------------ killed clients

/// The rule for a client that goes away mid-upload: in stream mode the
/// end of the data connection is the end of the file, so an upload whose
/// client has closed its control connection before the data connection
/// ends is broken — the new file deleted (kept with --keep-partial), an
/// overwritten file and an appended one left as they were. The order is
/// made certain here: the control connection is half-closed and the
/// server's close of it awaited before the data connection ends.
#[test]
fn upload_whose_client_left_first_is_broken() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let original = pattern(3, 1 << 20);
    for keep in [false, true] {
        let srv = start(&fx, &users, if keep { &["--keep-partial"] } else { &[] });
        for (line, name) in [
            ("STOR new.bin", "new.bin"),
            ("STOR file.bin", "file.bin"),
            ("APPE file.bin", "file.bin"),
        ] {
            let _ = std::fs::remove_file(home.join("new.bin"));
            fx.write("alice/file.bin", &original);
            let ended = uploads_ended(&srv.log_text());
            let (f, mut conn) = start_upload(&srv, line, &pattern(4, 300_000));
            wait_until("the bytes to arrive", WAIT, || {
                size_of_prefixed(&home, ".ringftp-upload") >= 300_000
                    || size_of_prefixed(&home, "new.bin") >= 300_000
                    || std::fs::metadata(home.join("file.bin")).unwrap().len()
                        >= (1 << 20) + 300_000
            });
            // The client leaves: control first, and the server has seen
            // it (it closes the session) before the data connection ends.
            f.socket().shutdown(std::net::Shutdown::Write).unwrap();
            let mut control = f.socket().try_clone().unwrap();
            assert_eq!(read_all_lenient(&mut control), b"", "{line}");
            conn.flush().unwrap();
            drop(conn);
            wait_upload_logged(&srv, ended + 1);
            let what = format!("{line}, keep-partial {keep}");
            match (name, keep) {
                ("new.bin", false) => assert!(!home.join("new.bin").exists(), "{what}"),
                ("new.bin", true) => {
                    let got = fx.read("alice/new.bin");
                    assert!(!got.is_empty(), "{what}");
                    assert_bytes_eq(&what, &got, &pattern(4, 300_000)[..got.len()]);
                }
                // An APPE with --keep-partial keeps what it added (the
                // client resumes with APPE); an overwrite leaves what
                // arrived in place of the original (the client resumes it
                // with SIZE and REST); without it the original stays.
                _ if line.starts_with("APPE") && keep => {
                    let got = fx.read("alice/file.bin");
                    assert_bytes_eq(&what, &got[..original.len()], &original);
                }
                (_, true) => {
                    let got = fx.read("alice/file.bin");
                    assert!(!got.is_empty(), "{what}");
                    assert_bytes_eq(&what, &got, &pattern(4, 300_000)[..got.len()]);
                }
                _ => assert_bytes_eq(&what, &fx.read("alice/file.bin"), &original),
            }
            assert!(
                temp_files(&home).is_empty(),
                "{what}: {:?}",
                temp_files(&home)
            );
        }
        let mut srv = srv;
        srv.assert_serving("pub/dl.bin");
    }
}

/// The other side of the rule: a client that ends the data connection and
/// waits gets its 226 at once and its file in place — no wait on the path
/// of every upload.
#[test]
fn finished_upload_is_committed_before_its_226() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let srv = start(&fx, &users, &[]);
    let mut f = srv.login_as("alice", "alice-pw");
    for i in 0..20 {
        let data = pattern(100 + i, 1024);
        let name = format!("small{i}.bin");
        let mut conn = f.epsv_connect();
        f.expect(&format!("STOR {name}"), 150);
        conn.write_all(&data).unwrap();
        drop(conn);
        assert_eq!(f.read_reply().code, 226, "{name}");
        // In place when the 226 is read.
        assert_bytes_eq(&name, &std::fs::read(home.join(&name)).unwrap(), &data);
    }
    f.quit();
}

/// TCP urgent data on an upload's data connection (a client that sends a
/// byte with MSG_OOB): every byte still lands in the file, in order, and
/// the upload ends with 226 when the client closes — not a file cut at
/// the urgent mark, nor a shard spinning on a socket that polls readable
/// while a splice moves nothing. Urgent bytes at the start, in the middle,
/// twice in a row and last.
#[test]
fn urgent_bytes_on_an_upload_land_in_the_file() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let srv = start(&fx, &users, &[]);
    let mut f = srv.login_as("alice", "alice-pw");
    // TYPE I splices, TYPE A reads into a buffer: both keep the byte.
    for ty in ["I", "A"] {
        f.expect(&format!("TYPE {ty}"), 200);
        let plans: [&[&[u8]]; 4] = [
            &[b"!", b"after the first byte"],
            &[&[b'A'; 1000], b"!", &[b'B'; 1000]],
            &[b"one", b"!", b"?", b"two"],
            &[&[b'C'; 5000], b"!"],
        ];
        for (i, plan) in plans.iter().enumerate() {
            let name = format!("urgent{i}-{ty}.bin");
            let mut conn = f.epsv_connect();
            f.expect(&format!("STOR {name}"), 150);
            let mut want = Vec::new();
            for (k, part) in plan.iter().enumerate() {
                if part.len() == 1 && (part[0] == b'!' || part[0] == b'?') {
                    send_urgent(&conn, part);
                } else {
                    conn.write_all(part).unwrap();
                }
                want.extend_from_slice(part);
                if k + 1 < plan.len() {
                    // Separate segments, so the mark sits between them.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            drop(conn);
            let r = f.read_reply();
            assert_eq!(r.code, 226, "{name}: {r:?}");
            assert_bytes_eq(&name, &std::fs::read(home.join(&name)).unwrap(), &want);
        }
    }
    f.expect("NOOP", 200);
    f.quit();
}

/// An overwrite whose client sends its next command right after closing
/// the data connection (without waiting for the 226) is committed: the
/// server's wait for a sign of a dead client ends at once when the control
/// connection has something to read, and a command is not a close.
#[test]
fn overwrite_followed_at_once_by_a_command_is_committed() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    fx.write("alice/old.bin", &pattern(5, 50_000));
    let srv = start(&fx, &users, &[]);
    let mut f = srv.login_as("alice", "alice-pw");
    for i in 0..5u64 {
        let data = pattern(40 + i, 20_000 + i as usize);
        let mut conn = f.epsv_connect();
        f.expect("STOR old.bin", 150);
        conn.write_all(&data).unwrap();
        drop(conn);
        f.send_raw(b"NOOP\r\n");
        let r = f.read_reply();
        assert_eq!(r.code, 226, "round {i}: {r:?}");
        assert_eq!(f.read_reply().code, 200, "round {i}");
        assert_bytes_eq(
            "old.bin",
            &std::fs::read(home.join("old.bin")).unwrap(),
            &data,
        );
    }
    assert!(temp_files(&home).is_empty(), "{:?}", temp_files(&home));
    f.quit();
}

#[test]
fn killed_curl_upload_is_kept_with_keep_partial_and_resumes() {
    let (fx, users) = alice_fixture();
    let srv = start(&fx, &users, &["--keep-partial"]);
    let data = pattern(2, 32 << 20);
    let local = write(&fx.work, "big.bin", &data);
    let home = fx.root.join("alice");
    kill_curl_midway(&srv, &local, "big.bin", &[], || {
        size_of_prefixed(&home, "big.bin") >= 1 << 20
    });
    let part = std::fs::read(home.join("big.bin")).expect("--keep-partial keeps the file");
    assert!(part.len() < data.len(), "{} bytes", part.len());
    assert_bytes_eq("the kept partial", &part, &data[..part.len()]);
    // curl -C - resumes it (SIZE, then APPE from there).
    curl_resume(&srv, &local, "big.bin");
    assert_same_file(&home.join("big.bin"), &local);

    // Again, resumed with SIZE, REST + STOR.
    kill_curl_midway(&srv, &local, "again.bin", &[], || {
        size_of_prefixed(&home, "again.bin") >= 1 << 20
    });
    let mut f = srv.login_as("alice", "alice-pw");
    let r = f.expect("SIZE again.bin", 213);
    let have: usize = r.lines[0][4..].parse().unwrap();
    assert!(have > 0 && have < data.len(), "{have}");
    assert_bytes_eq(
        "the kept partial",
        &fx.read("alice/again.bin"),
        &data[..have],
    );
    let mut conn = f.epsv_connect();
    f.expect(&format!("REST {have}"), 350);
    f.expect("STOR again.bin", 150);
    conn.write_all(&data[have..]).unwrap();
    drop(conn);
    assert_eq!(f.read_reply().code, 226);
    assert_same_file(&home.join("again.bin"), &local);
    f.quit();

    // An overwrite that breaks: what arrived replaces the old file, so
    // curl's resume (SIZE, then APPE) ends with the new file exactly, not
    // the old file's head and the new file's tail.
    fx.write("alice/over.bin", &pattern(9, 3 << 20));
    kill_curl_midway(&srv, &local, "over.bin", &[], || {
        size_of_prefixed(&home, ".ringftp-upload") >= 1 << 20
    });
    let part = fx.read("alice/over.bin");
    assert!(part.len() < data.len(), "{} bytes", part.len());
    assert_bytes_eq("the kept partial overwrite", &part, &data[..part.len()]);
    curl_resume(&srv, &local, "over.bin");
    assert_same_file(&home.join("over.bin"), &local);
}

fn curl_resume(srv: &Server, local: &Path, name: &str) {
    curl(&[
        "-C",
        "-",
        "-T",
        &local.to_string_lossy(),
        &format!("ftp://alice:alice-pw@{}/{name}", srv.addr()),
    ])
    .ok();
}

#[test]
fn reset_data_connection_deletes_or_keeps_the_partial() {
    let (fx, users) = alice_fixture();
    let srv = start(&fx, &users, &[]);
    upload_scenario(&fx, &srv, "broken", None);
    drop(srv);
    let srv = start(&fx, &users, &["--keep-partial"]);
    let out = upload_scenario(&fx, &srv, "broken", Some("keep"));
    assert!(out.contains("resumed broken.bin at"), "{out}");
}

#[test]
fn abor_mid_upload_answers_426_then_226() {
    let (fx, users) = alice_fixture();
    let srv = start(&fx, &users, &[]);
    upload_scenario(&fx, &srv, "abort", None);
    drop(srv);
    let srv = start(&fx, &users, &["--keep-partial"]);
    let out = upload_scenario(&fx, &srv, "abort", Some("keep"));
    assert!(out.contains("resumed aborted.bin at"), "{out}");
    let mut srv = srv;
    srv.assert_serving("pub/dl.bin");
}

// ------------------------------------------------------------ nothing lost

#[test]
fn reset_overwrite_or_appe_keeps_the_original() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let original = pattern(3, 5 << 20);
    fx.write("alice/file.bin", &original);
    let log0 = pattern(6, 1 << 20);
    fx.write("alice/log.bin", &log0);
    for keep in [false, true] {
        let srv = start(&fx, &users, if keep { &["--keep-partial"] } else { &[] });
        // 300 kB of a new file.bin, then the data connection is reset.
        let (mut f, conn) = start_upload(&srv, "STOR file.bin", &pattern(4, 300_000));
        wait_until("the temporary file to fill", WAIT, || {
            size_of_prefixed(&home, ".ringftp-upload") >= 200_000
        });
        assert_bytes_eq("during the upload", &fx.read("alice/file.bin"), &original);
        reset(conn);
        let r = f.read_reply();
        assert_eq!(r.code, 426, "{r:?}");
        let what = format!("file.bin after a reset overwrite (keep-partial {keep})");
        if keep {
            // What arrived replaces the original, so a resume continues it.
            let got = fx.read("alice/file.bin");
            assert!(!got.is_empty(), "{what}");
            assert_bytes_eq(&what, &got, &pattern(4, 300_000)[..got.len()]);
            fx.write("alice/file.bin", &original);
        } else {
            assert_bytes_eq(&what, &fx.read("alice/file.bin"), &original);
        }
        assert!(temp_files(&home).is_empty(), "{:?}", temp_files(&home));
        f.quit();
        if keep {
            // --keep-partial keeps what an APPE added (resumable by APPE).
            continue;
        }
        let (mut f, conn) = start_upload(&srv, "APPE log.bin", &pattern(7, 500_000));
        wait_until("the appended bytes", WAIT, || {
            std::fs::metadata(home.join("log.bin")).unwrap().len() >= (1 << 20) + 400_000
        });
        reset(conn);
        let r = f.read_reply();
        assert_eq!(r.code, 426, "{r:?}");
        assert_bytes_eq(
            "log.bin after a failed APPE",
            &fx.read("alice/log.bin"),
            &log0,
        );
        f.quit();
    }
}

/// Kills curl mid-way through `-T local` to `name` (extra curl flags:
/// `extra`) once `progress` says enough arrived; waits for the server to
/// finish with the upload and returns its log lines about it.
fn kill_curl_midway(
    srv: &Server,
    local: &Path,
    name: &str,
    extra: &[&str],
    mut progress: impl FnMut() -> bool,
) -> Vec<String> {
    let before = srv.log_text();
    let ended = uploads_ended(&before);
    let url = format!("ftp://alice:alice-pw@{}/{name}", srv.addr());
    let mut curl = Curl::upload(local, &url, "2M", extra);
    wait_until("the upload to progress", WAIT, &mut progress);
    curl.kill();
    let log = wait_upload_logged(srv, ended + 1);
    log[before.len()..]
        .lines()
        .filter(|l| l.contains("STOR") || l.contains("APPE"))
        .map(|l| l.split_once("}: ").map(|x| x.1).unwrap_or(l).to_string())
        .collect()
}

#[test]
fn abor_or_reset_mid_appe_restores_the_original_length() {
    // ABOR, or a reset data connection, while a fast sender keeps the
    // splice pipeline busy: the cut back to the original length must not
    // race with a write still in flight.
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let original = pattern(40, 1 << 20);
    let srv = start(&fx, &users, &[]);
    let more = Arc::new(pattern(41, 64 << 20));
    let mut wrong = Vec::new();
    // The race is hit in about one ABOR round in four here: 8 of them.
    for round in 0..12 {
        let how = if round % 3 == 2 { "reset" } else { "ABOR" };
        fx.write("alice/log.bin", &original);
        let (mut f, conn) = start_upload(&srv, "APPE log.bin", &[]);
        let sender = {
            let more = more.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                if how == "reset" {
                    // 8 MiB as fast as possible, then RST.
                    let _ = conn.write_all(&more[..8 << 20]);
                    reset(conn);
                } else {
                    let _ = conn.write_all(&more);
                }
            })
        };
        if how == "ABOR" {
            wait_until("the appended bytes", WAIT, || {
                std::fs::metadata(home.join("log.bin")).unwrap().len() >= (3 << 20)
            });
            let r = f.cmd("ABOR");
            assert_eq!(r.code, 426, "round {round}: {r:?}");
            let r = f.read_reply();
            assert_eq!(r.code, 226, "round {round}: {r:?}");
        } else {
            let r = f.read_reply();
            // 226 if all 8 MiB arrived before the RST was seen.
            assert!(r.code == 426 || r.code == 226, "round {round}: {r:?}");
            eprintln!("round {round} (reset): {}", r.lines[0]);
            if r.code == 226 {
                sender.join().unwrap();
                f.quit();
                continue;
            }
        }
        sender.join().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let got = fx.read("alice/log.bin");
        if got != original {
            let tail = &got[original.len().min(got.len())..];
            let zeros = tail.iter().take_while(|&&b| b == 0).count();
            wrong.push(format!(
                "round {round} ({how}): the file has {} bytes, want the original {}; the {} \
                 bytes past the original start with {zeros} zero bytes (a hole: a write \
                 landed after the cut back)",
                got.len(),
                original.len(),
                tail.len()
            ));
        }
        f.quit();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ------------------------------------------------------------ disk full

/// Sends `data` on `conn` until the server stops taking it; returns how
/// much was written.
fn send_until_refused(mut conn: TcpStream, data: &[u8]) -> usize {
    conn.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut sent = 0;
    for chunk in data.chunks(64 << 10) {
        match conn.write_all(chunk) {
            Ok(()) => sent += chunk.len(),
            Err(_) => return sent,
        }
    }
    sent
}

#[test]
fn disk_full_answers_452_and_loses_nothing() {
    let fx = Fixture::new();
    let mnt = fx.work.join("tmpfs");
    let Some(_tmpfs) = Tmpfs::mount(&mnt, "20m") else {
        return;
    };
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    // The users file checked homes under --root: make them on the tmpfs.
    let home = mnt.join("alice");
    std::fs::create_dir_all(&home).unwrap();
    let existing = pattern(10, 4 << 20);
    let log0 = pattern(11, 1 << 20);
    std::fs::write(home.join("existing.bin"), &existing).unwrap();
    std::fs::write(home.join("log.bin"), &log0).unwrap();
    let dl = pattern(12, 2 << 20);
    write(&mnt, "pub/dl.bin", &dl);
    let srv = Server::builder()
        .root(&mnt)
        .users(&users)
        .ports(20)
        .start(&fx);

    // A reader on another session downloads again and again while the
    // uploads fill the disk.
    let addr = srv.addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let dl = dl.clone();
        std::thread::spawn(move || {
            let mut f = Ftp::connect(addr);
            f.login();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || n == 0 {
                assert_bytes_eq("download during disk full", &f.retr("pub/dl.bin"), &dl);
                n += 1;
            }
            f.quit();
            n
        })
    };

    let big = pattern(13, 40 << 20);
    for (line, name) in [
        ("STOR new.bin", "new.bin"),
        ("STOR existing.bin", "existing.bin"),
        ("APPE log.bin", "log.bin"),
    ] {
        let mut f = srv.login_as("alice", "alice-pw");
        let conn = f.epsv_connect();
        f.expect(line, 150);
        let sent = send_until_refused(conn, &big);
        let r = f.read_reply();
        assert!(
            r.code == 452 || r.code == 552,
            "{line} on a full disk after {sent} bytes: {r:?}, want 452"
        );
        eprintln!("{line}: {} after {sent} bytes sent", r.lines[0]);
        // The session goes on.
        f.expect("NOOP", 200);
        assert!(!home.join("new.bin").exists() || name != "new.bin");
        f.quit();
    }
    // A full disk is the operator's to fix: a warning, not a refusal
    // logged at INFO that `--log-level warn` hides.
    let log = srv.log_text();
    let full: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("No space left on device"))
        .collect();
    assert!(!full.is_empty(), "{log}");
    assert!(full.iter().all(|l| l.contains(" WARN ")), "{full:#?}");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let downloads = reader.join().unwrap();
    assert!(
        !home.join("new.bin").exists(),
        "the partial new file stayed"
    );
    assert_bytes_eq(
        "existing.bin after a failed overwrite",
        &std::fs::read(home.join("existing.bin")).unwrap(),
        &existing,
    );
    assert_bytes_eq(
        "log.bin after a failed APPE",
        &std::fs::read(home.join("log.bin")).unwrap(),
        &log0,
    );
    assert!(temp_files(&home).is_empty(), "{:?}", temp_files(&home));
    // The space came back: a small upload works.
    let mut f = srv.login_as("alice", "alice-pw");
    let small = pattern(14, 1 << 20);
    f.stor("small.bin", &small);
    assert_bytes_eq(
        "small.bin",
        &std::fs::read(home.join("small.bin")).unwrap(),
        &small,
    );
    f.quit();
    eprintln!("{downloads} downloads of 2 MiB ran while the disk was full");
    let mut srv = srv;
    srv.assert_serving("pub/dl.bin");
}

// ------------------------------------------------------------ --atomic-uploads

#[test]
fn concurrent_atomic_uploads_leave_one_whole_file() {
    const N: usize = 4;
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let srv = start(&fx, &users, &["--atomic-uploads"]);
    let contents: Vec<Arc<Vec<u8>>> = (0..N)
        .map(|i| Arc::new(pattern(20 + i as u64, 8 << 20)))
        .collect();
    for round in 0..2 {
        let barrier = Arc::new(Barrier::new(N));
        let addr = srv.addr();
        let threads: Vec<_> = contents
            .iter()
            .cloned()
            .map(|data| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    let mut f = Ftp::connect(addr);
                    f.login_as("alice", "alice-pw");
                    let mut conn = f.epsv_connect();
                    f.expect("STOR same.bin", 150);
                    barrier.wait();
                    // Interleave: 256 KiB at a time with short pauses.
                    for chunk in data.chunks(256 << 10) {
                        conn.write_all(chunk).unwrap();
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    drop(conn);
                    let r = f.read_reply();
                    assert_eq!(r.code, 226, "{r:?}");
                    f.quit();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = fx.read("alice/same.bin");
        let which = contents.iter().position(|c| **c == got);
        assert!(
            which.is_some(),
            "round {round}: same.bin ({} bytes, sha256 {}) is none of the {N} uploads",
            got.len(),
            sha256(&got)
        );
        eprintln!("round {round}: upload {} won", which.unwrap());
        assert!(temp_files(&home).is_empty(), "{:?}", temp_files(&home));
    }
}

#[test]
fn atomic_upload_is_never_seen_half_written() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let old = pattern(30, 1 << 20);
    fx.write("alice/seen.bin", &old);
    let srv = start(&fx, &users, &["--atomic-uploads"]);
    let new = pattern(31, 16 << 20);
    for name in ["seen.bin", "fresh.bin"] {
        let old_len = if name == "seen.bin" {
            Some(old.len() as u64)
        } else {
            None
        };
        let (mut f, mut conn) = start_upload(&srv, &format!("STOR {name}"), &[]);
        let mut observer = srv.login_as("alice", "alice-pw");
        let mut seen = std::collections::BTreeMap::new();
        let mut polls = 0;
        for chunk in new.chunks(512 << 10) {
            conn.write_all(chunk).unwrap();
            // Look at the name on disk and over FTP (SIZE) between chunks.
            let disk = std::fs::metadata(home.join(name)).ok().map(|m| m.len());
            let r = observer.cmd(&format!("SIZE {name}"));
            let ftp = (r.code == 213).then(|| r.lines[0][4..].parse::<u64>().unwrap());
            for s in [disk, ftp] {
                *seen.entry(s).or_insert(0) += 1;
                assert!(
                    s == old_len,
                    "{name} seen at {s:?} bytes during an atomic upload (old: {old_len:?})"
                );
            }
            polls += 1;
        }
        drop(conn);
        let r = f.read_reply();
        assert_eq!(r.code, 226, "{r:?}");
        assert_bytes_eq(name, &fx.read(&format!("alice/{name}")), &new);
        let r = observer.expect(&format!("SIZE {name}"), 213);
        assert_eq!(r.lines[0], format!("213 {}", new.len()));
        eprintln!("{name}: {polls} polls during the upload saw sizes {seen:?}");
        observer.quit();
        f.quit();
    }
    assert!(temp_files(&home).is_empty());
}

#[test]
fn failed_stou_leaves_no_file() {
    // STOU picks a free name and creates it; a broken STOU must not leave
    // that name behind (an empty or partial file nobody asked for).
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let mut wrong = Vec::new();
    for atomic in [false, true] {
        let srv = start_atomic(&fx, &users, atomic);
        for (how, name) in [("reset", "stou-reset.bin"), ("ABOR", "stou-abor.bin")] {
            let (mut f, conn) = start_upload(&srv, &format!("STOU {name}"), &pattern(60, 300_000));
            std::thread::sleep(Duration::from_millis(200));
            if how == "reset" {
                reset(conn);
                let r = f.read_reply();
                assert_eq!(r.code, 426, "{r:?}");
            } else {
                let r = f.cmd("ABOR");
                assert_eq!(r.code, 426, "{r:?}");
                assert_eq!(f.read_reply().code, 226);
                drop(conn);
            }
            std::thread::sleep(Duration::from_millis(100));
            let left: Vec<String> = names_in(&home)
                .into_iter()
                .filter(|n| n.starts_with("stou-") || n.starts_with(".ringftp"))
                .collect();
            if !left.is_empty() {
                let sizes: Vec<u64> = left
                    .iter()
                    .map(|n| std::fs::metadata(home.join(n)).unwrap().len())
                    .collect();
                wrong.push(format!(
                    "--atomic-uploads {atomic}, STOU {name} then {how}: left {left:?} \
                     (sizes {sizes:?})"
                ));
                for n in &left {
                    std::fs::remove_file(home.join(n)).unwrap();
                }
            }
            f.quit();
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// An upload whose data connection is never made is answered 425 (or,
/// ABORted while the server waits for it, 426 + 226), and by the time the
/// client reads that answer the server has taken back what it did: no
/// new file, no temporary file, an existing file as it was. A client (a
/// sync tool listing the directory to decide what to retry) must not find
/// an empty file the server then removes behind its back: the 425 went out
/// before the removal, and 2 of 3 tries saw the file.
#[test]
fn upload_without_a_data_connection_leaves_nothing_when_refused() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let old = pattern(7, 5_000);
    let mut wrong = Vec::new();
    for atomic in [false, true] {
        let srv = start_atomic(&fx, &users, atomic);
        let mut f = srv.login_as("alice", "alice-pw");
        for i in 0..20 {
            fx.write("alice/old.bin", &old);
            for verb in ["STOR", "APPE", "STOU"] {
                // Active mode to a port nobody listens on: the connect is
                // refused at once.
                f.expect(&format!("PORT {}", port_arg(refused_addr())), 200);
                let name = format!("new-{verb}-{i}.bin");
                let r = f.cmd(&format!("{verb} {name}"));
                // STOU's 150 names its file before the connect fails.
                let r = if r.code == 150 { f.read_reply() } else { r };
                assert_eq!(r.code, 425, "{verb} {name}: {r:?}");
                check_left(
                    &home,
                    &format!("atomic {atomic}, {verb} {name}, 425"),
                    &mut wrong,
                );
            }
            f.expect(&format!("PORT {}", port_arg(refused_addr())), 200);
            let r = f.cmd("STOR old.bin");
            let r = if r.code == 150 { f.read_reply() } else { r };
            assert_eq!(r.code, 425, "STOR old.bin: {r:?}");
            if fx.read("alice/old.bin") != old {
                wrong.push(format!(
                    "atomic {atomic}: STOR over old.bin, 425: its content changed"
                ));
            }
            // Passive, the client never connects and sends ABOR instead.
            f.epsv();
            f.send_raw(format!("STOR abor-{i}.bin\r\nABOR\r\n").as_bytes());
            assert_eq!(f.read_reply().code, 426);
            assert_eq!(f.read_reply().code, 226);
            check_left(
                &home,
                &format!("atomic {atomic}, STOR then ABOR, 426 + 226"),
                &mut wrong,
            );
        }
        f.quit();
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A loopback address nobody listens on (bound, then let go).
fn refused_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Records in `wrong` (and removes) any upload file left in `home`
/// besides old.bin.
fn check_left(home: &Path, when: &str, wrong: &mut Vec<String>) {
    let left: Vec<String> = names_in(home)
        .into_iter()
        .filter(|n| n.starts_with("new-") || n.starts_with("abor-") || n.starts_with(".ringftp"))
        .collect();
    if !left.is_empty() {
        wrong.push(format!("{when}: found {left:?}"));
        for n in &left {
            let _ = std::fs::remove_file(home.join(n));
        }
    }
}

/// Two sessions upload one name; B's upload completes while A's is still
/// running, then A's breaks (its data connection is reset). Undoing A
/// must not touch B's file: not delete it (a new name A created and B
/// then replaced), not put A's partial over it (--keep-partial, an
/// overwrite whose original B replaced).
#[test]
fn a_broken_upload_leaves_a_concurrent_complete_one_alone() {
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    for (keep, existing) in [(false, false), (true, true), (true, false), (false, true)] {
        let what = format!("keep-partial {keep}, ord.bin existed {existing}");
        let srv = start(&fx, &users, if keep { &["--keep-partial"] } else { &[] });
        let _ = std::fs::remove_file(home.join("ord.bin"));
        if existing {
            fx.write("alice/ord.bin", &pattern(3, 5_000));
        }
        let (mut a, conn) = start_upload(&srv, "STOR ord.bin", &pattern(4, 300_000));
        wait_until("A's bytes", WAIT, || {
            size_of_prefixed(&home, ".ringftp-upload") >= 200_000
                || std::fs::metadata(home.join("ord.bin")).map_or(0, |m| m.len()) >= 200_000
        });
        let theirs = pattern(5, 50_000);
        let mut b = srv.login_as("alice", "alice-pw");
        b.stor("ord.bin", &theirs);
        reset(conn);
        let r = a.read_reply();
        assert_eq!(r.code, 426, "{what}: {r:?}");
        assert_bytes_eq(&what, &fx.read("alice/ord.bin"), &theirs);
        assert!(
            temp_files(&home).is_empty(),
            "{what}: {:?}",
            temp_files(&home)
        );
        a.quit();
        b.quit();
    }
}

/// An upload's hidden temporary file is the server's: a client cannot
/// write into it (REST + STOR, APPE), replace, rename, delete, chmod it
/// or set its time.
#[test]
fn a_temporary_upload_name_is_refused_to_clients() {
    use std::os::unix::fs::MetadataExt;
    let (fx, users) = alice_fixture();
    let home = fx.root.join("alice");
    let srv = start(&fx, &users, &[]);
    let name = ".ringftp-upload.1-0.1.1.part";
    fx.write(&format!("alice/{name}"), b"server's");
    let before = std::fs::metadata(home.join(name)).unwrap();
    let mut f = srv.login_as("alice", "alice-pw");
    for line in [
        format!("STOR {name}"),
        format!("APPE {name}"),
        format!("DELE {name}"),
        format!("RNFR {name}"),
        format!("SITE CHMOD 600 {name}"),
        format!("MFMT 20200101000000 {name}"),
    ] {
        f.epsv();
        let r = f.cmd(&line);
        assert!((500..600).contains(&r.code), "{line}: {r:?}");
    }
    assert_eq!(fx.read(&format!("alice/{name}")), b"server's");
    let after = std::fs::metadata(home.join(name)).unwrap();
    assert_eq!(
        (after.mode(), after.mtime()),
        (before.mode(), before.mtime())
    );
}
