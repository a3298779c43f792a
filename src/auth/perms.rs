//! What an account may do ([`Perms`]): the permission names of the users
//! file, checked by the session before each command that needs one and
//! turned into the RFC 3659 `perm` fact of MLSD/MLST. Pure values.

/// What a user may do. Anonymous sessions get `list` and `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms(u16);

impl Perms {
    /// Nothing: what every session may do (CWD, for instance).
    pub const NONE: Perms = Perms(0);
    /// `list`: LIST, NLST, MLSD, MLST and STAT with a path.
    pub const LIST: Perms = Perms(1);
    /// `read`: RETR, SIZE and MDTM.
    pub const READ: Perms = Perms(1 << 1);
    /// `write`: STOR, STOU and MFMT (STOR may replace a file).
    pub const WRITE: Perms = Perms(1 << 2);
    /// `append`: APPE.
    pub const APPEND: Perms = Perms(1 << 3);
    /// `delete`: DELE and RMD.
    pub const DELETE: Perms = Perms(1 << 4);
    /// `mkdir`: MKD.
    pub const MKDIR: Perms = Perms(1 << 5);
    /// `rename`: RNFR and RNTO (an RNTO that replaces an existing name
    /// also needs `delete`: `vfs::write::rename`).
    pub const RENAME: Perms = Perms(1 << 6);
    /// `chmod`: SITE CHMOD.
    pub const CHMOD: Perms = Perms(1 << 7);

    /// Names as written in the users file.
    pub const NAMES: [(&'static str, Perms); 8] = [
        ("list", Perms::LIST),
        ("read", Perms::READ),
        ("write", Perms::WRITE),
        ("append", Perms::APPEND),
        ("delete", Perms::DELETE),
        ("mkdir", Perms::MKDIR),
        ("rename", Perms::RENAME),
        ("chmod", Perms::CHMOD),
    ];

    /// What anonymous sessions get: `list` and `read`.
    pub const fn anonymous() -> Perms {
        Perms(Perms::LIST.0 | Perms::READ.0)
    }

    /// True when every permission in `p` is granted.
    pub fn has(self, p: Perms) -> bool {
        self.0 & p.0 == p.0
    }

    /// These permissions plus those in `p`.
    pub fn with(self, p: Perms) -> Perms {
        Perms(self.0 | p.0)
    }

    /// The permission a users-file name stands for ([`Perms::NAMES`]);
    /// `None` for an unknown name (names are case-sensitive).
    pub fn parse(name: &str) -> Option<Perms> {
        Perms::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
    }

    /// True when any write-side permission is granted.
    pub fn can_modify(self) -> bool {
        self.0 & !Perms::anonymous().0 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms() {
        let anon = Perms::anonymous();
        assert!(anon.has(Perms::LIST) && anon.has(Perms::READ));
        assert!(!anon.has(Perms::WRITE));
        assert!(!anon.can_modify());
        assert!(anon.with(Perms::DELETE).can_modify());
        assert_eq!(Perms::parse("rename"), Some(Perms::RENAME));
        assert_eq!(Perms::parse("Rename"), None);
    }
}
