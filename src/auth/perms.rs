//! What an account may do ([`Perms`]): the permission names of the users
//! file, checked by the session before each command that needs one and
//! turned into the RFC 3659 `perm` fact of MLSD/MLST. Pure values.

/// What a user may do. Anonymous sessions get `list` and `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms(u16);

impl Perms {
    /// Nothing: what every session may do (CWD, for instance).
    pub const NONE: Perms = Perms(0);
    pub const LIST: Perms = Perms(1);
    pub const READ: Perms = Perms(1 << 1);
    pub const WRITE: Perms = Perms(1 << 2);
    pub const APPEND: Perms = Perms(1 << 3);
    pub const DELETE: Perms = Perms(1 << 4);
    pub const MKDIR: Perms = Perms(1 << 5);
    pub const RENAME: Perms = Perms(1 << 6);
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

    pub const fn anonymous() -> Perms {
        Perms(Perms::LIST.0 | Perms::READ.0)
    }

    pub fn has(self, p: Perms) -> bool {
        self.0 & p.0 == p.0
    }

    pub fn with(self, p: Perms) -> Perms {
        Perms(self.0 | p.0)
    }

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
