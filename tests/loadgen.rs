//! `ringftp loadtest` end to end: the real binary against a real FTP server
//! on loopback, in every data-channel mode, with every byte verified; against
//! deliberately broken servers that must cost counted errors, never a hang;
//! and `prepare`'s determinism.
//!
//! The server under test is `ringftp serve`; `LOADGEN_TEST_SERVER=pyftpdlib`
//! points the same tests at pyftpdlib (`pip install pyftpdlib`, started from
//! tests/support/pyftpd.py) to show the generator is not ringftp-specific.
//! The upload test logs in as `writer` / `secret`: a users-file account on
//! ringftp, pyftpdlib's writable user there.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ringftp::loadgen::prepare;
use serde_json::Value;

mod common;

use common::BIN;
/// No single generator run in these tests may take longer.
const RUN_LIMIT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------- helpers

/// The server under test, started by the common harness (stopped when
/// dropped), with the fixture that holds its log.
struct Reference {
    server: common::Server,
    /// `IP:PORT`, as `--target` takes it.
    addr: String,
    _fx: common::Fixture,
}

impl Reference {
    fn pid(&self) -> u32 {
        self.server.pid()
    }
}

fn server_kind() -> String {
    std::env::var("LOADGEN_TEST_SERVER").unwrap_or_else(|_| "ringftp".into())
}

/// Starts the reference server on `root` and waits for its
/// `listening on ADDR` line.
fn start_server(root: &Path) -> Reference {
    start_kind(root, &server_kind())
}

/// Starts `kind` ("ringftp" or "pyftpdlib") on `root`.
fn start_kind(root: &Path, kind: &str) -> Reference {
    start_kind_with(root, kind, &[])
}

/// Starts `kind` on `root`; `extra` flags go to ringftp only.
fn start_kind_with(root: &Path, kind: &str, extra: &[&str]) -> Reference {
    let fx = common::Fixture::new();
    let server = if kind == "ringftp" {
        // Started as root, the server serves as ftp/nobody: the tree is
        // theirs, as an operator would set it up.
        common::give_dir_to_server_user(root);
        common::Server::builder()
            .root(root)
            .cores(2)
            .ports(100)
            .log_level("warn")
            .args(extra)
            .start(&fx)
    } else {
        let ok = Command::new("python3")
            .args(["-c", "import pyftpdlib"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "these tests need pyftpdlib as a reference FTP server: pip install pyftpdlib \
             (or LOADGEN_TEST_SERVER=ringftp to test against ringftp serve)"
        );
        let mut c = Command::new("python3");
        c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pyftpd.py"))
            .arg(root);
        common::Server::launch(c, &fx, root)
    };
    Reference {
        addr: server.addr().to_string(),
        server,
        _fx: fx,
    }
}

/// What a generator run left behind.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    json: Value,
}

/// Runs `ringftp loadtest ARGS --json ...`, killing it (and failing the
/// test) if it outlives [`RUN_LIMIT`].
fn loadtest(dir: &Path, args: &[&str]) -> Run {
    loadtest_interrupted(dir, args, None)
}

