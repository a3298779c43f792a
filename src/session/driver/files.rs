//! Navigation and file management: CWD/CDUP, SIZE, MDTM, DELE, MKD, RMD,
//! RNFR/RNTO, MFMT and SITE CHMOD, each on a path under the session's root
//! (see [`crate::vfs::write`]: everything relative to a parent directory
//! fd, resolved race-free). The state machine has already checked the
//! account's permissions; anonymous sessions also meet the world-readable
//! rule here ([`Conn::published`], see [`crate::vfs::world`]).

use std::os::fd::OwnedFd;

use super::{log_text, shown, Conn, Flow};
use crate::auth::Perms;
use crate::proto::codes::*;
use crate::proto::reply::quote_path;
use crate::proto::Reply;
use crate::vfs::names;
use crate::vfs::time::format_mdtm;
use crate::vfs::world::{self, Use};
use crate::vfs::{resolve, write, Stat, VfsError};

impl Conn {
    /// Whether this session sees only what is published to the world
    /// (anonymous sessions: vsftpd's anon_world_readable_only).
    pub(super) fn published_only(&self) -> bool {
        self.session.account().is_some_and(|a| a.anonymous)
    }

    /// For an anonymous session, refuses `vpath` (stat `st`) unless it and
    /// the directories above it are published for `usage`; other sessions
    /// pass.
    /// `opened` is the path's fd when a symlink was followed on the way,
    /// for where it really led (see [`world::check`]); [`Conn::look_up`]
    /// gives one.
    pub(super) async fn published(
        &self,
        vpath: &[u8],
        opened: Option<&OwnedFd>,
        st: &Stat,
        usage: Use,
    ) -> Result<(), VfsError> {
        if !self.published_only() {
            return Ok(());
        }
        world::check(self.root(), vpath, opened, st, usage, &self.searched).await
    }

    /// Looks up `vpath` (following symlinks inside the root): its stat
    /// and the fd it was found through, which the caller closes after its
    /// reply (see [`resolve::Found`]); for an anonymous session also
    /// whether a symlink was followed on the way, which
    /// [`Conn::published`] then needs. Lookup errors as
    /// [`Conn::lookup_error`].
    pub(super) async fn look_up(&self, vpath: &[u8]) -> Result<resolve::Found, VfsError> {
        resolve::look_up(self.root(), vpath, self.published_only())
            .await
            .map_err(|e| self.lookup_error(e))
    }

    /// An error looking up a path, as the session may learn it: for an
    /// anonymous session an error only a hidden name gives (EACCES,
    /// ENOTDIR, ELOOP) reads as a missing path, like everything else it
    /// is not shown ([`world::hide_revealing`]).
    pub(super) fn lookup_error(&self, e: VfsError) -> VfsError {
        if self.published_only() {
            world::hide_revealing(e)
        } else {
            e
        }
    }

    /// Looks up `vpath` as [`Conn::look_up`] does, refusing what an
    /// anonymous session may not use as `usage`. Hold the result until the
    /// reply is sent: dropping it closes the lookup's fd.
    pub(super) async fn stat_published(
        &self,
        vpath: &[u8],
        usage: Use,
    ) -> Result<resolve::Found, VfsError> {
        let found = self.look_up(vpath).await?;
        self.published(vpath, found.through_link(), &found.stat, usage)
            .await?;
        Ok(found)
    }

    pub(super) async fn change_dir(&mut self, vpath: Vec<u8>) -> Flow {
        match self.stat_published(&vpath, Use::Enter).await {
            // `found` (the lookup's fd) is closed after the reply.
            Ok(found) if found.stat.is_dir() => {
                self.session.cwd_changed(vpath);
                self.reply(Reply::new(
                    FILE_ACTION_OK,
                    "Directory successfully changed.",
                ))
                .await
            }
            Ok(_) => self.refuse(&vpath, VfsError::NotADirectory).await,
            Err(e) => self.refuse(&vpath, e).await,
        }
    }

    /// [`Step::NeedDirectory`](crate::session::step::Step::NeedDirectory)'s
    /// check: None when `vpath` is a directory, else the refusal sent
    /// (550 "Not a directory.", or why the lookup failed).
    pub(super) async fn need_directory(&self, vpath: &[u8]) -> Option<Flow> {
        match self.stat_published(vpath, Use::Look).await {
            Ok(found) if found.stat.is_dir() => None,
            Ok(_) => Some(self.refuse(vpath, VfsError::NotADirectory).await),
            Err(e) => Some(self.refuse(vpath, e).await),
        }
    }

