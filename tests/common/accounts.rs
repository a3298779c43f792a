//! Accounts for `--users`: one builder for users files ([`Account`],
//! [`users_toml`], [`Fixture::users_file`]) and one password helper,
//! [`hash_password`], which asks the real `ringftp passwd`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use super::{mkdir, Fixture, Ftp, Server, ServerBuilder, BIN};

/// One `[[user]]` of a users file.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub password: String,
    /// The home as written in the file (a virtual path under --root).
    pub home: String,
    pub perms: Vec<String>,
    /// Extra `key = value` lines (rates, or a deliberately bad field).
    pub extra: Vec<String>,
    /// The `password = ...` value instead of a hash of `password`.
    pub raw_hash: Option<String>,
}

/// Every permission the users file knows.
pub const ALL_PERMS: &[&str] = &[
    "list", "read", "write", "append", "delete", "mkdir", "rename", "chmod",
];

impl Account {
    /// `name` with password `name-pw`, home `/name`, permissions `perms`.
    pub fn new(name: &str, perms: &[&str]) -> Account {
        Account {
            name: name.into(),
            password: format!("{name}-pw"),
            home: format!("/{name}"),
            perms: perms.iter().map(|s| s.to_string()).collect(),
            extra: Vec::new(),
            raw_hash: None,
        }
    }

    /// Every permission.
    pub fn full(name: &str) -> Account {
        Account::new(name, ALL_PERMS)
    }

    pub fn home(mut self, home: &str) -> Account {
        self.home = home.into();
        self
    }

    pub fn password(mut self, pw: &str) -> Account {
        self.password = pw.into();
        self
    }

    pub fn extra(mut self, line: &str) -> Account {
        self.extra.push(line.into());
        self
    }

    /// Writes this string as the `password` field verbatim.
    pub fn raw_hash(mut self, h: &str) -> Account {
        self.raw_hash = Some(h.into());
        self
    }

    fn toml(&self) -> String {
        let hash = self
            .raw_hash
            .clone()
            .unwrap_or_else(|| hash_password(&self.password));
        let perms: Vec<String> = self.perms.iter().map(|p| format!("{p:?}")).collect();
        let mut s = format!(
            "[[user]]\nname = {:?}\npassword = {:?}\nhome = {:?}\npermissions = [{}]\n",
            self.name,
            hash,
            self.home,
            perms.join(", ")
        );
        for l in &self.extra {
            s.push_str(l);
            s.push('\n');
        }
        s.push('\n');
        s
    }
}

/// An argon2id PHC hash of `pw` from `ringftp passwd` (the binary's own
/// command, so the tests use no library internals), computed once per
/// password per process.
pub fn hash_password(pw: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(h) = cache.lock().unwrap().get(pw) {
        return h.clone();
    }
    let out = passwd(format!("{pw}\n").as_bytes());
    assert!(out.status.success(), "ringftp passwd: {out:?}");
    let h = String::from_utf8(out.stdout).unwrap().trim().to_string();
    cache.lock().unwrap().insert(pw.into(), h.clone());
    h
}

/// Runs `ringftp passwd` (under `timeout 20`) with `stdin` piped in.
pub fn passwd(stdin: &[u8]) -> Output {
    let mut child = Command::new("timeout")
        .args(["20", BIN, "passwd"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run ringftp passwd");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// The text of a users file with `accounts`.
pub fn users_toml(accounts: &[Account]) -> String {
    accounts.iter().map(Account::toml).collect()
}

impl Fixture {
    /// Writes `work/NAME` as a users file for `accounts` and creates each
    /// account's home under the root (a home that must not exist is made
    /// with [`users_toml`] by hand).
    pub fn users_file(&self, name: &str, accounts: &[Account]) -> PathBuf {
        for a in accounts {
            let rel = a.home.trim_start_matches('/');
            if !rel.split('/').any(|c| c == "..") {
                mkdir(&self.root, rel);
            }
        }
        let p = self.work.join(name);
        std::fs::write(&p, users_toml(accounts)).unwrap();
        p
    }
}

impl ServerBuilder {
    /// `--users FILE`.
    pub fn users(self, file: &Path) -> Self {
        self.arg("--users").arg(file.to_string_lossy().into_owned())
    }
}

impl Server {
    /// A control connection logged in as `user`.
    #[track_caller]
    pub fn login_as(&self, user: &str, password: &str) -> Ftp {
        let mut f = Ftp::connect(self.addr());
        f.login_as(user, password);
        f
    }
}