/// [`loadtest`], sending SIGINT (Ctrl-C) after `interrupt` when given.
fn loadtest_interrupted(dir: &Path, args: &[&str], interrupt: Option<Duration>) -> Run {
    let json = dir.join(format!(
        "run-{}.json",
        std::process::id() as u64 * 1000 + rand_suffix()
    ));
    let start = Instant::now();
    let mut child = Command::new(BIN)
        .arg("loadtest")
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringftp loadtest");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut interrupt = interrupt;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if interrupt.is_some_and(|after| start.elapsed() >= after) {
            interrupt = None;
            let pid = child.id().to_string();
            let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
            assert!(sent.success(), "kill -INT {pid}");
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("ringftp loadtest {args:?} hung for more than {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (out_t.join().unwrap(), err_t.join().unwrap());
    let json = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("valid JSON"))
        .unwrap_or(Value::Null);
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        elapsed: start.elapsed(),
        json,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `prepare` into `dir`: a small tree (120 files up to 2 MiB, a 3 MiB
/// bigfile, 50 listing entries) unless `overrides` (flag, value) say
/// otherwise.
fn prepare_tree(dir: &Path, overrides: &[(&str, &str)]) {
    let mut flags = [
        ("--files", "120"),
        ("--max-size", "2MiB"),
        ("--bigfile", "3MiB"),
        ("--listing", "50"),
        ("--seed", "1"),
    ];
    for (flag, value) in overrides {
        flags
            .iter_mut()
            .find(|(f, _)| f == flag)
            .expect("a known prepare flag")
            .1 = value;
    }
    let out = Command::new(BIN)
        .args(["loadtest", "prepare", "--dir"])
        .arg(dir)
        .args(flags.iter().flat_map(|(f, v)| [f, v]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prepare failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok_run(run: &Run) -> &Value {
    assert_eq!(
        run.code, 0,
        "expected a clean run\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    &run.json
}

fn count(json: &Value, phase: &str) -> u64 {
    json["phases"][phase]["count"].as_u64().unwrap_or(0)
}

// ---------------------------------------------------------------- prepare

#[test]
fn prepare_is_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    prepare_tree(a.path(), &[("--seed", "7")]);
    prepare_tree(b.path(), &[("--seed", "7")]);
    prepare_tree(c.path(), &[("--seed", "8")]);
    let (ta, tb, tc) = (tree(a.path()), tree(b.path()), tree(c.path()));
    assert_eq!(
        ta.len(),
        120 + 50 + 100 + 1 + 1,
        "mirror files, listing, ops/, bigfile, index.txt"
    );
    assert!(
        ta == tb,
        "same arguments must give the same tree, byte for byte"
    );
    assert!(ta != tc, "another seed gives other sizes");

    // Content is the content function, at any offset.
    let big = std::fs::read(a.path().join("bigfile")).unwrap();
    assert_eq!(big.len(), 3 << 20);
    assert_eq!(prepare::first_mismatch("/bigfile", 0, &big), None);
    assert_eq!(prepare::content_byte_at("bigfile", 123_457), big[123_457]);
    let index = std::fs::read_to_string(a.path().join("index.txt")).unwrap();
    assert_eq!(index.lines().count(), 120);
    for path in index.lines() {
        let bytes = std::fs::read(a.path().join(path.trim_start_matches('/'))).unwrap();
        assert!((1024..=2 << 20).contains(&(bytes.len() as u64)), "{path}");
        assert_eq!(prepare::first_mismatch(path, 0, &bytes), None, "{path}");
    }
    assert!(a.path().join("upload").is_dir());
    // ops/: the single-ops scenario's 100 files of exactly 1 KiB.
    let ops: Vec<_> = ta.iter().filter(|(p, _)| p.starts_with("ops")).collect();
    assert_eq!(ops.len(), 100);
    for (path, bytes) in ops {
        let remote = format!("/{}", path.display());
        assert_eq!(bytes.len(), 1024, "{remote}");
        assert_eq!(prepare::first_mismatch(&remote, 0, bytes), None, "{remote}");
    }
}

/// Every file under `root`: relative path and bytes, sorted.
fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------- against a real server

#[test]
fn every_mode_downloads_verified_bytes() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(root.path(), &[]);
    let server = start_server(root.path());
    let index = root.path().join("index.txt");
    let index = index.to_str().unwrap();
    for mode in ["pasv", "epsv", "port", "eprt"] {
        // Several clients in every mode; against pyftpdlib, one in active
        // modes, because its active mode wedges now and then with concurrent
        // sessions (Python's own ftplib sees the same timeouts).
        let clients = if mode == "pasv" || mode == "epsv" || server_kind() == "ringftp" {
            "3"
        } else {
            "1"
        };
        // The index file for two modes, the server's own MLSD walk of /pub
        // for the others.
        let files = if mode == "pasv" || mode == "port" {
            index
        } else {
            "/pub"
        };
        let hgrm = root.path().join(format!("hgrm-{mode}"));
        let hgrm_dir = hgrm.to_str().unwrap();
        let mut args = vec![
            "--target",
            &server.addr,
            "--scenario",
            "mirror",
            "--mode",
            mode,
            "--clients",
            clients,
            "--requests",
            "60",
            "--files",
            files,
            "--verify",
            "--timeout",
            "5s",
            "--hgrm",
            hgrm_dir,
        ];
        // One mode with pinned generator shards, the others unpinned; a
        // passive and an active mode with a fixed receive buffer.
        if mode == "port" {
            args.push("--pin");
        }
        let fixed = mode == "epsv" || mode == "eprt";
        if fixed {
            args.extend(["--rcvbuf", "1MiB"]);
        }
        let run = loadtest(root.path(), &args);
        let json = ok_run(&run);
        assert_eq!(json["config"]["mode"], mode);
        assert_eq!(json["config"]["pin"], mode == "port");
        let rcvbuf = if fixed {
            Value::from(1u64 << 20)
        } else {
            Value::Null
        };
        assert_eq!(json["config"]["rcvbuf"], rcvbuf, "{mode}");
        assert_eq!(json["totals"]["ok"], 60, "{mode}: {}", run.stdout);
        assert_eq!(json["totals"]["errors"], 0, "{mode}");
        assert!(
            json["totals"]["bytes"].as_u64().unwrap() >= 60 * 1024,
            "{mode}"
        );
        for phase in [
            "connect",
            "greeting",
            "login",
            "data_setup",
            "first_byte",
            "transfer",
            "request",
        ] {
            assert!(count(json, phase) > 0, "{mode}: phase {phase} is empty");
            assert!(
                hgrm.join(format!("{phase}.hgrm")).is_file(),
                "{mode}: no {phase}.hgrm"
            );
        }
        assert_eq!(count(json, "request"), 60);
        assert!(run.stdout.contains("every byte verified"), "{}", run.stdout);
        // Latency per file-size class (issue 15): every RETR is in one
        // class, in the JSON and in the table.
        let classes = ["request.le_64KiB", "request.le_1MiB", "request.gt_1MiB"];
        assert_eq!(classes.iter().map(|c| count(json, c)).sum::<u64>(), 60);
        assert!(count(json, "request.le_64KiB") > 0, "{mode}");
        assert!(
            run.stdout.contains("\nrequest.le_64KiB "),
            "{mode}: {}",
            run.stdout
        );
    }
}

#[test]
fn bundled_scenarios_run_cleanly() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(root.path(), &[]);
    let server = start_server(root.path());
    let t = server.addr.as_str();

    let run = loadtest(
        root.path(),
        &[
            "--target",
            t,
            "--scenario",
            "bigfile",
            "--requests",
            "2",
            "--verify",
        ],
    );
    let json = ok_run(&run);
    assert_eq!(json["totals"]["bytes"], 2 * (3 << 20));

    let run = loadtest(
        root.path(),
        &[
            "--target",
            t,
            "--scenario",
            "listing",
            "--requests",
            "4",
            "--clients",
            "2",
        ],
    );
    let json = ok_run(&run);
    assert_eq!(count(json, "request.list"), 2);
    assert_eq!(count(json, "request.mlsd"), 2);

    let run = loadtest(
        root.path(),
        &[
            "--target",
            t,
            "--scenario",
            "login-storm",
            "--clients",
            "40",
        ],
    );
    let json = ok_run(&run);
    assert_eq!(json["totals"]["ok"], 40);
    assert_eq!(count(json, "login"), 40);
    assert!(json["all_logged_in_s"].as_f64().unwrap() > 0.0);
    assert!(
        json["phases"].get("data_setup").is_none(),
        "no data channel in a login storm"
    );

    let pid = server.pid().to_string();
    let run = loadtest(
        root.path(),
        &[
            "--target",
            t,
            "--scenario",
            "idle",
            "--clients",
            "20",
            "--duration",
            "1500ms",
            "--server-pid",
            &pid,
        ],
    );
    let json = ok_run(&run);
    // All 20 sessions are held; their first NOOPs are spread over the 5 s
    // think time, so only some fall inside 1.5 s.
    assert_eq!(count(json, "login"), 20);
    let noops = json["totals"]["ok"].as_u64().unwrap();
    assert!((1..20).contains(&noops), "{noops} NOOPs");
    assert!(json["server"]["rss_peak_bytes"].as_u64().unwrap() > 0);
    assert!(run.stdout.contains("a client"), "{}", run.stdout);
}

/// A users file (outside `root`) with the account the upload test uses:
/// `writer` / `secret`, home `/`, allowed to list, read and write.
fn writer_users(dir: &Path) -> PathBuf {
    let file = dir.join("users.toml");
    let writer = common::Account::new("writer", &["list", "read", "write"])
        .password("secret")
        .home("/");
    std::fs::write(&file, common::users_toml(&[writer])).unwrap();
    file
}

#[test]
fn uploads_write_the_content_function() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let kind = server_kind();
    let users = writer_users(etc.path());
    let server = start_kind_with(root.path(), &kind, &["--users", users.to_str().unwrap()]);
    // Against pyftpdlib, one client in active mode: its active mode is
    // unreliable with concurrent sessions (see
    // every_mode_downloads_verified_bytes).
    let active_clients = if kind == "ringftp" { "3" } else { "1" };
    for (mode, clients) in [
        ("epsv", "3"),
        ("pasv", "2"),
        ("port", active_clients),
        ("eprt", active_clients),
    ] {
        let n: u64 = clients.parse().unwrap();
        let run = loadtest(
            root.path(),
            &[
                "--target",
                &server.addr,
                "--scenario",
                "upload",
                "--user",
                "writer",
                "--password",
                "secret",
                "--mode",
                mode,
                "--clients",
                clients,
                "--requests",
                "6",
                "--size",
                "100KiB",
            ],
        );
        let json = ok_run(&run);
        assert_eq!(json["totals"]["bytes"], 6 * 100 * 1024, "{mode}");
        assert_eq!(json["totals"]["ok"], 6, "{mode}");
        for client in 0..n.min(6) {
            let path = root.path().join(format!("upload/lg-{client}.bin"));
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("{mode}: {}: {e}", path.display()));
            assert_eq!(bytes.len(), 100 * 1024, "{mode}");
            assert_eq!(prepare::first_mismatch("upload", 0, &bytes), None, "{mode}");
        }
        // Each client overwrote its own file: nothing else, no leftovers.
        let mut names: Vec<String> = std::fs::read_dir(root.path().join("upload"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("lg-") && n.ends_with(".bin")),
            "{mode}: {names:?}"
        );
    }
    // A wrong password is a counted login error, not a hang.
    let run = loadtest(
        root.path(),
        &[
            "--target",
            &server.addr,
            "--scenario",
            "upload",
            "--user",
            "writer",
            "--password",
            "wrong",
            "--clients",
            "1",
            "--requests",
            "1",
            "--size",
            "1KiB",
        ],
    );
    // The set-up session (which checks the upload directory) cannot log
    // in: one clear error before the run.
    assert_eq!(run.code, 1, "a run where no login works must fail");
    assert!(run.stderr.contains("530"), "{}", run.stderr);
}

#[test]
fn open_loop_keeps_its_schedule() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_server(root.path());
    let run = loadtest(
        root.path(),
        &[
            "--target",
            &server.addr,
            "--scenario",
            "idle",
            "--clients",
            "4",
            "--rate",
            "100",
            "--duration",
            "1s",
        ],
    );
    let json = ok_run(&run);
    let ok = json["totals"]["ok"].as_u64().unwrap();
    assert!(
        (90..=101).contains(&ok),
        "100/s for 1 s started {ok} requests"
    );
    assert_eq!(json["config"]["rate"], 100.0);
}

