//! The login policy (USER/PASS), with no I/O: which names are anonymous,
//! what a password is checked against, and what a failure costs.
//!
//! - `anonymous` and `ftp` (any case) are the anonymous names, as in
//!   vsftpd and wu-ftpd; any password is accepted for them unless
//!   `--no-anonymous`.
//! - An unknown name is checked against a decoy hash, so it costs the same
//!   argon2 time as a known one and timing does not tell which accounts
//!   exist.
//! - Each failure waits a little longer before its 530 (250 ms times the
//!   attempt, at most 3 s), the session is closed with 421 after
//!   `--max-login-attempts`, and every failure counts towards the client
//!   address's `--login-ban` ([`super::ban`]).
//!
//! The password check itself is behind [`Verifier`] (the driver's runs
//! argon2 on the blocking pool; tests pass a table), and time is passed
//! in, so every rule here is table-tested.

use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::ban::{BanList, BanState, CheckGuard, Start};
use super::password;
use super::perms::Perms;
use super::users::{User, Users};

/// The delay before the 530 of the `n`th failed attempt grows by this much.
const DELAY_STEP: Duration = Duration::from_millis(250);
/// The longest delay before a 530.
const DELAY_MAX: Duration = Duration::from_secs(3);

/// True for the names that log in anonymously (`anonymous`, `ftp`; any
/// case), as vsftpd and wu-ftpd accept them.
pub fn is_anonymous_name(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

/// The server-wide login rules (from `--no-anonymous` and
/// `--max-login-attempts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Whether anonymous logins are accepted.
    pub anonymous: bool,
    /// Failed logins per session before it is closed (at least 1).
    pub max_attempts: u32,
}

/// Who a logged-in session is: what it may do, where its `/` is and how
/// fast it may go. Owned by the session state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The name given to USER.
    pub name: String,
    /// Logged in with an anonymous name (xferlog's access mode `a`).
    pub anonymous: bool,
    /// The session's `/` as an absolute virtual path under `--root`
    /// (`/` for anonymous sessions).
    pub home: Vec<u8>,
    /// What the session may do.
    pub perms: Perms,
    /// Download cap in bytes per second, if any.
    pub max_download_rate: Option<u64>,
    /// Upload cap in bytes per second, if any.
    pub max_upload_rate: Option<u64>,
}

impl Account {
    /// An anonymous session: `--root` as `/`, list and read only, no caps
    /// of its own.
    pub fn anonymous(name: &str) -> Account {
        Account {
            name: name.to_string(),
            anonymous: true,
            home: b"/".to_vec(),
            perms: Perms::anonymous(),
            max_download_rate: None,
            max_upload_rate: None,
        }
    }

    /// A session of the account `user` from the users file.
    pub fn from_user(user: &User) -> Account {
        Account {
            name: user.name.clone(),
            anonymous: false,
            home: user.home.clone(),
            perms: user.perms,
            max_download_rate: user.max_download_rate,
            max_upload_rate: user.max_upload_rate,
        }
    }

    /// True when the session's `/` is `--root` itself.
    pub fn home_is_root(&self) -> bool {
        self.home == b"/"
    }
}

/// Why a login was refused (logged; the client is told less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address is under `--login-ban`; checked before the password.
    Banned,
    /// An anonymous name while `--no-anonymous` is set.
    AnonymousDisabled,
    /// No account of that name.
    NoSuchUser,
    /// The account exists; the password does not match.
    WrongPassword,
}

impl Refusal {
    /// The reason as the log line gives it.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Banned => "the address is banned after repeated failed logins (--login-ban)",
            Refusal::AnonymousDisabled => "anonymous logins are disabled (--no-anonymous)",
            Refusal::NoSuchUser => "no such user",
            Refusal::WrongPassword => "wrong password",
        }
    }
}

/// What the policy decided about one PASS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Logged in (the driver still opens the account's home).
    Accepted(Account),
    /// Refused: with `close` the session gets 421 and is closed, else a
    /// 530 after `delay`.
    Refused {
        /// Why, for the log (the client is told only 530 or 421).
        why: Refusal,
        /// This session's failed logins including this one; for a ban, the
        /// failures before it (a banned PASS is not an attempt).
        attempt: u32,
        /// Close the session with 421: the address is banned or the
        /// session has used up its attempts.
        close: bool,
        /// How long to wait before the 530, growing with `attempt`.
        delay: Duration,
        /// This failure put the address over `--login-ban` (false for one
        /// that was checked while the ban came, and found it in force).
        banned_now: bool,
    },
}

