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
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ringftp::loadgen::prepare;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ringftp");
/// No single generator run in these tests may take longer.
const RUN_LIMIT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------- helpers

/// A server process, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_kind() -> String {
    std::env::var("LOADGEN_TEST_SERVER").unwrap_or_else(|_| "ringftp".into())
}

/// Starts the reference server on `root` and waits for its
/// `listening on ADDR` line.
fn start_server(root: &Path) -> Server {
    start_kind(root, &server_kind())
}

/// Starts `kind` ("ringftp" or "pyftpdlib") on `root`.
fn start_kind(root: &Path, kind: &str) -> Server {
    start_kind_with(root, kind, &[])
}

/// Starts `kind` on `root`; `extra` flags go to ringftp only.
fn start_kind_with(root: &Path, kind: &str, extra: &[&str]) -> Server {
    let mut cmd = if kind == "ringftp" {
        let mut c = Command::new(BIN);
        c.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "2",
            "--log-level",
            "warn",
        ])
        .args(["--pasv-ports", "45000-45999", "--root"])
        .arg(root)
        .args(extra);
        c
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
        c
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the reference server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            panic!("the reference server printed no `listening on` line within 20 s");
        }
    };
    Server { child, addr }
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
        120 + 50 + 1 + 1,
        "mirror files, listing, bigfile, index.txt"
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
        // One mode with pinned generator shards, the others unpinned.
        if mode == "port" {
            args.push("--pin");
        }
        let run = loadtest(root.path(), &args);
        let json = ok_run(&run);
        assert_eq!(json["config"]["mode"], mode);
        assert_eq!(json["config"]["pin"], mode == "port");
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

    let pid = server.child.id().to_string();
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
    std::fs::write(
        &file,
        format!(
            "[[user]]\nname = \"writer\"\npassword = \"{}\"\nhome = \"/\"\n\
             permissions = [\"list\", \"read\", \"write\"]\n",
            ringftp::auth::password::hash(b"secret").unwrap()
        ),
    )
    .unwrap();
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
    let pid = server.child.id().to_string();
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
            "op_weights",
            "ops",
            "pin",
            "ramp_s",
            "rate",
            "requests",
            "rounds",
            "scale",
            "target",
            "timeout_s",
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
    assert_eq!(
        run.code, 0,
        "3 errors are within --max-errors 3\n{}",
        run.stdout
    );
    assert_eq!(run.json["errors"]["connect-refused"]["count"], 3);
    assert_eq!(run.json["passed"], true);
}

#[test]
fn bad_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (&["--scenario", "nope"][..], "no bundled scenario"),
        (&["--duration", "soon"][..], "not a duration"),
        (&["--mode", "sideways"][..], "invalid value"),
    ] {
        let run = loadtest(dir.path(), args);
        assert_ne!(run.code, 0, "{args:?}");
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
}
