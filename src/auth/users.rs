//! The users file:
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."   # from `ringftp passwd`
//! home = "/alice"                                   # inside --root
//! permissions = ["list", "read", "write", "append", "delete", "mkdir", "rename"]
//! max_download_rate = "10MiB"                       # optional, bytes/s
//! max_upload_rate = "5MiB"                          # optional, bytes/s
//! ```
//!
//! Everything is checked when the file is read — unknown fields, bad
//! hashes, homes outside the root or missing, duplicate names, unknown
//! permissions — so a typo is a start-up error, never a runtime surprise.
//! [`UsersDb`] holds the current set; SIGHUP swaps in a new one only if the
//! new file is valid.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use super::password;
use super::perms::Perms;
use crate::engine::sys;
use crate::vfs::{path, resolve};

/// One account.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// argon2id PHC string.
    pub hash: String,
    /// Absolute virtual path of the home under `--root` (normalized).
    pub home: Vec<u8>,
    pub perms: Perms,
    /// Bytes per second, if capped.
    pub max_download_rate: Option<u64>,
    pub max_upload_rate: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    user: Vec<UserToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserToml {
    name: String,
    password: String,
    home: String,
    permissions: Vec<String>,
    max_download_rate: Option<String>,
    max_upload_rate: Option<String>,
}

/// A validated set of accounts.
#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Arc<User>>,
    /// What the operator should hear about a file that loads (accounts
    /// whose hash has other argon2 parameters than `ringftp passwd`'s).
    warnings: Vec<String>,
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("user names are 1 to 64 bytes".into());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!(
            "user name {name:?} has a space, a control character or a slash"
        ));
    }
    if name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp") {
        return Err(format!(
            "user name {name:?} is reserved for anonymous access"
        ));
    }
    Ok(())
}

fn check_rate(field: &str, value: &Option<String>) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        Some(v) => {
            let n = crate::units::parse_size(v).map_err(|e| format!("{field}: {e}"))?;
            crate::limits::check_rate_cap(n)
                .map(Some)
                .map_err(|why| format!("{field} {v:?}: {why}"))
        }
    }
}

