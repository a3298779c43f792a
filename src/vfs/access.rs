//! What an entry's permission bits let a session do, for the MLSD/MLST
//! `perm` fact (RFC 3659 section 7.5.5): the account's permissions say
//! what the session may ask for; for anonymous sessions the entry's
//! "other" bits say what the world-readable rule (see [`super::world`])
//! will then allow, so `perm` never offers a listing the server refuses.
//!
//! For accounts the account's permissions alone decide, as in pyftpdlib:
//! `perm` names what the account is granted; the kernel still checks the
//! server process's own permissions when the command comes.

use super::Stat;

/// Whose permission bits decide what an entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// An anonymous session: the "other" bits, whoever the process is.
    World,
    /// An account: no mode check here.
    Account,
}

impl Viewer {
    /// The viewer of a session: [`Viewer::World`] when it sees only what
    /// is published (anonymous), else [`Viewer::Account`].
    pub fn of_session(published_only: bool) -> Viewer {
        if published_only {
            Viewer::World
        } else {
            Viewer::Account
        }
    }
}

/// What the mode bits of one entry allow its viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Read a file, list a directory's names.
    pub read: bool,
    /// Write a file, create or remove names in a directory.
    pub write: bool,
    /// Search (enter, pass through) a directory.
    pub search: bool,
}

impl Access {
    /// Everything allowed: no mode check.
    pub const ALL: Access = Access {
        read: true,
        write: true,
        search: true,
    };

    /// What `st`'s mode bits allow `viewer`.
    pub fn of(st: &Stat, viewer: Viewer) -> Access {
        match viewer {
            Viewer::Account => Access::ALL,
            Viewer::World => Access {
                read: st.mode & libc::S_IROTH != 0,
                write: st.mode & libc::S_IWOTH != 0,
                search: st.mode & libc::S_IXOTH != 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(mode: u32) -> Stat {
        Stat::with_mode(libc::S_IFDIR | mode)
    }

    #[test]
    fn the_world_gets_the_other_bits_and_accounts_everything() {
        let a = |r, w, search| Access {
            read: r,
            write: w,
            search,
        };
        for (mode, want) in [
            (0o755, a(true, false, true)),
            (0o711, a(false, false, true)),
            (0o704, a(true, false, false)),
            (0o777, a(true, true, true)),
            (0o770, a(false, false, false)),
        ] {
            assert_eq!(Access::of(&st(mode), Viewer::World), want, "{mode:o}");
            assert_eq!(Access::of(&st(mode), Viewer::Account), Access::ALL);
        }
    }
}
