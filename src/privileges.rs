//! `--user USER[:GROUP]`: after start-up, ringftp gives up root for good.
//!
//! Everything that needs root (binding port 21, opening the root, the
//! users file and the xferlog) happens first; then, still on the only
//! thread, the process sets its supplementary groups, gid and uid (real,
//! effective and saved, so there is no way back) and `PR_SET_NO_NEW_PRIVS`.
//! The set*id calls are the kernel's, which are per thread on Linux
//! (glibc broadcasts them to every thread; the raw calls do not): doing it
//! before the first thread starts is what makes the whole process drop, and
//! [`drop_to`] refuses to run once a second thread exists. Every thread
//! started later (the shards, their blocking pools, the signal thread)
//! inherits the dropped credentials.
//!
//! `--active-port-20` binds port 20 for each active data connection, long
//! after the drop. For it, and only for it, the process keeps
//! `CAP_NET_BIND_SERVICE` (permitted and effective) across the uid change
//! (`PR_SET_KEEPCAPS`) and removes every other capability from its
//! bounding set; without the flag it keeps none.
//!
//! Started as root without `--user`, ringftp never serves as root: it
//! drops to the system's `ftp` account if there is one, else `nobody`.

use std::ffi::CString;

use nix::unistd::{Group, User};
use rustix::process::{Gid, Uid};
use rustix::thread::{self, CapabilitySet, CapabilitySets};

/// The account the process drops to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The name (or number) as given or found, for the logs.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the user's groups (as `initgroups` would set
    /// them), or only the given group when `USER:GROUP` names one.
    pub groups: Vec<u32>,
}

/// What to do about privileges, decided from `--user` and who we are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Not root, and not asked to change: keep the current ids.
    Keep,
    /// Root was asked for explicitly (`--user root`).
    StayRoot,
    /// Drop from root to `Target`; `defaulted` when `--user` was not given.
    Drop { target: Target, defaulted: bool },
}

/// Splits `USER[:GROUP]`.
fn split_spec(spec: &str) -> Result<(&str, Option<&str>), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(format!(
            "--user {spec:?}: expected USER or USER:GROUP (names or numbers)"
        ));
    }
    Ok((user, group))
}

fn lookup_user(user: &str) -> Result<Option<User>, String> {
    let found = match user.parse::<u32>() {
        Ok(n) => User::from_uid(nix::unistd::Uid::from_raw(n)),
        Err(_) => User::from_name(user),
    };
    found.map_err(|e| format!("--user {user}: looking up the account: {e}"))
}

fn lookup_group(group: &str) -> Result<u32, String> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    match Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("--user ...:{group}: no such group")),
        Err(e) => Err(format!("--user ...:{group}: looking up the group: {e}")),
    }
}

/// Resolves `USER[:GROUP]` to ids (numbers need no account, but a number
/// without an account needs `:GROUP`).
pub(crate) fn resolve(spec: &str) -> Result<Target, String> {
    let (user, group) = split_spec(spec)?;
    let account = lookup_user(user)?;
    let explicit_gid = group.map(lookup_group).transpose()?;
    let Some(account) = account else {
        let uid = user
            .parse::<u32>()
            .map_err(|_| format!("--user {user}: no such user"))?;
        let gid = explicit_gid.ok_or_else(|| {
            format!("--user {user}: uid {user} has no account, so give its group too (--user {user}:GROUP)")
        })?;
        return Ok(Target {
            name: user.to_string(),
            uid,
            gid,
            groups: vec![gid],
        });
    };
    let uid = account.uid.as_raw();
    let (gid, groups) = match explicit_gid {
        Some(g) => (g, vec![g]),
        None => {
            let gid = account.gid.as_raw();
            let groups = CString::new(account.name.clone())
                .ok()
                .and_then(|c| nix::unistd::getgrouplist(&c, account.gid).ok())
                .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_else(|| vec![gid]);
            (gid, groups)
        }
    };
    Ok(Target {
        name: account.name,
        uid,
        gid,
        groups,
    })
}