impl Users {
    /// Parses and validates the users file text. `home_ok` checks that a
    /// normalized virtual home path is a directory inside the root. An
    /// account whose hash has other argon2 parameters than `ringftp
    /// passwd`'s loads, with a warning ([`Users::warnings`]).
    pub fn parse(
        text: &str,
        home_ok: &dyn Fn(&[u8]) -> Result<(), String>,
    ) -> Result<Users, String> {
        let file: FileToml = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_name = HashMap::new();
        let mut warnings = Vec::new();
        for (i, u) in file.user.into_iter().enumerate() {
            let at = format!("user #{} ({:?})", i + 1, u.name);
            check_name(&u.name).map_err(|e| format!("{at}: {e}"))?;
            password::validate(&u.password).map_err(|e| format!("{at}: password: {e}"))?;
            if !u.home.starts_with('/') {
                return Err(format!(
                    "{at}: home {:?} must be an absolute path inside --root, e.g. \"/{}\"",
                    u.home, u.name
                ));
            }
            if u.home.split('/').any(|c| c == "..") {
                return Err(format!(
                    "{at}: home {:?} must not use \"..\" (it would lead outside --root)",
                    u.home
                ));
            }
            let home = path::join(b"/", u.home.as_bytes());
            home_ok(&home).map_err(|e| format!("{at}: home {:?}: {e}", u.home))?;
            let mut perms = Perms::default();
            for p in &u.permissions {
                let Some(bit) = Perms::parse(p) else {
                    let known: Vec<&str> = Perms::NAMES.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "{at}: unknown permission {p:?} (known: {})",
                        known.join(", ")
                    ));
                };
                perms = perms.with(bit);
            }
            let user = User {
                max_download_rate: check_rate("max_download_rate", &u.max_download_rate)
                    .map_err(|e| format!("{at}: {e}"))?,
                max_upload_rate: check_rate("max_upload_rate", &u.max_upload_rate)
                    .map_err(|e| format!("{at}: {e}"))?,
                name: u.name.clone(),
                hash: u.password,
                home,
                perms,
            };
            if let Some(params) = password::unusual_params(&user.hash) {
                warnings.push(format!(
                    "{at}: its hash has argon2 parameters {params}, not ringftp passwd's m=19456,t=2,p=1: a failed login for it takes another time than one for a name that does not exist (a client can tell that the account exists), and m is the memory (KiB) every check of it takes; hash its password again with `ringftp passwd`"
                ));
            }
            if by_name.insert(u.name.clone(), Arc::new(user)).is_some() {
                return Err(format!("{at}: duplicate user name {:?}", u.name));
            }
        }
        Ok(Users { by_name, warnings })
    }

    /// Warnings about a file that loaded: see [`Users::parse`].
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Reads and validates `file`, checking homes under `root`.
    pub fn load(file: &Path, root: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let root_dir = open_root_path(root)
            .map_err(|e| format!("--root {}: {}", root.display(), std::io::Error::from(e)))?;
        let home_ok = |home: &[u8]| -> Result<(), String> {
            let rel: CString = path::relative(home).ok_or("has a NUL byte")?;
            match open_home_path(&root_dir, &rel) {
                Ok(_) => Ok(()),
                // A directory above the home that the loading user may not
                // search (SIGHUP and a non-root start load as the service
                // user): the account loads, and
                // [`Users::unenterable_homes`] names it (its logins are
                // refused), rather than one account failing the whole file.
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => Ok(()),
                Err(e) => Err(match e.raw_os_error() {
                    Some(libc::ENOENT) => "no such directory under --root (create it first)".into(),
                    Some(libc::ENOTDIR) => "not a directory".into(),
                    Some(libc::EXDEV) | Some(libc::ELOOP) => {
                        "leads outside --root (through a symlink)".into()
                    }
                    _ => e.to_string(),
                }),
            }
        };
        Users::parse(&text, &home_ok).map_err(|e| format!("{}: {e}", file.display()))
    }

    /// Accounts whose home the calling thread's user cannot enter (no
    /// search permission on the home itself, or on a directory above it
    /// under `root`), one warning each, in name order. Such an account's
    /// logins are refused (`530 Home directory unavailable.`), as vsftpd
    /// and ProFTPD refuse a login whose home they cannot change into. Run
    /// as the service user: after the privilege drop, on SIGHUP, and by
    /// `--check-config` through [`crate::privileges::as_user`]. Homes that
    /// are missing are [`Users::load`]'s errors, not these.
    pub fn unenterable_homes(&self, root: &Path) -> Vec<String> {
        use rustix::fs::{accessat, Access, AtFlags};
        let user = crate::privileges::effective_ids();
        let root_dir = match open_root_path(root) {
            Ok(fd) => fd,
            // The root's own problems are start-up's errors.
            Err(_) => return Vec::new(),
        };
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let home = &self.by_name[name].home;
            let Some(rel) = path::relative(home) else {
                continue;
            };
            let entered = open_home_path(&root_dir, &rel).and_then(|fd| {
                accessat(&fd, ".", Access::EXEC_OK, AtFlags::EACCESS).map_err(std::io::Error::from)
            });
            if let Err(e) = entered {
                out.push(format!(
                    "account {name:?}: the service user ({user}) cannot enter its home {} ({e}): its logins will be refused (530); make the home and the directories above it searchable for that user",
                    String::from_utf8_lossy(home)
                ));
            }
        }
        out
    }

    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.by_name.get(name).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// `--root` opened O_PATH, to look homes up from: a root the service user
/// may enter but not read (0711, served with a warning) must not fail
/// every reload on SIGHUP.
fn open_root_path(root: &Path) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::OFlags;
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
}

/// An account's home (`rel`, relative to `root_dir`) opened O_PATH as a
/// login opens it: beneath the root, no symlink leaving it
/// ([`resolve::RESOLVE_HOME`]).
fn open_home_path(
    root_dir: &std::os::fd::OwnedFd,
    rel: &CString,
) -> std::io::Result<std::os::fd::OwnedFd> {
    sys::openat2_blocking(
        root_dir.as_raw_fd(),
        rel,
        libc::O_PATH | libc::O_DIRECTORY,
        resolve::RESOLVE_HOME,
    )
}

/// The accounts in force, shared by all shards. A login takes a snapshot
/// (one uncontended read lock); SIGHUP replaces the whole set at once.
#[derive(Debug)]
pub(crate) struct UsersDb {
    file: Option<PathBuf>,
    root: PathBuf,
    current: RwLock<Arc<Users>>,
}

