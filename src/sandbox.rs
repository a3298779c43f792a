//! The Landlock sandbox (`--sandbox auto|required|off`): after start-up
//! the process confines itself to the files it serves and the few it must
//! re-read, so that even a bug in path resolution cannot reach anything
//! else on the filesystem; the kernel refuses the open.
//!
//! What stays reachable ([`Policy::for_server`]):
//! - the served root: read; also write (create, remove, rename) when
//!   `--users` is given, since accounts may upload;
//! - the directories of the files SIGHUP re-reads (users file, config
//!   file, banner file, and whatever [`Policy::readable_files`] is given,
//!   such as TLS certificates): read-only, files only. The rule is on the
//!   directory, not the file: editors and deploy tools replace a file by
//!   renaming a new one over it, and a rule on the old inode would not
//!   cover the new file;
//! - the xferlog's directory: create and append, so a rotated log can be
//!   opened anew;
//! - the resolver's files (`/etc/hosts`, `/etc/resolv.conf`, ...) to look
//!   host names up again on SIGHUP.
//!
//! Landlock restricts the calling thread and the threads it starts later,
//! so [`Policy::apply`] runs on the main thread before the shards start.
//! The io_uring rings are created afterwards by the shard threads: their
//! opens (inline or on io-wq workers, which are threads of the shard) are
//! checked against the same domain. Network rules are not used: active
//! mode connects to whatever port a client names.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, BitFlags, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};

use crate::cli::SandboxMode;

/// The Landlock ABI whose filesystem rights ringftp handles (and was
/// tested with): V5 adds IOCTL on devices to V3's truncate and V2's
/// cross-directory rename.
const ABI_HANDLED: ABI = ABI::V5;

/// Files a resolver reads to look up a host name (glibc's getaddrinfo).
const RESOLVER_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
];

/// One rule: a file or directory and what may be done beneath it.
struct Grant {
    target: Target,
    access: BitFlags<AccessFs>,
    /// What the log says it is for.
    why: String,
}

enum Target {
    Path(PathBuf),
    Fd(OwnedFd),
}

/// What the sandbox allows. Build it with [`Policy::for_server`] (or
/// [`Policy::new`] and the adders), then [`Policy::apply`] it.
#[derive(Default)]
pub(crate) struct Policy {
    grants: Vec<Grant>,
}

/// How the sandbox went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `--sandbox off`.
    Off,
    /// Every handled right is enforced.
    Full,
    /// The kernel enforces only part (an older Landlock ABI).
    Partial,
    /// Landlock is not available: no sandbox.
    Unavailable(String),
}

fn read_tree(abi: ABI) -> BitFlags<AccessFs> {
    AccessFs::ReadFile | AccessFs::ReadDir | (AccessFs::from_all(abi) & AccessFs::IoctlDev)
}

/// The rights an account that may upload needs: create, write, truncate
/// (STOR over a file), rename across directories, remove. Landlock counts
/// a rename as making an entry of the moved kind in the target directory,
/// so RNFR/RNTO of a symlink, FIFO or socket needs MakeSym, MakeFifo and
/// MakeSock (no FTP command creates one; device nodes stay out).
fn write_tree() -> BitFlags<AccessFs> {
    AccessFs::WriteFile
        | AccessFs::MakeReg
        | AccessFs::MakeDir
        | AccessFs::MakeSym
        | AccessFs::MakeFifo
        | AccessFs::MakeSock
        | AccessFs::RemoveFile
        | AccessFs::RemoveDir
        | AccessFs::Refer
        | AccessFs::Truncate
}

impl Policy {
    pub(crate) fn new() -> Policy {
        Policy::default()
    }

    /// The served root (an open fd on it): read, and write too when
    /// `writable`.
    pub(crate) fn served_root(
        &mut self,
        root: BorrowedFd<'_>,
        writable: bool,
    ) -> Result<(), String> {
        let fd = root
            .try_clone_to_owned()
            .map_err(|e| format!("sandbox: the root: {e}"))?;
        let mut access = read_tree(ABI_HANDLED);
        if writable {
            access |= write_tree();
        }
        self.grants.push(Grant {
            target: Target::Fd(fd),
            access,
            why: if writable {
                "the root, read and write (accounts may upload)".into()
            } else {
                "the root, read-only".into()
            },
        });
        Ok(())
    }

