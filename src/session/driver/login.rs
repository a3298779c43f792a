//! USER/PASS: the driver's side of a login. The decision is
//! [`crate::auth::login::decide`]'s; here the password check runs on the
//! blocking pool (argon2 takes tens of milliseconds, and never on a shard),
//! the account's home is opened, and the verdict becomes replies, logs and
//! delays.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::{lossy, Conn, Flow, Home, Loud};
use crate::auth::ban::{CheckGuard, Start};
use crate::auth::login::{self, Attempt, LoginPolicy, Refusal, Verdict, Verifier};
use crate::auth::password;
use crate::engine::sys;
use crate::metrics::counters::LoginOutcome;
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::vfs::{path, resolve, VfsError};

/// argon2 on the blocking pool, at most the shard's `password_checks` at
/// once: each check holds about 19 MiB for tens of milliseconds, so a
/// login storm (or anyone guessing names) queues here instead of making
/// the server hold gigabytes. Waiting queues only this login; other
/// sessions' commands and transfers go on.
struct Argon2<'a> {
    checks: &'a Semaphore,
}

impl Verifier for Argon2<'_> {
    async fn verify<'b>(
        &self,
        hash: String,
        password: Vec<u8>,
        mut start: impl FnMut() -> Start<'b>,
    ) -> Option<(bool, CheckGuard<'b>)> {
        /// How long a check that must wait for others of its address
        /// sleeps before it asks again (a check takes tens of ms).
        const RETRY: std::time::Duration = std::time::Duration::from_millis(10);
        loop {
            let permit = self.checks.acquire().await;
            match start() {
                Start::Go(guard) => {
                    let ok =
                        tokio::task::spawn_blocking(move || password::verify(&hash, &password))
                            .await;
                    drop(permit);
                    return Some((ok.unwrap_or(false), guard));
                }
                Start::Banned => return None,
                // The slot goes to another address's check meanwhile.
                Start::Wait => {
                    drop(permit);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

impl Conn {
    /// USER/PASS. Anonymous (unless --no-anonymous) is accepted with any
    /// password; accounts are checked with argon2 off the shard. Failures
    /// cost a growing delay, close the session after --max-login-attempts,
    /// and count towards the address's --login-ban.
    pub(super) async fn check_login(&mut self, user: String, password: Vec<u8>) -> Flow {
        let ip = self.peer.ip();
        let policy = LoginPolicy {
            anonymous: self.ctx.config.anonymous,
            max_attempts: self.ctx.config.max_login_attempts,
        };
        let users = self.ctx.users.snapshot();
        let verifier = Argon2 {
            checks: &self.ctx.password_checks,
        };
        let attempt = Attempt {
            ip,
            user: &user,
            password,
            failed_before: self.session.failed_logins(),
            now: Instant::now(),
        };
        let verdict = login::decide(policy, &users, &self.ctx.bans, &verifier, attempt).await;
        let metrics = &self.ctx.metrics;
        match verdict {
            Verdict::Accepted(account) if account.anonymous => {
                tracing::debug!(user = %user, "anonymous login");
                metrics.login(LoginOutcome::Anonymous);
                self.row.set_user(Some(&account.name));
                self.home = None;
                self.searched.clear();
                self.session.logged_in(account);
                self.reply(Reply::new(LOGGED_IN, "Login successful.")).await
            }
            Verdict::Accepted(account) => match self.open_home(&account.home).await {
                Ok(home) => {
                    tracing::info!(user = %user, home = %lossy(&account.home), "login");
                    metrics.login(LoginOutcome::Ok);
                    self.row.set_user(Some(&account.name));
                    self.home = Some(Home {
                        ring: std::rc::Rc::new(home.clone()),
                        blocking: home,
                    });
                    self.session.logged_in(account);
                    self.reply(Reply::new(LOGGED_IN, "Login successful.")).await
                }
                Err(e @ VfsError::Exhausted(_)) => {
                    // The server is out of fds or memory: transient, and
                    // not the account's fault. PASS has no transient reply
                    // but 421, which closes the session (RFC 959 section
                    // 5.4); a 530 would tell the client its login is bad,
                    // and curl and lftp give up on it.
                    metrics.login(LoginOutcome::HomeUnavailable);
                    self.session.login_aborted();
                    self.log_refusal_of(
                        Some(&user),
                        self.loud_if_exhausted(true),
                        SERVICE_NOT_AVAILABLE,
                        None,
                        format_args!("login refused: home {} unusable: {e}", lossy(&account.home)),
                    );
                    let _ = self
                        .send_reply(Reply::new(
                            SERVICE_NOT_AVAILABLE,
                            "Server out of resources; try again later.",
                        ))
                        .await;
                    Flow::Close
                }
                Err(e) => {
                    tracing::error!(user = %user, command = "PASS", code = NOT_LOGGED_IN, "login refused: home {} unusable: {e}", lossy(&account.home));
                    metrics.login(LoginOutcome::HomeUnavailable);
                    self.session.login_aborted();
                    self.send_reply(Reply::new(NOT_LOGGED_IN, "Home directory unavailable."))
                        .await
                }
            },
            Verdict::Refused {
                why: Refusal::Banned,
                ..
            } => {
                metrics.login(LoginOutcome::Banned);
                self.log_refusal_of(
                    Some(&user),
                    Loud::Warn,
                    SERVICE_NOT_AVAILABLE,
                    None,
                    format_args!(
                        "login refused: {ip} is banned after repeated failed logins (--login-ban)"
                    ),
                );
                let _ = self
                    .send_reply(Reply::new(
                        SERVICE_NOT_AVAILABLE,
                        "Too many failed logins from your address; try again later.",
                    ))
                    .await;
                Flow::Close
            }
            Verdict::Refused {
                why,
                attempt,
                close,
                delay,
                banned_now,
            } => {
                metrics.login(match why {
                    Refusal::NoSuchUser => LoginOutcome::UnknownUser,
                    Refusal::AnonymousDisabled => LoginOutcome::AnonymousDisabled,
                    Refusal::WrongPassword | Refusal::Banned => LoginOutcome::BadPassword,
                });
                self.session.login_refused();
                let code = if close {
                    SERVICE_NOT_AVAILABLE
                } else {
                    NOT_LOGGED_IN
                };
                self.log_refusal_of(
                    Some(&user),
                    Loud::Warn,
                    code,
                    None,
                    format_args!(
                        "failed login from {ip}: {} (attempt {attempt})",
                        why.reason()
                    ),
                );
                if banned_now {
                    tracing::warn!("{ip} banned: too many failed logins (--login-ban)");
                }
                if close {
                    let _ = self
                        .send_reply(Reply::new(
                            SERVICE_NOT_AVAILABLE,
                            "Too many failed login attempts; closing.",
                        ))
                        .await;
                    return Flow::Close;
                }
                // A growing delay makes guessing slow without locking anyone out.
                tokio::time::sleep(delay).await;
                self.send_reply(Reply::new(NOT_LOGGED_IN, "Login incorrect."))
                    .await
            }
        }
    }

    /// Opens an account's home under --root, race-free, and checks that
    /// the service user may enter it: an O_PATH open needs search
    /// permission only on the directories above. A home it cannot enter
    /// refuses the login, as vsftpd and ProFTPD refuse one whose home they
    /// cannot change into, rather than answering 550 to every command
    /// after a 230 (start-up warns of such accounts:
    /// [`crate::auth::users::Users::unenterable_homes`]).
    async fn open_home(&self, home: &[u8]) -> Result<Arc<std::os::fd::OwnedFd>, VfsError> {
        use rustix::fs::{accessat, Access, AtFlags};
        let rel = path::relative(home).ok_or(VfsError::BadName)?;
        let fd = sys::openat2(
            self.ctx.root.clone(),
            rel,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            resolve::RESOLVE_HOME,
        )
        .await
        .map_err(VfsError::from_io)?;
        // A permission check from an inode already open: no I/O.
        accessat(&fd, ".", Access::EXEC_OK, AtFlags::EACCESS)
            .map_err(|e| VfsError::from_io(e.into()))?;
        Ok(Arc::new(fd))
    }
}