#[test]
fn ctrl_c_ends_the_run_with_a_report() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_server(root.path());
    let run = loadtest_interrupted(
        root.path(),
        &[
            "--target",
            &server.addr,
            "--scenario",
            "idle",
            "--clients",
            "5",
            "--rate",
            "50",
            "--duration",
            "60s",
        ],
        Some(Duration::from_millis(1500)),
    );
    let json = ok_run(&run);
    assert!(
        run.elapsed < Duration::from_secs(15),
        "took {:?}",
        run.elapsed
    );
    assert!(run.stderr.contains("interrupted"), "{}", run.stderr);
    let elapsed = json["elapsed_s"].as_f64().unwrap();
    assert!(
        (1.0..10.0).contains(&elapsed),
        "measuring window {elapsed} s"
    );
    assert!(json["totals"]["ok"].as_u64().unwrap() > 20);
}

#[test]
fn json_schema_is_stable() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "5"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_server(root.path());
    let pid = server.pid().to_string();
    let run = loadtest(
        root.path(),
        &[
            "--target",
            &server.addr,
            "--files",
            "/pub",
            "--requests",
            "10",
            "--clients",
            "2",
            "--server-pid",
            &pid,
        ],
    );
    let json = ok_run(&run);
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(json["schema_version"], 1);
    assert_eq!(
        keys(json),
        [
            "all_logged_in_s",
            "checks",
            "config",
            "description",
            "distribution",
            "elapsed_s",
            "errors",
            "generator",
            "ops",
            "passed",
            "phases",
            "rounds",
            "scenario",
            "schema_version",
            "series",
            "server",
            "started_unix_s",
            "tool",
            "totals"
        ]
    );
    assert_eq!(
        keys(&json["config"]),
        [
            "clients",
            "cores",
            "duration_s",
            "max_clients",
            "max_error_rate",
            "max_errors",
            "max_p99_ms",
            "min_rate",
            "mode",
            "new_files",
            "op_weights",
            "ops",
            "pin",
            "ramp_s",
            "rate",
            "rcvbuf",
            "requests",
            "rounds",
            "scale",
            "size_bytes",
            "target",
            "timeout_s",
            "upload_dir",
            "user",
            "verify"
        ]
    );
    assert_eq!(
        keys(&json["totals"]),
        [
            "abandoned",
            "bytes",
            "errors",
            "mib_per_s",
            "missed",
            "ok",
            "requests",
            "requests_per_s",
            "sessions_peak"
        ]
    );
    assert_eq!(
        keys(&json["phases"]["request"]),
        ["count", "max_ms", "mean_ms", "min_ms", "p50_ms", "p90_ms", "p99_9_ms", "p99_ms"]
    );
    assert_eq!(keys(&json["generator"]), ["cpu_percent", "sys_s", "user_s"]);
    assert_eq!(
        keys(&json["server"]),
        [
            "cpu_ms_per_request",
            "cpu_s",
            "cpu_settled",
            "cpu_source",
            "cpu_sys_s",
            "cpu_user_s",
            "pid",
            "processes_peak",
            "pss_peak_bytes",
            "rss_end_bytes",
            "rss_growth_per_client_bytes",
            "rss_growth_per_session_bytes",
            "rss_peak_bytes",
            "rss_start_bytes"
        ]
    );
    assert_eq!(json["passed"], true);
    assert_eq!(json["scenario"], "mirror");
    assert_eq!(json["totals"]["requests"], 10);
    assert_eq!(keys(&json["ops"]), ["retr"]);
    assert_eq!(keys(&json["ops"]["retr"]), ["abandoned", "errors", "ok"]);
    assert_eq!(json["ops"]["retr"]["ok"], 10);
    assert_eq!(json["config"]["user"], "anonymous");
    assert_eq!(json["config"]["size_bytes"], Value::Null, "no STOR");
    let p = &json["phases"]["request"];
    assert!(p["p50_ms"].as_f64().unwrap() <= p["p99_ms"].as_f64().unwrap());
    assert!(p["p99_ms"].as_f64().unwrap() <= p["max_ms"].as_f64().unwrap());
}

// ------------------------------------------------------- broken servers

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// The greeting is not an FTP reply.
    Garbage,
    /// EPSV is answered with a 229 that carries no port.
    BadEpsv,
    /// RETR: 150, 100 bytes, data connection closed, 426.
    AbortedData,
    /// RETR: 150, 100 of the 1000 bytes SIZE promised, then 226 anyway.
    ShortData,
    /// RETR: 150, then nothing at all.
    Hang,
    /// Accepts, and never says a word (no greeting).
    Silent,
}

/// A tiny FTP server, on std::net, that misbehaves in one way. Each
/// connection gets its own thread; they all die with the test process.
fn broken_server(how: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            thread::spawn(move || {
                let _ = serve_broken(conn, how);
            });
        }
    });
    addr.to_string()
}

fn serve_broken(conn: TcpStream, how: Misbehaviour) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    if let Misbehaviour::Silent = how {
        thread::sleep(Duration::from_secs(30));
        return Ok(());
    }
    if let Misbehaviour::Garbage = how {
        out.write_all(b"SSH-2.0-OpenSSH_9.2 not FTP at all\r\n")?;
        thread::sleep(Duration::from_secs(5));
        return Ok(());
    }
    out.write_all(b"220 broken test server\r\n")?;
    let mut data: Option<TcpListener> = None;
    for line in BufReader::new(conn).lines() {
        let line = line?;
        let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match verb.to_ascii_uppercase().as_str() {
            "USER" => "331 password please".to_string(),
            "PASS" => "230 in".into(),
            "TYPE" => "200 binary".into(),
            "SIZE" => "213 1000".into(),
            "EPSV" if matches!(how, Misbehaviour::BadEpsv) => {
                "229 Entering Extended Passive Mode".into()
            }
            "EPSV" => {
                let l = TcpListener::bind("127.0.0.1:0")?;
                let port = l.local_addr()?.port();
                data = Some(l);
                format!("229 Entering Extended Passive Mode (|||{port}|)")
            }
            "RETR" => {
                out.write_all(b"150 here it comes\r\n")?;
                let Some(l) = data.take() else {
                    out.write_all(b"425 no data connection\r\n")?;
                    continue;
                };
                if let Misbehaviour::Hang = how {
                    thread::sleep(Duration::from_secs(30));
                    return Ok(());
                }
                let (mut d, _) = l.accept()?;
                let mut bytes = vec![0; 100];
                prepare::fill(arg, 0, &mut bytes);
                d.write_all(&bytes)?;
                drop(d);
                match how {
                    Misbehaviour::ShortData => "226 all done (it is not)".into(),
                    _ => "426 connection closed; transfer aborted".into(),
                }
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => "502 not here".into(),
        };
        out.write_all(format!("{reply}\r\n").as_bytes())?;
    }
    Ok(())
}

