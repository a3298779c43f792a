//! Password hashes: argon2id in the PHC string format
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), the argon2 crate's default
//! parameters (OWASP's recommendation). Plaintext passwords are never
//! stored and never logged.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

/// Hashes `password` with a fresh random salt.
pub fn hash(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Checks that `phc` is an argon2id PHC string this server can verify.
pub fn validate(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "hash algorithm {} is not argon2id (make hashes with `ringftp passwd`)",
            parsed.algorithm
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the hash string has no salt or no hash".into());
    }
    // Parameters out of argon2's range would fail every login: catch them now.
    let params =
        argon2::Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters ({e})"))?;
    if params.m_cost() > MAX_M_COST_KIB {
        return Err(format!(
            "argon2 m={} KiB is more than {} MiB for one check, memory any client can make the server spend (two checks at a time per shard); make hashes with `ringftp passwd`",
            params.m_cost(),
            MAX_M_COST_KIB / 1024
        ));
    }
    Ok(())
}

/// The most memory (KiB) one check of a users-file hash may take: 256
/// MiB, 13× `ringftp passwd`'s 19 MiB (OWASP's largest argon2id setting is
/// 46 MiB). Each check may be started by any client naming the account.
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// The argon2 parameters of `phc` (`m=8,t=1,p=1`) when they are not the
/// ones `ringftp passwd` and the decoy use (`m=19456,t=2,p=1`), else None.
/// Such a hash checks in another time than the decoy does, so a failed
/// login tells a client whether the name exists; and its `m` (KiB) is the
/// memory each check of it takes, which any client may start.
pub fn unusual_params(phc: &str) -> Option<String> {
    let parsed = PasswordHash::new(phc).ok()?;
    let params = argon2::Params::try_from(&parsed).ok()?;
    let default = argon2::Params::default();
    let triple = |p: &argon2::Params| (p.m_cost(), p.t_cost(), p.p_cost());
    (triple(&params) != triple(&default)).then(|| {
        format!(
            "m={},t={},p={}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        )
    })
}

/// A hash of `password` with argon2id's memory cost `m` (KiB) and time
/// cost `t` (one lane), for tests of hashes not made by `ringftp passwd`.
#[cfg(test)]
pub(crate) fn hash_with_params(password: &[u8], m: u32, t: u32) -> String {
    let argon = Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(m, t, 1, None).expect("valid argon2 parameters"),
    );
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password, &salt)
        .expect("hashing")
        .to_string()
}

/// True when `password` matches `phc`. Costs tens of milliseconds by
/// design: call it off the shard thread.
pub fn verify(phc: &str, password: &[u8]) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a password nobody knows, verified for unknown user
/// names so a failed login takes as long whether or not the name exists.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(b"\0ringftp decoy\0").unwrap_or_default())
}

/// `ringftp passwd`: reads a password — from the terminal without echo
/// (asked twice), or the first line of stdin when it is piped — and prints
/// only its hash on stdout.
pub fn passwd_command() -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            anyhow::bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    println!("{}", hash(password.as_bytes()).map_err(anyhow::Error::msg)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_roundtrip() {
        let h = hash(b"correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        validate(&h).unwrap();
        assert!(verify(&h, b"correct horse"));
        assert!(!verify(&h, b"correct horse "));
        assert!(!verify(&h, b""));
        // Fresh salt each time.
        assert_ne!(h, hash(b"correct horse").unwrap());
    }

    #[test]
    fn unusual_params_are_named() {
        assert_eq!(unusual_params(&hash(b"pw").unwrap()), None);
        assert_eq!(unusual_params(decoy()), None);
        let phc = hash_with_params(b"pw", 8, 1);
        assert_eq!(unusual_params(&phc).as_deref(), Some("m=8,t=1,p=1"));
    }

    #[test]
    fn validate_rejects() {
        for bad in [
            "",
            "plaintext",
            "$argon2id$",
            "$2b$12$abcdefghijklmnopqrstuu1234567890123456789012345678901",
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
        // Memory any client could make every check take: refused above
        // 256 MiB, accepted up to it.
        let with_m = |m: u32| {
            format!("$argon2id$v=19$m={m},t=1,p=1$c29tZXNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        };
        let e = validate(&with_m(16 * 1024 * 1024)).unwrap_err();
        assert!(e.contains("more than 256 MiB"), "{e}");
        validate(&with_m(256 * 1024)).unwrap();
        assert!(!verify("garbage", b"x"));
    }
}
