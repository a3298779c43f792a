//! Real FTP clients (curl, lftp, wget, tnftp, ncftp, Python's ftplib
//! scripts in tests/clients) run as subprocesses, here or inside a network namespace
//! ([`Place`]), each under `timeout` so that a hung client fails the test
//! instead of hanging it.

use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};

use super::{assert_same_file, die_with_parent, Fixture, Server};

/// Where a client runs: in the test's own network namespace, or inside
/// another one (`ip netns exec NS`, which keeps the working directory and
/// shows the process /etc/netns/NS/* in place of /etc/*).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Place<'a> {
    #[default]
    Here,
    Netns(&'a str),
}

/// What a client subprocess did.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Asserts exit status 0, showing the output otherwise.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "{} failed ({}; 124 = timed out)\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts a non-zero exit that is not a timeout.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        let code = self.status.code();
        assert!(
            !self.status.success() && code != Some(124) && code != Some(137),
            "{} should have failed promptly, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout + stderr.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `prog args` under `timeout -k 5 SECS` with stdin closed and
/// without proxy settings from the environment; a hung client is killed
/// and fails the test (exit 124).
pub fn run_client(secs: u64, prog: &str, args: &[&str], cwd: Option<&Path>) -> Run {
    run_client_in(Place::Here, secs, prog, args, cwd, &[])
}

/// [`run_client`] with extra environment variables.
pub fn run_client_env(
    secs: u64,
    prog: &str,
    args: &[&str],
    cwd: Option<&Path>,
    env: &[(&str, &str)],
) -> Run {
    run_client_in(Place::Here, secs, prog, args, cwd, env)
}

/// [`run_client_env`] at `place`.
pub fn run_client_in(
    place: Place,
    secs: u64,
    prog: &str,
    args: &[&str],
    cwd: Option<&Path>,
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.arg("-k").arg("5").arg(secs.to_string());
    if let Place::Netns(ns) = place {
        cmd.args(["ip", "netns", "exec", ns]);
    }
    cmd.arg(prog).args(args);
    for v in [
        "ftp_proxy",
        "FTP_PROXY",
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    cmd.stdin(Stdio::null());
    die_with_parent(&mut cmd);
    let what = match place {
        Place::Here => format!("{prog} {}", args.join(" ")),
        Place::Netns(ns) => format!("[{ns}] {prog} {}", args.join(" ")),
    };
    let Output {
        status,
        stdout,
        stderr,
    } = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    Run {
        what,
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// curl with `-q` (no ~/.curlrc), `-sS`, no proxy and short connect timeout.
pub fn curl(args: &[&str]) -> Run {
    curl_in(Place::Here, args)
}

/// [`curl`] at `place`.
pub fn curl_in(place: Place, args: &[&str]) -> Run {
    let mut a = vec![
        "-q",
        "-sS",
        "--noproxy",
        "*",
        "--connect-timeout",
        "10",
        "--max-time",
        "60",
    ];
    a.extend_from_slice(args);
    run_client_in(place, 90, "curl", &a, None, &[])
}

/// Downloads `url` with `curl -v FLAGS -o DEST` at `place` (an old `dest`
/// removed first), asserts success and that `dest` equals `want` byte for
/// byte; returns the run (its stderr holds curl's dialogue).
#[track_caller]
pub fn curl_download(place: Place, url: &str, flags: &[&str], dest: &Path, want: &Path) -> Run {
    let _ = std::fs::remove_file(dest);
    let d = dest.to_string_lossy().into_owned();
    let mut args = vec!["-v"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["-o", &d, url]);
    let r = curl_in(place, &args);
    r.ok();
    assert_same_file(dest, want);
    r
}

/// lftp settings that make it fail fast instead of retrying forever.
pub const LFTP_SETTINGS: &str = "set cmd:fail-exit yes; set net:max-retries 1; \
     set net:reconnect-interval-base 1; set net:reconnect-interval-max 1; \
     set net:persist-retries 0; set net:timeout 20; set ftp:ssl-allow no; \
     set cmd:interactive no; set xfer:clobber yes";

/// Runs `lftp -c "settings; open URL; SCRIPT"` in `cwd`, with its home
/// (history, rc files) in `home` and a UTF-8 locale (lftp recodes names
/// to the local charset).
pub fn lftp(url: &str, script: &str, cwd: &Path, home: &Path) -> Run {
    lftp_in(Place::Here, url, "", script, cwd, home)
}

/// [`lftp`] at `place`, with extra `settings` (`set ...; set ...`) after
/// the shared ones.
pub fn lftp_in(
    place: Place,
    url: &str,
    settings: &str,
    script: &str,
    cwd: &Path,
    home: &Path,
) -> Run {
    let mut full = format!("{LFTP_SETTINGS}; set file:charset utf-8; ");
    if !settings.is_empty() {
        full.push_str(settings);
        full.push_str("; ");
    }
    full.push_str(&format!("open {url}; {script}"));
    std::fs::create_dir_all(home).unwrap();
    let home_s = home.to_string_lossy().into_owned();
    run_client_in(
        place,
        300,
        "lftp",
        &["-c", &full],
        Some(cwd),
        &[
            ("HOME", &home_s),
            ("LFTP_HOME", &home_s),
            ("LC_ALL", "C.UTF-8"),
            ("LANG", "C.UTF-8"),
        ],
    )
}

/// The path of a Python client script in tests/clients.
pub fn client_script(name: &str) -> String {
    script_path(&format!("clients/{name}"))
}

/// The path of `rel` under tests/.
pub fn script_path(rel: &str) -> String {
    format!("{}/tests/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `python3 tests/clients/NAME args...`.
pub fn python(name: &str, args: &[&str]) -> Run {
    python_in(Place::Here, &client_script(name), args)
}

/// Runs `python3 -u SCRIPT args...` at `place`.
pub fn python_in(place: Place, script: &str, args: &[&str]) -> Run {
    let mut a = vec!["-u", script];
    a.extend_from_slice(args);
    run_client_in(place, 180, "python3", &a, None, &[])
}

/// Runs scenario `name` of the Python client `script` (the scenario name
/// is its first argument, `args` the rest); it must exit 0 with `OK` as
/// its last line. Returns its stdout.
pub fn python_scenario(script: &str, name: &str, args: &[&str]) -> String {
    let mut a = vec![name];
    a.extend_from_slice(args);
    let r = python(script, &a);
    r.ok();
    assert_eq!(
        r.stdout.lines().last(),
        Some("OK"),
        "scenario {name} did not finish:\n{}",
        r.all()
    );
    r.stdout
}

/// Runs one scenario of tests/clients/upload_client.py as alice (password
/// `alice-pw`, home `/alice` under the fixture's root); returns its stdout.
pub fn upload_scenario(fx: &Fixture, srv: &Server, name: &str, arg: Option<&str>) -> String {
    let host = srv.addr().ip().to_string();
    let port = srv.port().to_string();
    let home = fx.root.join("alice").to_string_lossy().into_owned();
    let mut args = vec![host.as_str(), &port, "alice", "alice-pw", &home];
    if let Some(a) = arg {
        args.push(a);
    }
    python_scenario("upload_client.py", name, &args)
}