#[test]
fn broken_servers_cost_counted_errors_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.txt");
    std::fs::write(&index, "/f.dat\n").unwrap();
    let index = index.to_str().unwrap();
    let cases = [
        (Misbehaviour::Garbage, "login-storm", false, "protocol"),
        (Misbehaviour::BadEpsv, "mirror", false, "protocol"),
        (Misbehaviour::AbortedData, "mirror", false, "426"),
        (Misbehaviour::ShortData, "mirror", true, "short-transfer"),
        (Misbehaviour::Hang, "mirror", false, "timeout"),
    ];
    for (how, scenario, verify, kind) in cases {
        let target = broken_server(how);
        let mut args = vec![
            "--target",
            &target,
            "--scenario",
            scenario,
            "--clients",
            "2",
            "--requests",
            "2",
            "--files",
            index,
            "--timeout",
            "1s",
        ];
        if verify {
            args.push("--verify");
        }
        let run = loadtest(dir.path(), &args);
        assert_eq!(
            run.code, 1,
            "{how:?}: errors must fail the run\n{}",
            run.stdout
        );
        assert!(
            run.elapsed < Duration::from_secs(20),
            "{how:?} took {:?}",
            run.elapsed
        );
        assert_eq!(
            run.json["errors"][kind]["count"], 2,
            "{how:?}: {}",
            run.stdout
        );
        assert_eq!(run.json["totals"]["errors"], 2, "{how:?}");
        assert_eq!(run.json["passed"], false);
        assert!(
            run.stdout.contains("ERRORS"),
            "{how:?}: the table says so loudly"
        );
        assert!(run.stderr.contains("FAILED"), "{how:?}: so does stderr");
    }
}

/// A server that accepts and never greets fails the run. Before, the
/// clients' first logins, cut by the run's end, were counted nowhere: "0
/// ok, 0 errors", every check passed and the exit status was 0, so a CI
/// gate went green on a dead server (found by a review helper). Now each is
/// an abandoned `login` request, and a run with no successful request
/// fails.
#[test]
fn a_server_that_never_greets_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.txt");
    std::fs::write(&index, "/f.dat\n").unwrap();
    let target = broken_server(Misbehaviour::Silent);
    let run = loadtest(
        dir.path(),
        &[
            "--target",
            &target,
            "--scenario",
            "mirror",
            "--clients",
            "2",
            "--duration",
            "1s",
            "--timeout",
            "20s",
            "--files",
            index.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json["totals"]["ok"], 0);
    assert_eq!(run.json["totals"]["abandoned"], 2, "{}", run.stdout);
    assert_eq!(run.json["passed"], false);
    assert!(
        run.stderr.contains("no request succeeded"),
        "{}",
        run.stderr
    );
}

#[test]
fn refused_connections_are_counted_and_max_errors_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then let it go.
    let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = addr.to_string();
    let run = loadtest(
        dir.path(),
        &[
            "--target",
            &target,
            "--scenario",
            "login-storm",
            "--clients",
            "3",
            "--max-errors",
            "3",
        ],
    );
    assert_eq!(run.json["errors"]["connect-refused"]["count"], 3);
    // 3 errors are within --max-errors 3, but nothing succeeded: that
    // alone fails the run.
    let check = |figure: &str| {
        run.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["figure"] == figure)
            .unwrap_or_else(|| panic!("no {figure} check: {}", run.stdout))["passed"]
            .clone()
    };
    assert_eq!(check("errors"), true, "{}", run.stdout);
    assert_eq!(check("ok_requests"), false, "{}", run.stdout);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        !run.stderr.contains("more than --max-errors"),
        "{}",
        run.stderr
    );
    // In a mix whose requests are not logins, a login that fails before
    // a client's first request is an error but no request: a `--requests
    // 2` run reports at most 2 requests (those whose reconnection failed),
    // however many logins failed.
    let index = dir.path().join("index.txt");
    std::fs::write(&index, "/f.dat\n").unwrap();
    let run = loadtest(
        dir.path(),
        &[
            "--target",
            &target,
            "--scenario",
            "mirror",
            "--clients",
            "3",
            "--requests",
            "2",
            "--duration",
            "1s",
            "--max-errors",
            "1000",
            "--files",
            index.to_str().unwrap(),
        ],
    );
    let errors = run.json["errors"]["connect-refused"]["count"]
        .as_u64()
        .unwrap();
    assert!(errors >= 3, "each client's first login: {}", run.stdout);
    assert_eq!(run.json["totals"]["errors"], errors, "{}", run.stdout);
    let requests = run.json["totals"]["requests"].as_u64().unwrap();
    assert!(requests <= 2, "{}", run.stdout);
    let failed: u64 = run.json["ops"]
        .as_object()
        .unwrap()
        .values()
        .map(|o| o["errors"].as_u64().unwrap())
        .sum();
    assert_eq!(requests, failed, "{}", run.stdout);
    assert_eq!(run.code, 1, "{}", run.stdout);
}

/// An output that cannot be written is refused before any load is sent,
/// not after a run whose figures would then be lost.
#[test]
fn unwritable_outputs_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index.txt");
    std::fs::write(&index, "/f.dat\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let missing = dir.path().join("no-such-dir");
    let file = dir.path().join("file");
    std::fs::write(&file, "kept").unwrap();
    for (flag, path) in [
        ("--json", missing.join("run.json")),
        ("--hlog", missing.join("run.hlog")),
        ("--hgrm", file.join("hgrm")),
    ] {
        let out = Command::new(BIN)
            .args(["loadtest", "--target", &target, "--scenario", "mirror"])
            .args(["--clients", "1", "--duration", "30s", "--files"])
            .arg(&index)
            .arg(flag)
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert!(stderr.contains(flag), "{flag}: {stderr}");
        assert_eq!(
            listener.accept().map(|_| ()).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "{flag}: the run began"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"kept");
}

#[test]
fn bad_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (&["--scenario", "nope"][..], "no bundled scenario"),
        (&["--duration", "soon"][..], "not a duration"),
        (&["--mode", "sideways"][..], "invalid value"),
        (&["--rcvbuf", "lots"][..], "invalid value"),
        (&["--rcvbuf", "0"][..], "outside 4KiB to 1GiB"),
        (&["--rcvbuf", "4GiB"][..], "outside 4KiB to 1GiB"),
        (&["--tls-insecure"][..], "--tls <MODE>"),
        (&["--tls-ca", "ca.pem"][..], "--tls <MODE>"),
        (&["--tls-version", "1.3"][..], "--tls <MODE>"),
    ] {
        let run = loadtest(dir.path(), args);
        assert_ne!(run.code, 0, "{args:?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
}

// ------------------------------------------------- honest tails (issue 17)

/// Sends `signal` (e.g. "-STOP") to `pid`.
fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {signal} {pid}");
}