    pub(super) async fn size(&mut self, vpath: Vec<u8>) -> Flow {
        // Use::Look: a file anonymous is shown is one it may read; what
        // else it is shown (a directory) is "Not a plain file.".
        match self.stat_published(&vpath, Use::Look).await {
            // `found` (the lookup's fd) is closed after the reply.
            Ok(found) if found.stat.is_file() => {
                self.reply(Reply::new(FILE_STATUS, found.stat.size.to_string()))
                    .await
            }
            Ok(_) => self.refuse(&vpath, VfsError::NotAFile).await,
            Err(e) => self.refuse(&vpath, e).await,
        }
    }

    pub(super) async fn mdtm(&mut self, vpath: Vec<u8>) -> Flow {
        match self.stat_published(&vpath, Use::Look).await {
            Ok(found) if found.stat.is_file() => {
                self.reply(Reply::new(FILE_STATUS, format_mdtm(found.stat.mtime)))
                    .await
            }
            Ok(_) => self.refuse(&vpath, VfsError::NotAFile).await,
            Err(e) => self.refuse(&vpath, e).await,
        }
    }

    pub(super) async fn delete(&mut self, verb: &'static str, vpath: Vec<u8>) -> Flow {
        let r = write::delete_file(self.root(), &vpath).await;
        let ok = Reply::new(FILE_ACTION_OK, "Delete operation successful.");
        self.changed(verb, &vpath, r, ok).await
    }

    pub(super) async fn make_dir(&mut self, verb: &'static str, vpath: Vec<u8>) -> Flow {
        let r = write::make_dir(self.root(), &vpath).await;
        // Shown as listings show it: a legacy-charset name in UTF-8.
        let mut text = quote_path(&names::display(&vpath));
        text.extend_from_slice(b" created");
        self.changed(verb, &vpath, r, Reply::new(PATH_CREATED, text))
            .await
    }

    pub(super) async fn remove_dir(&mut self, verb: &'static str, vpath: Vec<u8>) -> Flow {
        let r = write::remove_dir(self.root(), &vpath).await;
        let ok = Reply::new(FILE_ACTION_OK, "Remove directory operation successful.");
        self.changed(verb, &vpath, r, ok).await
    }

    pub(super) async fn rename_from(&mut self, vpath: Vec<u8>, directory: bool) -> Flow {
        match write::exists(self.root(), &vpath, directory).await {
            Ok(()) => {
                self.session.rename_from(vpath, directory);
                self.reply(Reply::new(FILE_ACTION_PENDING, "Ready for RNTO."))
                    .await
            }
            Err(e) => self.refuse(&vpath, e).await,
        }
    }

    pub(super) async fn rename(
        &mut self,
        verb: &'static str,
        from: Vec<u8>,
        to: Vec<u8>,
        directory: bool,
    ) -> Flow {
        let may_replace = self.session.perms().has(Perms::DELETE);
        let r = write::rename(self.root(), &from, &to, directory, may_replace).await;
        if r.is_ok() {
            tracing::info!(from = %log_text(&from), to = %log_text(&to), "renamed");
        }
        let ok = Reply::new(FILE_ACTION_OK, "Rename successful.");
        self.changed(verb, &to, r, ok).await
    }

    pub(super) async fn set_time(&mut self, verb: &'static str, vpath: Vec<u8>, time: i64) -> Flow {
        let r = write::set_mtime(self.root(), &vpath, time).await;
        // The reply names the time the file now has (RFC 3659 MFMT's
        // reply is the new modification time), which the filesystem may
        // have clamped.
        let kept = *r.as_ref().unwrap_or(&time);
        let text = format!("Modify={}; {}", format_mdtm(kept), shown(&vpath));
        self.changed(verb, &vpath, r.map(|_| ()), Reply::new(FILE_STATUS, text))
            .await
    }

    pub(super) async fn chmod(&mut self, verb: &'static str, vpath: Vec<u8>, mode: u32) -> Flow {
        let r = write::chmod(self.root(), &vpath, mode).await;
        let ok = Reply::new(OK, "SITE CHMOD command ok.");
        self.changed(verb, &vpath, r, ok).await
    }

    /// The reply to a tree change: `ok` on success, else the refusal.
    async fn changed(
        &self,
        verb: &str,
        vpath: &[u8],
        result: Result<(), VfsError>,
        ok: Reply,
    ) -> Flow {
        match result {
            Ok(()) => {
                tracing::info!(path = %log_text(vpath), "{verb} done");
                self.reply(ok).await
            }
            Err(e) => self.refuse(vpath, e).await,
        }
    }
}