/// Decides what to do for `--user spec` when running with effective uid
/// `euid`.
pub(crate) fn plan(spec: Option<&str>, euid: u32) -> Result<Plan, String> {
    match spec {
        None if euid != 0 => Ok(Plan::Keep),
        None => {
            for name in ["ftp", "nobody"] {
                if let Ok(Some(_)) = User::from_name(name) {
                    return Ok(Plan::Drop {
                        target: resolve(name)?,
                        defaulted: true,
                    });
                }
            }
            Err("running as root, and neither an `ftp` nor a `nobody` account exists to serve as: give --user USER (or --user root to serve as root)".into())
        }
        Some(spec) => {
            let target = resolve(spec)?;
            match (euid, target.uid) {
                (0, 0) => Ok(Plan::StayRoot),
                (0, _) => Ok(Plan::Drop {
                    target,
                    defaulted: false,
                }),
                (me, uid) if me == uid => Ok(Plan::Keep),
                (me, _) => Err(format!(
                    "--user {spec}: only root can switch to another user (running as uid {me}); start ringftp as root, or leave --user out"
                )),
            }
        }
    }
}

/// "uid N, gid M": the calling thread's effective ids, for messages about
/// what the service user may do.
pub(crate) fn effective_ids() -> String {
    format!(
        "uid {}, gid {}",
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw()
    )
}

/// How many threads the process has, from `/proc/self/task` (`None` when
/// /proc is not there to ask).
pub(crate) fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Drops to `target` for good: supplementary groups, then gid, then uid
/// (real, effective, saved), no new privileges. With `keep_bind_service`
/// the process keeps `CAP_NET_BIND_SERVICE` and nothing else; without it,
/// no capability. Must run before any other thread exists (the calls are
/// per thread); errors otherwise.
pub(crate) fn drop_to(target: &Target, keep_bind_service: bool) -> Result<(), String> {
    if let Some(n) = thread_count().filter(|&n| n > 1) {
        return Err(format!(
            "internal error: privileges must be dropped before any thread starts ({n} threads running)"
        ));
    }
    let io = |what: &'static str| {
        move |e: rustix::io::Errno| format!("dropping to {}: {what}: {e}", target.name)
    };
    let keep = if keep_bind_service {
        CapabilitySet::NET_BIND_SERVICE
    } else {
        CapabilitySet::empty()
    };
    // While still root (CAP_SETPCAP): no capability outside `keep` can ever
    // come back, not even through a set-uid or file-capability exec.
    for bit in 0..64 {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if keep.contains(cap) {
            continue;
        }
        match thread::remove_capability_from_bounding_set(cap) {
            Ok(()) => {}
            // Past the kernel's last capability.
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => return Err(io("PR_CAPBSET_DROP")(e)),
        }
    }
    thread::clear_ambient_capability_set().map_err(io("clearing ambient capabilities"))?;
    thread::set_keep_capabilities(!keep.is_empty()).map_err(io("PR_SET_KEEPCAPS"))?;
    switch_ids(target).map_err(|e| format!("dropping to {}: {e}", target.name))?;
    // setresuid away from root cleared the effective set (and, without
    // KEEPCAPS, the permitted one): raise what is kept again.
    thread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(io("capset"))?;
    thread::set_keep_capabilities(false).map_err(io("PR_SET_KEEPCAPS"))?;
    thread::set_no_new_privs(true).map_err(io("PR_SET_NO_NEW_PRIVS"))?;
    // No way back: getting root again must fail.
    if target.uid != 0 && thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).is_ok() {
        return Err(format!(
            "dropping to {}: root could be regained; refusing to serve",
            target.name
        ));
    }
    Ok(())
}

/// Runs `f` on a thread of its own that has switched to `target`'s
/// groups, gid and uid, and returns what it returns: how `--check-config`
/// tries what the service user will be able to do, without dropping the
/// process's own privileges (the ids are per thread at the syscall level;
/// the thread and its ids end with `f`). Errors: the switch failed (not
/// root), or `f` panicked.
pub(crate) fn as_user<T: Send + 'static>(
    target: &Target,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let target = target.clone();
    let name = target.name.clone();
    std::thread::spawn(move || -> Result<T, String> {
        switch_ids(&target)?;
        Ok(f())
    })
    .join()
    .map_err(|_| format!("checking as {name}: the check panicked"))?
    .map_err(|e| format!("checking as {name}: {e}"))
}