/// The stall: the server is stopped (SIGSTOP) during an open-loop
/// run and stays stopped past its end. Asserted is only what a stall
/// necessarily produces, whatever the machine's speed: every client ends
/// with a request in flight (abandoned), the pool grows to --max-clients,
/// starts are missed, and the abandoned requests carry the stall into the
/// tail: the p99, the last second of the series and the .hlog. The stall's
/// length is bounded below from this test's own clock (the run cannot start
/// before it is spawned, the stop is sent before `stopped` is read).
#[test]
fn a_stall_into_the_deadline_shows_in_the_tail() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_kind(root.path(), "ringftp");
    let pid = server.pid();
    let hlog = root.path().join("stall.hlog");
    let duration = Duration::from_secs(8);
    let spawned = Instant::now();
    let stopper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1500));
        signal(pid, "-STOP");
        Instant::now()
    });
    let run = loadtest(
        root.path(),
        &[
            "--target",
            &server.addr,
            "--scenario",
            "idle",
            "--rate",
            "200",
            "--clients",
            "4",
            "--max-clients",
            "40",
            "--duration",
            "8s",
            "--timeout",
            "1m",
            "--hlog",
            hlog.to_str().unwrap(),
        ],
    );
    let stopped = stopper.join().unwrap();
    signal(pid, "-CONT");
    drop(server);
    let json = &run.json;
    assert_eq!(
        run.code, 0,
        "no errors: a stall is latency\n{}\n{}",
        run.stdout, run.stderr
    );
    // The run's deadline is at least `spawned + 8 s`; the stall lasted from
    // `stopped` to there at least.
    let stall = (spawned + duration).saturating_duration_since(stopped);
    let stall_ms = stall.as_secs_f64() * 1000.0;
    let t = &json["totals"];
    let (ok, abandoned, missed) = (
        t["ok"].as_u64().unwrap(),
        t["abandoned"].as_u64().unwrap(),
        t["missed"].as_u64().unwrap(),
    );
    assert!(
        abandoned >= 40,
        "every client of the grown pool hangs: {abandoned}\n{}",
        run.stdout
    );
    assert!(
        missed >= 1,
        "with all 40 hung, starts are missed\n{}",
        run.stdout
    );
    assert!(run.stdout.contains("MISSED"), "{}", run.stdout);
    assert!(t["sessions_peak"].as_u64().unwrap() >= 4);
    // Each grown client's request was due within the first 40 starts after
    // the stop (5 ms apart) and waited until the deadline.
    let waited = stall_ms - 40.0 * 5.0 - 20.0;
    let p = &json["phases"]["request"];
    assert!(
        p["max_ms"].as_f64().unwrap() >= waited,
        "max {} < {waited}",
        p["max_ms"]
    );
    if abandoned * 100 > (ok + abandoned) * 2 {
        assert!(
            p["p99_ms"].as_f64().unwrap() >= waited,
            "p99 {} hides a {stall_ms:.0} ms stall ({ok} ok, {abandoned} abandoned)",
            p["p99_ms"]
        );
    }
    // The series: the last second holds the abandoned, at the stall's
    // length; a second after the stop has missed starts.
    let series = json["series"].as_array().unwrap();
    assert_eq!(series.len(), 8, "one entry a second");
    let last = series.last().unwrap();
    assert!(last["abandoned"].as_u64().unwrap() >= 40);
    assert!(last["phases"]["request"]["max_ms"].as_f64().unwrap() >= waited);
    assert!(series.iter().any(|s| s["missed"].as_u64().unwrap() > 0));
    let sum = |k: &str| series.iter().map(|s| s[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (sum("ok"), sum("abandoned"), sum("missed")),
        (ok, abandoned, missed)
    );

    // The .hlog: HdrHistogram's own reader finds the same tail.
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let log = std::fs::read(&hlog).unwrap();
    let mut last_request_max = 0.0;
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(i) = entry.expect("a valid .hlog line") {
            intervals += 1;
            if i.tag().map(|t| t.as_str()) == Some("request") {
                last_request_max = i.max();
            }
        }
    }
    assert!(intervals >= 2, "{intervals} intervals");
    assert!(last_request_max >= waited, "hlog max {last_request_max} ms");
}

/// `--rate` so low that one request starts in a 1 s run: the rate is over
/// the configured second, not over the one request's few milliseconds.
#[test]
fn a_cut_short_window_is_the_configured_one() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_server(root.path());
    let run = loadtest(
        root.path(),
        &[
            "--target",
            &server.addr,
            "--scenario",
            "idle",
            "--clients",
            "1",
            "--rate",
            "1e-9",
            "--duration",
            "1s",
        ],
    );
    let json = ok_run(&run);
    assert_eq!(json["totals"]["ok"], 1);
    assert_eq!(json["elapsed_s"], 1.0);
    assert_eq!(json["totals"]["requests_per_s"], 1.0);
    assert_eq!(json["totals"]["missed"], 0);
}