/// Checks a password against a PHC hash. The driver's implementation runs
/// argon2 off the shard (it takes tens of milliseconds) a few at a time, so
/// a check may wait its turn; tests use tables.
pub trait Verifier {
    /// Whether `password` matches `hash` (an argon2id PHC string), with
    /// the guard `start` gave when the check's turn had come; None when
    /// `start` said the address is banned. `start`
    /// ([`BanList::start_check`]) is asked once the check could run, and
    /// again after a while when it says [`Start::Wait`], so that attempts
    /// sent in parallel cannot outrun `--login-ban`.
    fn verify<'b>(
        &self,
        hash: String,
        password: Vec<u8>,
        start: impl FnMut() -> Start<'b>,
    ) -> impl Future<Output = Option<(bool, CheckGuard<'b>)>>;
}

/// One PASS to decide: `user` and `password` from USER/PASS, `ip` the
/// client's address, `failed_before` the session's failed attempts so far,
/// `now` for the ban table.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The client's address, for the ban table.
    pub ip: IpAddr,
    /// The name given to USER.
    pub user: &'a str,
    /// The PASS bytes, as sent.
    pub password: Vec<u8>,
    /// This session's failed logins so far.
    pub failed_before: u32,
    /// The current time, for the ban table.
    pub now: Instant,
}