/// Switches the calling thread to `target`'s supplementary groups, then
/// its gid, then its uid (real, effective and saved): the order in which
/// each step still has the privilege the next needs. Errors name the
/// call that failed.
fn switch_ids(target: &Target) -> Result<(), String> {
    let io = |what: &'static str| move |e: rustix::io::Errno| format!("{what}: {e}");
    let groups: Vec<Gid> = target.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    thread::set_thread_groups(&groups).map_err(io("setgroups"))?;
    let gid = Gid::from_raw(target.gid);
    thread::set_thread_res_gid(gid, gid, gid).map_err(io("setresgid"))?;
    let uid = Uid::from_raw(target.uid);
    thread::set_thread_res_uid(uid, uid, uid).map_err(io("setresuid"))
}

/// Sets `PR_SET_NO_NEW_PRIVS` for a process that keeps its ids.
pub(crate) fn no_new_privs() -> Result<(), String> {
    thread::set_no_new_privs(true).map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))
}

/// For a process that keeps its ids (started as the service user, e.g. by
/// systemd with `AmbientCapabilities=CAP_NET_BIND_SERVICE`): once the
/// listeners are bound, gives up every capability it was started with but
/// `CAP_NET_BIND_SERVICE` with `keep_bind_service` (`--active-port-20`),
/// as [`drop_to`] does for a process started as root. Lowering one's own
/// sets needs no privilege. Returns the capabilities given up (permitted
/// ones), for the log. Must run before any other thread exists.
pub(crate) fn shed_capabilities(keep_bind_service: bool) -> Result<CapabilitySet, String> {
    let io = |what: &'static str| move |e: rustix::io::Errno| format!("{what}: {e}");
    let keep = if keep_bind_service {
        CapabilitySet::NET_BIND_SERVICE
    } else {
        CapabilitySet::empty()
    };
    let now = thread::capabilities(None).map_err(io("capget"))?;
    thread::clear_ambient_capability_set().map_err(io("clearing ambient capabilities"))?;
    thread::set_capabilities(
        None,
        CapabilitySets {
            effective: now.effective & keep,
            permitted: now.permitted & keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(io("capset"))?;
    Ok(now.permitted - keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(split_spec("ftp").unwrap(), ("ftp", None));
        assert_eq!(split_spec("ftp:adm").unwrap(), ("ftp", Some("adm")));
        for bad in ["", ":x", "x:"] {
            assert!(split_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolving_accounts() {
        // Every Linux system has root (uid 0, gid 0).
        let t = resolve("root").unwrap();
        assert_eq!((t.uid, t.gid), (0, 0));
        assert!(t.groups.contains(&0));
        let t = resolve("0:0").unwrap();
        assert_eq!((t.uid, t.gid), (0, 0));
        let t = resolve("4000123:4000124").unwrap();
        assert_eq!((t.uid, t.gid, t.groups), (4000123, 4000124, vec![4000124]));
        let e = resolve("4000123").unwrap_err();
        assert!(e.contains(":GROUP"), "{e}");
        let e = resolve("no-such-user-ringftp").unwrap_err();
        assert!(e.contains("no such user"), "{e}");
        let e = resolve("root:no-such-group-ringftp").unwrap_err();
        assert!(e.contains("no such group"), "{e}");
    }

    #[test]
    fn plans() {
        assert_eq!(plan(None, 1000).unwrap(), Plan::Keep);
        assert_eq!(plan(Some("root"), 0).unwrap(), Plan::StayRoot);
        match plan(None, 0).unwrap() {
            Plan::Drop { target, defaulted } => {
                assert!(defaulted);
                assert!(["ftp", "nobody"].contains(&target.name.as_str()));
                assert_ne!(target.uid, 0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(plan(Some("4000123:7"), 4000123).unwrap(), Plan::Keep);
        let e = plan(Some("4000123:7"), 1000).unwrap_err();
        assert!(e.contains("only root"), "{e}");
    }
}