/// A short run's report, plotted: the SVG exists and is well-formed XML
/// with the chart's titles; a PNG is a PNG.
#[test]
fn plot_draws_a_run() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_server(root.path());
    let json_path = root.path().join("noop.json");
    let out = Command::new(BIN)
        .args(["loadtest", "--target", &server.addr, "--scenario", "idle"])
        .args([
            "--clients",
            "2",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--json",
        ])
        .arg(&json_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = root.path().join("chart.svg");
    let png = root.path().join("chart.png");
    for chart in [&svg, &png] {
        let out = Command::new(BIN)
            .args(["loadtest", "plot"])
            .arg(&json_path)
            .arg(&json_path)
            .arg("-o")
            .arg(chart)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("request latency over time"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.contains("request latency by percentile"));
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); \
             assert r.tag.endswith('svg'), r.tag; print(sum(1 for _ in r.iter()))",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "not XML: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let elements: usize = String::from_utf8_lossy(&parsed.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(elements > 50, "{elements} SVG elements");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");

    // Nothing to plot and a wrong extension are clear errors.
    for (args, want) in [
        (vec!["--phase", "transfer"], "no `transfer` latencies"),
        (vec!["-o", "chart.gif"], ".svg or .png"),
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(["loadtest", "plot"]).arg(&json_path);
        if !args.contains(&"-o") {
            cmd.arg("-o").arg(&svg);
        }
        let out = cmd.args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `compare` on two recorded reports: every figure with its ratio; with
/// rounds on both sides, a verdict per figure: a report against itself is
/// within noise, and one whose rounds were moved far apart differs.
#[test]
fn compare_two_recorded_runs() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_server(root.path());
    let a = root.path().join("a.json");
    let out = Command::new(BIN)
        .args(["loadtest", "--target", &server.addr, "--scenario", "idle"])
        .args([
            "--clients",
            "2",
            "--rate",
            "40",
            "--duration",
            "1s",
            "--rounds",
            "3",
            "--json",
        ])
        .arg(&a)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    assert_eq!(report["rounds"].as_array().unwrap().len(), 3);
    assert_eq!(
        report["series"].as_array().unwrap().len(),
        3,
        "a second per round"
    );

    let compare = |x: &Path, y: &Path| {
        let out = Command::new(BIN)
            .args(["loadtest", "compare"])
            .arg(x)
            .arg(y)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let row = |text: &str, name: &str| -> String {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
            .to_string()
    };
    let same = compare(&a, &a);
    assert!(row(&same, "requests/s").contains("1.00x"), "{same}");
    assert!(row(&same, "requests/s").contains("within noise"), "{same}");
    assert!(
        row(&same, "request p99 ms").contains("within noise"),
        "{same}"
    );

    // B: the same run, its rounds made 10x faster.
    let mut faster = report.clone();
    for r in faster["rounds"].as_array_mut().unwrap() {
        let v = r["requests_per_s"].as_f64().unwrap();
        r["requests_per_s"] = (v * 10.0).into();
    }
    faster["totals"]["requests_per_s"] =
        (report["totals"]["requests_per_s"].as_f64().unwrap() * 10.0).into();
    faster["config"]["clients"] = 7.into();
    let b = root.path().join("b.json");
    std::fs::write(&b, serde_json::to_string(&faster).unwrap()).unwrap();
    let text = compare(&a, &b);
    let rps = row(&text, "requests/s");
    assert!(rps.contains("10.00x") && rps.contains("DIFFERS"), "{text}");
    assert!(text.contains("differ in config: clients: 2 vs 7"), "{text}");

    // One round each: no verdict, and it says why.
    let single = root.path().join("single.json");
    let mut one = report.clone();
    one["rounds"].as_array_mut().unwrap().truncate(1);
    std::fs::write(&single, serde_json::to_string(&one).unwrap()).unwrap();
    let text = compare(&single, &b);
    assert!(!row(&text, "requests/s").contains("noise"), "{text}");
    assert!(text.contains("no noise estimate"), "{text}");
    let out = Command::new(BIN)
        .args(["loadtest", "compare"])
        .arg(&a)
        .arg(root.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Thresholds for CI: exit 0 when every one holds, 1 naming the figure
/// that broke its limit.
#[test]
fn thresholds_set_the_exit_status() {
    let root = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let server = start_server(root.path());
    let base = [
        "--target",
        server.addr.as_str(),
        "--scenario",
        "idle",
        "--clients",
        "2",
        "--requests",
        "20",
        // Open loop: idle's 5 s think time is for closed loop only.
        "--rate",
        "200",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        loadtest(root.path(), &args)
    };
    let run = with(&[
        "--max-p99",
        "1h",
        "--max-error-rate",
        "0",
        "--min-rate",
        "0.001",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json["checks"].as_array().unwrap().len(), 5);
    assert!(run.stdout.contains("threshold ok"), "{}", run.stdout);

    for (flag, value, figure) in [
        ("--max-p99", "1ns", "p99_ms"),
        ("--min-rate", "1e12", "requests_per_s"),
    ] {
        let run = with(&[flag, value]);
        assert_eq!(run.code, 1, "{flag} {value}: {}", run.stdout);
        assert!(
            run.stderr.contains(&format!("FAILED threshold: {figure}"))
                && run.stderr.contains(flag),
            "{flag}: {}",
            run.stderr
        );
        assert_eq!(run.json["passed"], false);
    }

    // Errors within --max-errors but above --max-error-rate.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let run = loadtest(
        root.path(),
        &[
            "--target",
            &dead,
            "--scenario",
            "login-storm",
            "--clients",
            "2",
            "--max-errors",
            "10",
            "--max-error-rate",
            "10%",
            "--server-pid",
            &server.pid().to_string(),
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    // No success: no invented average.
    assert_eq!(run.json["server"]["cpu_ms_per_request"], Value::Null);
    assert!(
        run.stdout.contains("no successful request"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("ms a request"), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("error_rate 1.000 breaks --max-error-rate 0.1"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("more than --max-errors"),
        "{}",
        run.stderr
    );
}

/// Every size and duration form, in every loadtest flag and scenario field
/// that takes one, as the binary resolves them (`--dry-run`).
#[test]
fn every_size_and_duration_form_in_flags_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let dry = |args: &[&str]| -> Value {
        let out = Command::new(BIN)
            .args(["loadtest", "--dry-run"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for (text, secs) in [("500ms", 0.5), ("1m30s", 90.0), ("1.5s", 1.5), ("10", 10.0)] {
        let c = dry(&[
            "--scenario",
            "mirror",
            "--duration",
            text,
            "--timeout",
            text,
            "--max-p99",
            text,
        ]);
        assert_eq!(
            (
                c["duration_s"].as_f64(),
                c["timeout_s"].as_f64(),
                c["max_p99_ms"].as_f64()
            ),
            (Some(secs), Some(secs), Some(secs * 1000.0)),
            "{text}"
        );
        let c = dry(&[
            "--scenario",
            "mirror",
            "--rate",
            "5",
            "--ramp",
            text,
            "--duration",
            "1h",
        ]);
        assert_eq!(c["ramp_s"].as_f64(), Some(secs), "{text}");
        let file = dir.path().join("forms.toml");
        std::fs::write(
            &file,
            format!(
                "name = \"forms\"\nops = [\"noop\"]\nduration = \"{text}\"\ntimeout = \"{text}\"\n\
                 ramp = \"{text}\"\nmax_p99 = \"{text}\"\nthink = \"{text}\"\n"
            ),
        )
        .unwrap();
        let c = dry(&["--scenario", file.to_str().unwrap()]);
        assert_eq!(
            (
                c["duration_s"].as_f64(),
                c["timeout_s"].as_f64(),
                c["ramp_s"].as_f64()
            ),
            (Some(secs), Some(secs), Some(secs)),
            "{text}"
        );
    }
    // Sizes: the upload scenario's size shows in a run's STOR bytes; here,
    // that flag and field parse (a bad one is refused with the form).
    for text in ["1.5MiB", "10kib", "64KiB", "1MB"] {
        dry(&["--scenario", "upload", "--size", text]);
        let file = dir.path().join("size.toml");
        std::fs::write(
            &file,
            format!("name = \"s\"\nops = [\"stor\"]\nrequests = 1\nsize = \"{text}\"\n"),
        )
        .unwrap();
        dry(&["--scenario", file.to_str().unwrap()]);
    }
    let out = Command::new(BIN)
        .args(["loadtest", "--dry-run", "--size", "1.5 parsecs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"1.5 parsecs\" is not a size"));
}

/// An account whose home has no upload directory: one clear error before
/// the run, saying what the path is relative to.
#[test]
fn upload_into_a_missing_directory_says_why() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    // `writer`'s home is /pub here: /upload is not under it.
    let users = writer_users(etc.path());
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(&users, text.replace("home = \"/\"", "home = \"/pub\"")).unwrap();
    let server = start_kind_with(
        root.path(),
        "ringftp",
        &["--users", users.to_str().unwrap()],
    );
    let args = [
        "--target",
        server.addr.as_str(),
        "--scenario",
        "upload",
        "--user",
        "writer",
        "--password",
        "secret",
        "--requests",
        "3",
        "--size",
        "10kib",
    ];
    let run = loadtest(root.path(), &args);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot enter /upload") && run.stderr.contains("home directory as `/`"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json, Value::Null, "no run, no report");
    // Pointed at a directory under its home, the same account uploads.
    std::fs::create_dir(root.path().join("pub/in")).unwrap();
    common::give_dir_to_server_user(&root.path().join("pub/in"));
    let mut ok_args = args.to_vec();
    ok_args.extend_from_slice(&["--upload-dir", "/in"]);
    let run = loadtest(root.path(), &ok_args);
    assert_eq!(ok_run(&run)["totals"]["ok"], 3);
    assert_eq!(
        std::fs::read(root.path().join("pub/in/lg-0.bin"))
            .unwrap()
            .len(),
        10 << 10
    );
}

/// A weighted mix of RETR, LIST and STOR, with a ramp: exact shares,
/// listings of the picked file's directory, latency per size class.
#[test]
fn weighted_mix_ramp_and_size_classes() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "30"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let users = writer_users(etc.path());
    let server = start_kind_with(
        root.path(),
        "ringftp",
        &["--users", users.to_str().unwrap()],
    );
    let scenario = etc.path().join("mix.toml");
    std::fs::write(
        &scenario,
        "name = \"mix\"\nops = { retr = 8, list = 1, stor = 1 }\nclients = 2\nrequests = 40\n\
         ramp = \"300ms\"\nsize = \"100KiB\"\nfiles = \"/pub\"\n",
    )
    .unwrap();
    let run = loadtest(
        root.path(),
        &[
            "--target",
            &server.addr,
            "--scenario",
            scenario.to_str().unwrap(),
            "--user",
            "writer",
            "--password",
            "secret",
            "--verify",
        ],
    );
    let json = ok_run(&run);
    assert_eq!(
        (
            count(json, "request.retr"),
            count(json, "request.list"),
            count(json, "request.stor")
        ),
        (32, 4, 4)
    );
    assert_eq!(json["config"]["op_weights"]["retr"], 8);
    assert_eq!(json["config"]["ramp_s"], 0.3);
    // Mirror files are 1 KiB to 2 MiB; uploads 100 KiB.
    let classes = count(json, "request.le_64KiB")
        + count(json, "request.le_1MiB")
        + count(json, "request.gt_1MiB");
    assert_eq!(classes, 36, "every RETR and STOR in one class");
    assert!(count(json, "request.le_1MiB") >= 4, "the uploads");
    assert!(run.stdout.contains("request.le_64KiB") || count(json, "request.le_64KiB") == 0);
}

// ------------------------------------------- single-client operations

/// The seven operations of the single-ops scenario, in the order it runs
/// them.
const SINGLE_OPS: [&str; 7] = [
    "noop",
    "size",
    "mdtm",
    "pasv-retr",
    "epsv-retr",
    "list",
    "stor",
];

/// The files a write run left in `root/upload`, sorted.
fn uploaded(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(root.join("upload"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Issue 15: one client, each single operation in turn, against ringftp
/// and pyftpdlib: every operation has its own counts and percentiles in
/// the JSON and the table, each STOR made a new 1 KiB file, and
/// compare_report.py turns the runs into the per-operation table.
#[test]
fn single_ops_reports_each_operation() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let users = writer_users(etc.path());
    let mut manifest = String::new();
    for kind in ["ringftp", "pyftpdlib"] {
        for (name, _) in uploaded(root.path()) {
            std::fs::remove_file(root.path().join("upload").join(name)).unwrap();
        }
        let server = start_kind_with(root.path(), kind, &["--users", users.to_str().unwrap()]);
        let pid = server.pid().to_string();
        // 4 of each op; the scenario's own files (/ops, walked with MLSD).
        let run = loadtest(
            root.path(),
            &[
                "--target",
                &server.addr,
                "--scenario",
                "single-ops",
                "--user",
                "writer",
                "--password",
                "secret",
                "--requests",
                "28",
                "--server-pid",
                &pid,
            ],
        );
        let json = ok_run(&run);
        assert_eq!(json["scenario"], "single-ops");
        assert_eq!(json["config"]["clients"], 1, "{kind}");
        assert_eq!(
            json["config"]["ops"],
            serde_json::json!(SINGLE_OPS),
            "{kind}"
        );
        assert_eq!(json["config"]["size_bytes"], 1024);
        assert_eq!(json["config"]["new_files"], true);
        assert_eq!(json["config"]["upload_dir"], "/upload");
        assert_eq!(json["config"]["user"], "writer");
        for op in SINGLE_OPS {
            assert_eq!(
                json["ops"][op],
                serde_json::json!({"ok": 4, "errors": 0, "abandoned": 0}),
                "{kind} {op}"
            );
            let phase = format!("request.{op}");
            let p = &json["phases"][&phase];
            assert_eq!(p["count"], 4, "{kind} {phase}");
            let [p50, p90, p99] = ["p50_ms", "p90_ms", "p99_ms"].map(|k| p[k].as_f64().unwrap());
            assert!(p50 > 0.0 && p50 <= p90 && p90 <= p99, "{kind} {phase}: {p}");
            assert!(
                run.stdout.contains(&format!("\n{phase} ")),
                "{kind}: no {phase} line in\n{}",
                run.stdout
            );
        }
        // Two RETRs of 1 KiB and one STOR of 1 KiB a cycle, plus 4 LISTs of
        // /ops: the bytes moved are at least the files'.
        assert!(json["totals"]["bytes"].as_u64().unwrap() >= 12 * 1024);
        assert_eq!(count(json, "request.le_64KiB"), 12, "RETRs and STORs");
        // Each STOR made a new file: 4 files of the upload content, no
        // overwrite.
        let files = uploaded(root.path());
        assert_eq!(files.len(), 4, "{kind}: {files:?}");
        for (name, bytes) in &files {
            assert!(
                name.starts_with("lg-") && name.ends_with(".bin"),
                "{kind}: {name}"
            );
            assert_eq!(bytes.len(), 1024, "{kind}: {name}");
            assert_eq!(prepare::first_mismatch("upload", 0, bytes), None, "{kind}");
        }
        let json_path = root.path().join(format!("single-ops.{kind}.json"));
        std::fs::write(&json_path, run.json.to_string()).unwrap();
        manifest.push_str(&format!(
            "single-ops\tsingle-ops\t{kind}\tok\t0\t{}\t1\t\t1\t\n",
            json_path.display()
        ));
    }
    // compare.sh's report: one row per operation, ringftp and the peer with
    // its ratio, in the median, p90 and p99 tables.
    let manifest_path = root.path().join("manifest.tsv");
    std::fs::write(&manifest_path, manifest).unwrap();
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("loadtest/compare_report.py"))
        .arg(&manifest_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    for what in ["**median, ms**", "**p90, ms**", "**p99, ms**"] {
        assert_eq!(report.matches(what).count(), 1, "{what}\n{report}");
    }
    for label in [
        "| NOOP round trip |",
        "| SIZE |",
        "| MDTM |",
        "| PASV + RETR 1 KiB |",
        "| EPSV + RETR 1 KiB |",
        "| LIST of 100 entries |",
        "| STOR 1 KiB (new file) |",
    ] {
        let rows: Vec<&str> = report.lines().filter(|l| l.starts_with(label)).collect();
        assert_eq!(rows.len(), 3, "{label}\n{report}");
        for row in rows {
            // figure | ringftp | pyftpdlib (ratio) | best peer | ringftp ÷ best
            let cells: Vec<&str> = row.split(" | ").collect();
            assert_eq!(cells.len(), 5, "{row}");
            assert!(cells[2].ends_with("×)"), "{row}");
            assert!(cells[3].ends_with("(pyftpdlib)"), "{row}");
        }
    }
}

/// A tiny FTP server that records each connection's commands and answers
/// the ones single-ops sends: the proof that each op sends what it says
/// (PASV for pasv-retr, EPSV for the others) in the scenario's order.
fn recording_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>) {
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let all = log.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { break };
            let id = {
                let mut l = all.lock().unwrap();
                l.push(Vec::new());
                l.len() - 1
            };
            let all = all.clone();
            thread::spawn(move || {
                let _ = serve_recording(conn, |line| all.lock().unwrap()[id].push(line));
            });
        }
    });
    (addr.to_string(), log)
}

fn serve_recording(conn: TcpStream, mut record: impl FnMut(String)) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    out.write_all(b"220 recording test server\r\n")?;
    let mut data: Option<TcpListener> = None;
    for line in BufReader::new(conn).lines() {
        let line = line?;
        record(line.clone());
        let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let mut open = |out: &mut TcpStream, payload: Option<Vec<u8>>| -> std::io::Result<()> {
            out.write_all(b"150 data\r\n")?;
            let (mut d, _) = data.take().expect("a data channel first").accept()?;
            match payload {
                Some(bytes) => d.write_all(&bytes)?,
                None => {
                    let mut sink = Vec::new();
                    d.read_to_end(&mut sink)?;
                }
            }
            Ok(())
        };
        let reply = match verb {
            "USER" => "331 password please".to_string(),
            "PASS" => "230 in".into(),
            "TYPE" | "NOOP" => "200 ok".into(),
            "CWD" => "250 ok".into(),
            "SIZE" => "213 1024".into(),
            "MDTM" => "213 20240101000000".into(),
            "PASV" | "EPSV" => {
                let l = TcpListener::bind("127.0.0.1:0")?;
                let port = l.local_addr()?.port();
                data = Some(l);
                if verb == "PASV" {
                    format!(
                        "227 Entering Passive Mode (127,0,0,1,{},{})",
                        port >> 8,
                        port & 255
                    )
                } else {
                    format!("229 Entering Extended Passive Mode (|||{port}|)")
                }
            }
            "RETR" => {
                let mut bytes = vec![0; 1024];
                prepare::fill(arg, 0, &mut bytes);
                open(&mut out, Some(bytes))?;
                "226 sent".into()
            }
            "LIST" => {
                open(
                    &mut out,
                    Some(b"-rw-r--r-- 1 0 0 1024 Jan 1 2024 f00.dat\r\n".to_vec()),
                )?;
                "226 listed".into()
            }
            "STOR" => {
                open(&mut out, None)?;
                "226 stored".into()
            }
            "QUIT" => {
                out.write_all(b"221 bye\r\n")?;
                return Ok(());
            }
            _ => "502 not here".into(),
        };
        out.write_all(format!("{reply}\r\n").as_bytes())?;
    }
    Ok(())
}

#[test]
fn single_ops_sends_each_operation_in_its_own_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = recording_server();
    let index = dir.path().join("index.txt");
    std::fs::write(&index, "/ops/f07.dat\n").unwrap();
    let run = loadtest(
        dir.path(),
        &[
            "--target",
            &addr,
            "--scenario",
            "single-ops",
            "--files",
            index.to_str().unwrap(),
            "--requests",
            "14",
        ],
    );
    let json = ok_run(&run);
    assert_eq!(json["totals"]["ok"], 14);
    // The measured session (not the set-up one that checks /upload): after
    // the login and TYPE I, two cycles of the seven operations, then QUIT.
    let sessions = log.lock().unwrap().clone();
    let measured = sessions
        .iter()
        .find(|s| s.iter().any(|c| c == "NOOP"))
        .unwrap_or_else(|| panic!("no session sent NOOP: {sessions:?}"));
    let mut sent: Vec<String> = measured
        .iter()
        .skip_while(|c| *c != "TYPE I")
        .skip(1)
        .cloned()
        .collect();
    assert_eq!(sent.pop().as_deref(), Some("QUIT"), "{measured:?}");
    let stor = |n: u64| {
        let (_, name) = sent[10 + (n as usize - 1) * 11]
            .split_once("/upload/lg-")
            .unwrap_or_else(|| panic!("{sent:?}"));
        assert!(name.ends_with(&format!("-0-{n}.bin")), "{name}");
        format!("STOR /upload/lg-{name}")
    };
    let cycle = |n: u64| {
        vec![
            "NOOP".to_string(),
            "SIZE /ops/f07.dat".into(),
            "MDTM /ops/f07.dat".into(),
            "PASV".into(),
            "RETR /ops/f07.dat".into(),
            "EPSV".into(),
            "RETR /ops/f07.dat".into(),
            "EPSV".into(),
            "LIST /ops".into(),
            "EPSV".into(),
            stor(n),
        ]
    };
    let want: Vec<String> = [cycle(1), cycle(2)].concat();
    assert_eq!(sent, want);
    // The set-up session checked the upload directory before the run.
    assert!(
        sessions
            .iter()
            .any(|s| s.iter().any(|c| c == "CWD /upload")),
        "{sessions:?}"
    );
    // --mode changes the ops without a mode of their own only.
    let run = loadtest(
        dir.path(),
        &[
            "--target",
            &addr,
            "--scenario",
            "single-ops",
            "--files",
            index.to_str().unwrap(),
            "--requests",
            "7",
            "--mode",
            "pasv",
        ],
    );
    ok_run(&run);
    let sessions = log.lock().unwrap().clone();
    let last = sessions
        .iter()
        .rev()
        .find(|s| s.iter().any(|c| c == "NOOP"))
        .unwrap();
    let modes: Vec<&str> = last
        .iter()
        .filter(|c| *c == "PASV" || *c == "EPSV")
        .map(String::as_str)
        .collect();
    assert_eq!(modes, ["PASV", "EPSV", "PASV", "PASV"], "{last:?}");
}

/// Issue 11: one client storing 1 KiB files one after another, against
/// ringftp and pyftpdlib, as the small-uploads scenario and as single-ops
/// with `--ops stor`; rounds never overwrite each other's files.
#[test]
fn small_uploads_store_new_files() {
    let root = tempfile::tempdir().unwrap();
    let etc = tempfile::tempdir().unwrap();
    prepare_tree(
        root.path(),
        &[("--files", "1"), ("--bigfile", "0"), ("--listing", "0")],
    );
    let users = writer_users(etc.path());
    for kind in ["ringftp", "pyftpdlib"] {
        for (name, _) in uploaded(root.path()) {
            std::fs::remove_file(root.path().join("upload").join(name)).unwrap();
        }
        let server = start_kind_with(root.path(), kind, &["--users", users.to_str().unwrap()]);
        let login = ["--user", "writer", "--password", "secret"];
        let mut args = vec!["--target", &server.addr, "--scenario", "small-uploads"];
        args.extend(login);
        args.extend(["--requests", "6", "--rounds", "2"]);
        let run = loadtest(root.path(), &args);
        let json = ok_run(&run);
        assert_eq!(json["config"]["ops"], serde_json::json!(["stor"]));
        assert_eq!(json["config"]["clients"], 1);
        assert_eq!(json["totals"]["ok"], 12, "{kind}: 6 a round");
        assert_eq!(json["ops"]["stor"]["ok"], 12);
        assert_eq!(count(json, "request"), 12);
        assert_eq!(json["totals"]["bytes"], 12 * 1024);
        let mut args = vec!["--target", &server.addr, "--scenario", "single-ops"];
        args.extend(login);
        args.extend(["--ops", "stor", "--requests", "3"]);
        let json = ok_run(&loadtest(root.path(), &args)).clone();
        assert_eq!(json["config"]["ops"], serde_json::json!(["stor"]));
        assert_eq!(json["ops"]["stor"]["ok"], 3);
        let files = uploaded(root.path());
        assert_eq!(
            files.len(),
            12 + 3,
            "{kind}: a new file per STOR: {files:?}"
        );
        assert!(files
            .iter()
            .all(|(_, b)| b.len() == 1024 && prepare::first_mismatch("upload", 0, b).is_none()));
    }
}
