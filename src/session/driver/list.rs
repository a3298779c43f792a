//! LIST, NLST, MLSD over the data connection; MLST and STAT with a path
//! over the control connection. The directory is read on the blocking pool
//! ([`crate::vfs::dir`]); the text is rendered by the pure functions of
//! [`crate::vfs::listing`] from the entries, the session's permissions and
//! the listing options.

use std::time::{SystemTime, UNIX_EPOCH};

use super::transfer::{Job, Transfer};
use super::{Conn, Flow};
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::session::outcome::Direction;
use crate::session::step::DataMode;
use crate::vfs::dir::{self, Links};
use crate::vfs::listing::{self, Entry, ListFormat, ListOptions};
use crate::vfs::{path, resolve, VfsError};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Conn {
    /// Reads the entries of a directory on the blocking pool.
    async fn read_dir(&self, vpath: &[u8], links: Links) -> Result<Vec<Entry>, VfsError> {
        let dir = resolve::open_dir(self.root(), vpath).await?;
        let root = self.root_fd().clone();
        let vp = vpath.to_vec();
        match tokio::task::spawn_blocking(move || dir::read_entries(root, dir, &vp, links)).await {
            Ok(r) => r.map_err(VfsError::from_io),
            Err(e) => Err(VfsError::Io(std::io::Error::other(e.to_string()))),
        }
    }

    /// The listing bytes of `vpath` in `format`, or why not. `shown` is
    /// the path as the client typed it.
    async fn render_listing(
        &self,
        vpath: &[u8],
        shown: Option<&[u8]>,
        format: ListFormat,
        all: bool,
    ) -> Result<Vec<u8>, VfsError> {
        let st = resolve::stat(self.root(), vpath).await?;
        let mut opts = ListOptions {
            format,
            all,
            prefix: None,
            facts: self.session.facts(),
            perms: self.session.perms(),
            now: unix_now(),
        };
        let mut out = Vec::new();
        if !st.is_dir() {
            if format == ListFormat::Machine {
                return Err(VfsError::NotADirectory);
            }
            // LIST/NLST of a file: that one file, named as the client typed it.
            let entry = st.entry(listing::shown_name(vpath, shown), None);
            listing::render_file(&entry, &opts, &mut out);
            return Ok(out);
        }
        let links = if format == ListFormat::Machine {
            Links::Follow
        } else {
            Links::Show
        };
        let entries = self.read_dir(vpath, links).await?;
        if format == ListFormat::Names {
            opts.prefix = shown.and_then(listing::nlst_prefix);
        }
        listing::render_entries(&entries, &opts, &mut out);
        Ok(out)
    }

    pub(super) async fn list(
        &mut self,
        verb: &'static str,
        vpath: Vec<u8>,
        shown: Option<Vec<u8>>,
        format: ListFormat,
        all: bool,
        data: DataMode,
    ) -> Flow {
        let bytes = match self
            .render_listing(&vpath, shown.as_deref(), format, all)
            .await
        {
            Ok(b) => b,
            Err(VfsError::NotADirectory) if format == ListFormat::Machine => {
                return self
                    .reply(Reply::new(
                        SYNTAX_ERROR_ARGS,
                        "MLSD needs a directory; use MLST for a file.",
                    ))
                    .await
            }
            Err(e) => return self.refuse(verb, &vpath, e).await,
        };
        let opening = Reply::new(FILE_STATUS_OK, "Here comes the directory listing.");
        let t = Transfer::new(verb, Direction::Listing, vpath, false, data);
        let outcome = self.run_transfer(&t, opening, Job::Listing(bytes)).await;
        self.finish(&t, outcome).await
    }

    pub(super) async fn mlst(&mut self, verb: &'static str, vpath: Vec<u8>) -> Flow {
        let st = match resolve::stat(self.root(), &vpath).await {
            Ok(st) => st,
            Err(e) => return self.refuse(verb, &vpath, e).await,
        };
        let entry = st.entry(vpath.clone(), None);
        let text = listing::mlst_text(&vpath, &entry, self.session.facts(), self.session.perms());
        self.reply(Reply::new(FILE_ACTION_OK, text)).await
    }

    pub(super) async fn stat_path(&mut self, verb: &'static str, vpath: Vec<u8>) -> Flow {
        let shown = path::file_name(&vpath).to_vec();
        match self
            .render_listing(&vpath, Some(&shown), ListFormat::Long, true)
            .await
        {
            Ok(bytes) => {
                let text = listing::stat_text(&bytes);
                self.reply(Reply::new(FILE_STATUS, text)).await
            }
            Err(e) => self.refuse(verb, &vpath, e).await,
        }
    }
}