    /// Files to read after start-up (re-read on SIGHUP): each file's
    /// directory becomes readable, files only (see the module docs). The
    /// TLS work adds its certificate and key files here.
    pub(crate) fn readable_files(&mut self, files: &[PathBuf]) {
        for f in files {
            // A symlink (certbot's live/cert.pem -> ../archive/cert1.pem)
            // is read through its target's directory as well, where a
            // renewal puts the next file.
            let real = f.canonicalize().ok().map(|r| parent_dir(&r));
            for dir in std::iter::once(parent_dir(f)).chain(real) {
                let already = self.grants.iter().any(|g| match &g.target {
                    Target::Path(p) => *p == dir && g.access == AccessFs::ReadFile,
                    Target::Fd(_) => false,
                });
                if already {
                    continue;
                }
                self.grants.push(Grant {
                    target: Target::Path(dir),
                    access: AccessFs::ReadFile.into(),
                    why: format!("to re-read {}", f.display()),
                });
            }
        }
    }

    /// A log file appended to, and created anew after rotation: its
    /// directory allows creating and writing files.
    pub(crate) fn log_file(&mut self, file: &Path) {
        self.grants.push(Grant {
            target: Target::Path(parent_dir(file)),
            access: AccessFs::WriteFile | AccessFs::MakeReg,
            why: format!("to append to {}", file.display()),
        });
    }

    /// One file, read-only (a file that need not exist is skipped).
    fn read_file_if_present(&mut self, file: &str, why: &str) {
        if Path::new(file).exists() {
            self.grants.push(Grant {
                target: Target::Path(file.into()),
                access: AccessFs::ReadFile.into(),
                why: why.into(),
            });
        }
    }

    /// The policy of `ringftp serve`: see the module docs. `extra_readable`
    /// are more files to read after start-up (TLS certificates and keys).
    pub(crate) fn for_server(
        config: &crate::config::Config,
        root: BorrowedFd<'_>,
        extra_readable: &[PathBuf],
    ) -> Result<Policy, String> {
        let mut p = Policy::new();
        p.served_root(root, config.users.is_some())?;
        p.readable_files(&reread_files(config, extra_readable));
        if let Some(x) = &config.xferlog {
            p.log_file(x);
        }
        // Host names in --pasv-address(-map) and --listen are resolved
        // again on SIGHUP. (NSS modules loaded at run time, such as
        // nss-resolve, stay outside: see docs/operations.md.)
        for f in RESOLVER_FILES {
            p.read_file_if_present(f, "to resolve host names on SIGHUP");
        }
        Ok(p)
    }

    /// What each rule allows, for the log.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.grants
            .iter()
            .map(|g| {
                let what = match &g.target {
                    Target::Path(p) => p.display().to_string(),
                    Target::Fd(_) => "--root".into(),
                };
                let rights: Vec<String> = g.access.iter().map(|a| format!("{a:?}")).collect();
                format!("{what}: {} ({})", rights.join("+"), g.why)
            })
            .collect()
    }

    /// Confines the calling thread and every thread it starts from now on
    /// (call it before starting any). `Required` fails unless every
    /// handled right is enforced; `Auto` takes what the kernel offers.
    pub(crate) fn apply(self, mode: SandboxMode) -> Result<Outcome, String> {
        if mode == SandboxMode::Off {
            return Ok(Outcome::Off);
        }
        let mut created = Ruleset::default()
            .handle_access(AccessFs::from_all(ABI_HANDLED))
            .and_then(|r| r.create())
            .map_err(|e| format!("sandbox: {e}"))?;
        for g in self.grants {
            let rule = match g.target {
                Target::Fd(fd) => created.add_rule(PathBeneath::new(fd, g.access)),
                Target::Path(p) => {
                    let fd = PathFd::new(&p)
                        .map_err(|e| format!("sandbox: {} ({}): {e}", p.display(), g.why))?;
                    created.add_rule(PathBeneath::new(fd, g.access))
                }
            };
            created = rule.map_err(|e| format!("sandbox: {e}"))?;
        }
        let status = created
            .restrict_self()
            .map_err(|e| format!("sandbox: {e}"))?;
        let outcome = match status.ruleset {
            RulesetStatus::FullyEnforced => Outcome::Full,
            RulesetStatus::PartiallyEnforced => Outcome::Partial,
            RulesetStatus::NotEnforced => Outcome::Unavailable(match status.landlock {
                LandlockStatus::NotEnabled => "Landlock is built into the kernel but not enabled (add landlock to the lsm= boot parameter)".into(),
                LandlockStatus::NotImplemented => "the kernel has no Landlock (Linux 5.13 or later, CONFIG_SECURITY_LANDLOCK)".into(),
                other => format!("Landlock could not be enforced ({other:?})"),
            }),
        };
        if mode == SandboxMode::Required && outcome != Outcome::Full {
            return Err(format!(
                "--sandbox required: {}; use --sandbox auto to run without it",
                match &outcome {
                    Outcome::Unavailable(why) => why.clone(),
                    _ => format!(
                        "this kernel's Landlock enforces only part of the rules (ringftp handles ABI {})",
                        ABI_HANDLED as i32
                    ),
                }
            ));
        }
        Ok(outcome)
    }
}