/// Decides one login under `policy`, checking the password with
/// `verifier` against the account in `users` (or the decoy), and records
/// a failure in `bans`.
pub async fn decide<V: Verifier>(
    policy: LoginPolicy,
    users: &Users,
    bans: &BanList,
    verifier: &V,
    attempt: Attempt<'_>,
) -> Verdict {
    let Attempt {
        ip,
        user,
        password,
        failed_before,
        now,
    } = attempt;
    let banned = Verdict::Refused {
        why: Refusal::Banned,
        attempt: failed_before,
        close: true,
        delay: Duration::ZERO,
        banned_now: false,
    };
    if bans.is_banned(ip, now) {
        return banned;
    }
    let anonymous = is_anonymous_name(user);
    if anonymous && policy.anonymous {
        return Verdict::Accepted(Account::anonymous(user));
    }
    let account = if anonymous { None } else { users.get(user) };
    // Unknown names cost the same argon2 time as known ones.
    let hash = account
        .as_ref()
        .map(|a| a.hash.clone())
        .unwrap_or_else(|| password::decoy().to_string());
    // The guard keeps the check counted until its failure is recorded.
    let Some((verified, _running)) = verifier
        .verify(hash, password, || bans.start_check(ip, now))
        .await
    else {
        return banned;
    };
    let why = match (&account, anonymous) {
        (Some(a), _) if verified => return Verdict::Accepted(Account::from_user(a)),
        (_, true) => Refusal::AnonymousDisabled,
        (None, false) => Refusal::NoSuchUser,
        (Some(_), false) => Refusal::WrongPassword,
    };
    let attempt = failed_before + 1;
    let ban = bans.record_failure(ip, now);
    Verdict::Refused {
        why,
        attempt,
        close: ban != BanState::Free || attempt >= policy.max_attempts,
        delay: (DELAY_STEP * attempt).min(DELAY_MAX),
        banned_now: ban == BanState::BannedNow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ban::BanPolicy;

    /// Accepts exactly the passwords in its table, by hash.
    struct Table(Vec<(String, Vec<u8>)>);

    impl Verifier for Table {
        async fn verify<'b>(
            &self,
            hash: String,
            password: Vec<u8>,
            mut start: impl FnMut() -> Start<'b>,
        ) -> Option<(bool, CheckGuard<'b>)> {
            match start() {
                Start::Go(guard) => {
                    let ok = self.0.iter().any(|(h, p)| *h == hash && *p == password);
                    Some((ok, guard))
                }
                Start::Banned => None,
                Start::Wait => panic!("these tests run one check at a time"),
            }
        }
    }

    fn users() -> (Users, Table) {
        let hash = password::hash(b"secret").unwrap();
        let toml = format!(
            "[[user]]\nname = \"alice\"\npassword = \"{hash}\"\nhome = \"/\"\npermissions = [\"list\", \"read\", \"write\"]\nmax_download_rate = \"1MiB\"\n"
        );
        let users = Users::parse(&toml, &|_| Ok(())).unwrap();
        (users, Table(vec![(hash, b"secret".to_vec())]))
    }

    fn run(policy: LoginPolicy, bans: &BanList, user: &str, pw: &str, before: u32) -> Verdict {
        let (users, table) = users();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let attempt = Attempt {
            ip,
            user,
            password: pw.as_bytes().to_vec(),
            failed_before: before,
            now: Instant::now(),
        };
        let fut = decide(policy, &users, bans, &table, attempt);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(fut)
    }

    const OPEN: LoginPolicy = LoginPolicy {
        anonymous: true,
        max_attempts: 3,
    };

    #[test]
    fn anonymous_names() {
        for (name, anon) in [
            ("anonymous", true),
            ("ANONYMOUS", true),
            ("ftp", true),
            ("Ftp", true),
            ("anon", false),
            ("ftpuser", false),
            ("", false),
        ] {
            assert_eq!(is_anonymous_name(name), anon, "{name:?}");
        }
    }

    #[test]
    fn verdicts() {
        let no_anon = LoginPolicy {
            anonymous: false,
            ..OPEN
        };
        let refused = |why, attempt, close, ms| Verdict::Refused {
            why,
            attempt,
            close,
            delay: Duration::from_millis(ms),
            banned_now: false,
        };
        let table: Vec<(LoginPolicy, &str, &str, u32, Verdict)> = vec![
            (
                OPEN,
                "anonymous",
                "x",
                0,
                Verdict::Accepted(Account::anonymous("anonymous")),
            ),
            (
                OPEN,
                "FTP",
                "",
                2,
                Verdict::Accepted(Account::anonymous("FTP")),
            ),
            (
                no_anon,
                "ftp",
                "x",
                0,
                refused(Refusal::AnonymousDisabled, 1, false, 250),
            ),
            (
                OPEN,
                "bob",
                "secret",
                0,
                refused(Refusal::NoSuchUser, 1, false, 250),
            ),
            (
                OPEN,
                "alice",
                "wrong",
                1,
                refused(Refusal::WrongPassword, 2, false, 500),
            ),
            // The last allowed attempt closes the session.
            (
                OPEN,
                "alice",
                "wrong",
                2,
                refused(Refusal::WrongPassword, 3, true, 750),
            ),
            // The delay is capped.
            (
                LoginPolicy {
                    max_attempts: 100,
                    ..OPEN
                },
                "alice",
                "",
                40,
                refused(Refusal::WrongPassword, 41, false, 3000),
            ),
        ];
        for (policy, user, pw, before, want) in table {
            let bans = BanList::new(None);
            assert_eq!(run(policy, &bans, user, pw, before), want, "{user} {pw}");
        }
        let bans = BanList::new(None);
        match run(OPEN, &bans, "alice", "secret", 2) {
            Verdict::Accepted(a) => {
                assert_eq!(a.name, "alice");
                assert!(!a.anonymous);
                assert!(a.perms.has(Perms::WRITE));
                assert_eq!(a.max_download_rate, Some(1 << 20));
                assert_eq!(a.max_upload_rate, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn failures_ban_the_address_and_a_ban_is_checked_first() {
        let bans = BanList::new(Some(BanPolicy {
            failures: 2,
            window: Duration::from_secs(600),
        }));
        let policy = LoginPolicy {
            max_attempts: 10,
            ..OPEN
        };
        assert!(matches!(
            run(policy, &bans, "alice", "bad", 0),
            Verdict::Refused {
                banned_now: false,
                close: false,
                ..
            }
        ));
        // The second failure from the address bans it and closes.
        assert!(matches!(
            run(policy, &bans, "alice", "bad", 0),
            Verdict::Refused {
                banned_now: true,
                close: true,
                ..
            }
        ));
        // Now even the right password (and anonymous) is refused unchecked.
        for (user, pw) in [("alice", "secret"), ("anonymous", "x")] {
            assert_eq!(
                run(policy, &bans, user, pw, 0),
                Verdict::Refused {
                    why: Refusal::Banned,
                    attempt: 0,
                    close: true,
                    delay: Duration::ZERO,
                    banned_now: false,
                }
            );
        }
    }
}