impl UsersDb {
    /// Loads `file` (if any) for the first time.
    pub(crate) fn open(file: Option<PathBuf>, root: PathBuf) -> Result<UsersDb, String> {
        let users = match &file {
            Some(f) => Users::load(f, &root)?,
            None => Users::default(),
        };
        for w in users.warnings() {
            tracing::warn!("users file {w}");
        }
        Ok(UsersDb {
            file,
            root,
            current: RwLock::new(Arc::new(users)),
        })
    }

    pub(crate) fn snapshot(&self) -> Arc<Users> {
        self.current.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Re-reads the file: the number of accounts now in force, or `None`
    /// when the server runs without `--users` (nothing to re-read). On
    /// error the old set stays in force.
    pub(crate) fn reload(&self) -> Result<Option<usize>, String> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let users = Users::load(file, &self.root)?;
        for w in users.warnings() {
            tracing::warn!("users file {w}");
        }
        // SIGHUP runs as the service user: the homes as sessions see them.
        for w in users.unenterable_homes(&self.root) {
            tracing::warn!("users file {w}");
        }
        let n = users.len();
        if let Ok(mut g) = self.current.write() {
            *g = Arc::new(users);
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> String {
        password::hash(b"pw").unwrap()
    }

    #[test]
    fn a_hash_with_other_parameters_loads_with_a_warning() {
        let phc = password::hash_with_params(b"pw", 8, 1);
        let users = parse(&format!(
            "[[user]]\nname = \"tiny\"\npassword = \"{phc}\"\nhome = \"/\"\npermissions = [\"read\"]\n[[user]]\nname = \"usual\"\npassword = \"{}\"\nhome = \"/\"\npermissions = [\"read\"]\n",
            hash()
        ))
        .unwrap();
        assert_eq!(users.len(), 2);
        let [w] = users.warnings() else {
            panic!("{:?}", users.warnings())
        };
        assert!(w.contains("\"tiny\"") && w.contains("m=8,t=1,p=1"), "{w}");
    }

    fn parse(text: &str) -> Result<Users, String> {
        Users::parse(text, &|home| {
            if home == b"/missing" {
                Err("no such directory under --root".into())
            } else {
                Ok(())
            }
        })
    }

    fn user(name: &str, home: &str, perms: &str, extra: &str, h: &str) -> String {
        format!("[[user]]\nname = \"{name}\"\npassword = \"{h}\"\nhome = \"{home}\"\npermissions = [{perms}]\n{extra}\n")
    }

    #[test]
    fn good_file() {
        let h = hash();
        let text = user(
            "alice",
            "/alice",
            "\"list\", \"read\", \"write\"",
            "max_download_rate = \"10MiB\"",
            &h,
        ) + &user("bob", "/bob/", "\"list\"", "", &h);
        let users = parse(&text).unwrap();
        assert_eq!(users.len(), 2);
        let a = users.get("alice").unwrap();
        assert_eq!(a.home, b"/alice");
        assert!(a.perms.has(Perms::WRITE) && !a.perms.has(Perms::DELETE));
        assert_eq!(a.max_download_rate, Some(10 << 20));
        assert_eq!(users.get("bob").unwrap().home, b"/bob");
        assert!(users.get("carol").is_none());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_files_say_why() {
        let h = hash();
        let table: Vec<(String, &str)> = vec![
            (user("a", "/a", "", "colour = \"red\"", &h), "unknown field"),
            (user("a", "/a", "", "", "plaintext"), "password"),
            (user("a", "/a", "", "", "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "argon2id"),
            (user("a", "/../etc", "", "", &h), "outside --root"),
            (user("a", "a", "", "", &h), "absolute"),
            (user("a", "/missing", "", "", &h), "no such directory"),
            (user("a", "/a", "\"fly\"", "", &h), "unknown permission"),
            (user("a", "/a", "", "max_upload_rate = \"fast\"", &h), "max_upload_rate"),
            (user("a", "/a", "", "max_upload_rate = \"0\"", &h), "above zero"),
            (user("anonymous", "/a", "", "", &h), "reserved"),
            (user("a b", "/a", "", "", &h), "space"),
            (user("a", "/a", "", "", &h) + &user("a", "/b", "", "", &h), "duplicate"),
            ("[[user]]\nname = \"a\"\n".to_string(), "missing field"),
            ("nonsense = [".to_string(), ""),
        ];
        for (text, want) in table {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(want), "{text}\n=> {err}");
        }
    }
}