/// The directory a file lives in (`.` for a bare name).
fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The files SIGHUP re-reads after start-up: the users file, the
/// `--config` file, a `--banner @FILE`, and `extra_readable` (the TLS
/// certificate and key). The sandbox keeps their directories readable;
/// start-up tries each as the service user.
pub(crate) fn reread_files(
    config: &crate::config::Config,
    extra_readable: &[PathBuf],
) -> Vec<PathBuf> {
    config
        .users
        .iter()
        .chain(&config.config_file)
        .chain(&config.banner_file)
        .chain(extra_readable)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const CHILD: &str = "RINGFTP_SANDBOX_TEST_DIR";

    /// The kernel, not ringftp's path checks, refuses what lies outside:
    /// an fd on a directory outside the sandbox, opened before it, still
    /// opens nothing there afterwards, through plain openat or through
    /// openat2 on an io_uring. Runs in a child process (this same test
    /// binary), since a sandbox cannot be left.
    #[test]
    fn the_kernel_refuses_opens_outside_the_sandbox() {
        if let Ok(dir) = std::env::var(CHILD) {
            return child(Path::new(&dir));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("root/inside.txt"), b"in").unwrap();
        std::fs::write(dir.path().join("outside/secret.txt"), b"out").unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sandbox::tests::the_kernel_refuses_opens_outside_the_sandbox",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("sandbox child: all checks passed"), "{text}");
    }

    fn child(dir: &Path) {
        use std::os::fd::{AsFd, AsRawFd};
        let root: OwnedFd = std::fs::File::open(dir.join("root")).unwrap().into();
        let outside: OwnedFd = std::fs::File::open(dir.join("outside")).unwrap().into();
        let mut p = Policy::new();
        p.served_root(root.as_fd(), false).unwrap();
        assert_eq!(p.apply(SandboxMode::Required), Ok(Outcome::Full));

        let denied = |r: std::io::Result<Vec<u8>>| {
            assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::PermissionDenied)
        };
        assert_eq!(std::fs::read(dir.join("root/inside.txt")).unwrap(), b"in");
        denied(std::fs::read(dir.join("outside/secret.txt")));
        denied(std::fs::read("/etc/hostname"));
        // Read-only root: no uploads.
        assert_eq!(
            std::fs::write(dir.join("root/new.txt"), b"x")
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::PermissionDenied
        );
        // Relative to an fd opened before the sandbox, with no path check
        // of ours in the way.
        let plain = rustix::fs::openat(
            &outside,
            "secret.txt",
            rustix::fs::OFlags::RDONLY,
            rustix::fs::Mode::empty(),
        );
        assert_eq!(plain.unwrap_err(), rustix::io::Errno::ACCESS);
        // The same through the ring the shards use.
        let outside_ref: crate::engine::sys::FdRef = std::rc::Rc::new(outside);
        tokio_uring::start(async move {
            let r = crate::engine::sys::openat2(
                outside_ref.clone(),
                std::ffi::CString::new("secret.txt").unwrap(),
                libc::O_RDONLY,
                0,
                0,
            )
            .await;
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EACCES));
            let root_ref: crate::engine::sys::FdRef = std::rc::Rc::new(root);
            let ok = crate::engine::sys::openat2(
                root_ref,
                std::ffi::CString::new("inside.txt").unwrap(),
                libc::O_RDONLY,
                0,
                0,
            )
            .await;
            assert!(ok.unwrap().as_raw_fd() >= 0);
        });
        println!("sandbox child: all checks passed");
    }

    #[test]
    fn server_policy_rules() {
        let mut p = Policy::new();
        p.readable_files(&[
            PathBuf::from("/etc/ringftp/users.toml"),
            PathBuf::from("/etc/ringftp/ringftp.toml"),
            PathBuf::from("banner.txt"),
        ]);
        p.log_file(Path::new("/var/log/ringftp/xferlog"));
        let d = p.describe();
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d[0].starts_with("/etc/ringftp: "), "{d:?}");
        assert!(d[1].starts_with(".: "), "{d:?}");
        assert!(d[2].starts_with("/var/log/ringftp: "), "{d:?}");
    }
}
