//! LIST, NLST, MLSD over the data connection; MLST and STAT with a path
//! over the control connection. Directories are read and rendered on the
//! shard's worker threads ([`crate::engine::pool`]) a chunk at a time ([`crate::vfs::dir::Lister`], with the
//! pure rendering of [`crate::vfs::listing`]), so a listing streams.
//!
//! What is listed, for every command alike: a file as itself; a
//! directory's entries (and with `LIST -R` its subdirectories', `ls -lR`
//! style, down to `--list-max-depth`); or, when the path does not exist and
//! its last component is a pattern ([`crate::vfs::glob`]), the matching
//! entries of its directory — none is an empty listing, as vsftpd answers.
//! At most `--list-max-entries` entries are sent; a listing cut short by
//! either cap ends with a 226 that says so. Errors (no such directory, no
//! permission) come as 550 before any data connection is used.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::transfer::{Job, Transfer};
use super::{Conn, Flow};
use crate::data::transfer::TransferError;
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::session::outcome::Direction;
use crate::session::step::{DataMode, Listing};
use crate::shard::ShardCtx;
use crate::vfs::access::Viewer;
use crate::vfs::dir::{Links, ListSpec, Lister};
use crate::vfs::glob;
use crate::vfs::listing::{self, ListFormat, ListOptions};
use crate::vfs::world::Use;
use crate::vfs::{path, resolve, VfsError};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A listing ready to send: one line already rendered (a single file), or
/// a directory to stream.
pub(super) enum Prepared {
    Bytes(Vec<u8>),
    Stream(ListingStream),
}

/// A directory listing streamed chunk by chunk from the shard's workers.
pub(super) struct ListingStream {
    ctx: Rc<ShardCtx>,
    /// The first chunk, rendered in the same trip to a worker that read the
    /// directory: a listing of up to [`crate::vfs::dir::CHUNK`] entries
    /// costs one hand-off to the workers, not two.
    ready: Option<Vec<u8>>,
    /// What is left to render; `None` once the listing is complete.
    lister: Option<Box<Lister>>,
    /// Why the listing was cut short, once it has been sent.
    pub(super) cut: Rc<RefCell<Option<String>>>,
    /// Entries in it, once it has been sent.
    pub(super) listed: Rc<Cell<usize>>,
}

impl ListingStream {
    /// The next chunk of listing text; `None` when the listing is done.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<u8>>, TransferError> {
        if let Some(first) = self.ready.take() {
            return Ok(Some(first));
        }
        let Some(mut lister) = self.lister.take() else {
            return Ok(None);
        };
        let (lister, chunk, more) = self
            .ctx
            .workers
            .run(move || {
                let mut out = Vec::new();
                let more = lister.next_chunk(&mut out);
                (lister, out, more)
            })
            .await
            .ok_or_else(|| TransferError::Local(std::io::Error::other("listing worker failed")))?;
        self.keep(lister, more);
        Ok(Some(chunk))
    }

    /// Keeps `lister` while it has `more` to render; once it is done,
    /// records why it was cut and how many entries it listed.
    fn keep(&mut self, lister: Box<Lister>, more: bool) {
        if more {
            self.lister = Some(lister);
        } else {
            *self.cut.borrow_mut() = lister.cut();
            self.listed.set(lister.listed());
        }
    }
}

impl Conn {
    /// Works out what `l` lists and opens it; errors here are the 550s.
    /// A single file is named as the client typed it, or with
    /// `by_file_name` by its last component (STAT).
    async fn prepare_listing(&self, l: &Listing, by_file_name: bool) -> Result<Prepared, VfsError> {
        let opts = ListOptions {
            format: l.format,
            all: l.all,
            prefix: None,
            facts: self.session.facts(),
            perms: self.session.perms(),
            now: unix_now(),
            published_only: self.published_only(),
        };
        let looked_up = match self.look_up(&l.path).await {
            Ok(found) => match self
                .published(&l.path, found.through_link(), &found.stat, Use::Read)
                .await
            {
                Ok(()) => Ok(found.stat),
                // A hidden name that is also a pattern (a file literally
                // named `h*`) is expanded as the pattern, as if the name
                // did not exist: the listing a missing name would give.
                Err(VfsError::Hidden(_)) if glob::split(&l.path).is_some() => {
                    Err(VfsError::NotFound)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (dir_vpath, pattern, prefix) = match looked_up {
            Ok(st) if !st.is_dir() => {
                // MLSD lists only directories (RFC 3659 7.1); `f/` names
                // one (POSIX: `ls f/` is ENOTDIR).
                if l.format == ListFormat::Machine
                    || l.shown.as_deref().is_some_and(path::names_directory)
                {
                    return Err(VfsError::NotADirectory);
                }
                // LIST/NLST of a file: that one file, named as the client
                // typed it (STAT: by its name).
                let name = if by_file_name {
                    path::file_name(&l.path).to_vec()
                } else {
                    listing::shown_name(&l.path, l.shown.as_deref())
                };
                let entry = st.entry(name, None);
                let mut out = Vec::new();
                listing::render_file(&entry, &opts, &mut out);
                return Ok(Prepared::Bytes(out));
            }
            Ok(_) => {
                let prefix = l.shown.as_deref().and_then(listing::nlst_prefix);
                (l.path.clone(), None, prefix)
            }
            Err(VfsError::NotFound) => {
                let (dir, pattern) = glob::split(&l.path).ok_or(VfsError::NotFound)?;
                let found = self.look_up(&dir).await?;
                self.published(&dir, found.through_link(), &found.stat, Use::Read)
                    .await?;
                let typed = glob::typed_dir(l.shown.as_deref().unwrap_or_default());
                (
                    dir,
                    Some(pattern),
                    (!typed.is_empty()).then(|| typed.to_vec()),
                )
            }
            Err(e) => return Err(e),
        };
        let recursive = l.recursive && l.format == ListFormat::Long && pattern.is_none();
        let spec = ListSpec {
            links: if l.format == ListFormat::Machine {
                Links::Follow
            } else {
                Links::Show
            },
            opts: ListOptions {
                // `NLST .*` names dot-files itself (see vfs::glob).
                all: opts.all || pattern.as_ref().is_some_and(glob::Pattern::names_dotfiles),
                prefix: if l.format == ListFormat::Names {
                    prefix
                } else {
                    None
                },
                ..opts
            },
            // `LIST */`: the joined path lost the slash, the pattern
            // keeps its meaning.
            dirs_only: pattern.is_some() && l.shown.as_deref().is_some_and(path::names_directory),
            pattern,
            recursive,
            max_depth: self.ctx.config.list_max_depth,
            max_entries: self.ctx.config.list_max_entries,
        };
        let dir = resolve::open_dir(self.root(), &dir_vpath).await?;
        let root = self.root_fd().clone();
        let typed = l.shown.clone().unwrap_or_else(|| b".".to_vec());
        let (lister, first, more) = self
            .ctx
            .workers
            .run(move || {
                let mut lister = Lister::new(root, dir, dir_vpath, typed, spec)?;
                let mut first = Vec::new();
                let more = lister.next_chunk(&mut first);
                Ok::<_, std::io::Error>((lister, first, more))
            })
            .await
            .ok_or_else(|| VfsError::Io(std::io::Error::other("listing worker failed")))?
            .map_err(VfsError::from_io)?;
        let mut stream = ListingStream {
            ctx: self.ctx.clone(),
            ready: Some(first),
            lister: None,
            cut: Rc::default(),
            listed: Rc::default(),
        };
        stream.keep(Box::new(lister), more);
        Ok(Prepared::Stream(stream))
    }

    pub(super) async fn list(&mut self, verb: &'static str, l: Listing, data: DataMode) -> Flow {
        let prepared = match self.prepare_listing(&l, false).await {
            Ok(p) => p,
            Err(VfsError::NotADirectory) if l.format == ListFormat::Machine => {
                return self
                    .reply(Reply::new(
                        SYNTAX_ERROR_ARGS,
                        "MLSD needs a directory; use MLST for a file.",
                    ))
                    .await
            }
            Err(e) => return self.refuse(&l.path, e).await,
        };
        let (cut, listed) = match &prepared {
            Prepared::Stream(s) => (s.cut.clone(), s.listed.clone()),
            Prepared::Bytes(_) => (Rc::default(), Rc::new(Cell::new(1))),
        };
        let opening = Reply::new(FILE_STATUS_OK, "Here comes the directory listing.");
        let mut t = Transfer::new(verb, Direction::Listing, l.path, false, data);
        let outcome = self.run_transfer(&t, opening, Job::Listing(prepared)).await;
        t.note = cut.take();
        if outcome.is_complete() {
            self.ctx.metrics.listing_entries.add(listed.get() as u64);
        }
        self.finish(&t, outcome).await
    }

    pub(super) async fn mlst(&mut self, vpath: Vec<u8>) -> Flow {
        // `found` (the lookup's fd) is closed after the reply.
        let found = match self.look_up(&vpath).await {
            Ok(found) => found,
            Err(e) => return self.refuse(&vpath, e).await,
        };
        if let Err(e) = self
            .published(&vpath, found.through_link(), &found.stat, Use::Look)
            .await
        {
            return self.refuse(&vpath, e).await;
        }
        let entry = found.stat.entry(vpath.clone(), None);
        let viewer = Viewer::of_session(self.published_only());
        let text = listing::mlst_text(
            &vpath,
            &entry,
            self.session.facts(),
            self.session.perms(),
            viewer,
        );
        self.reply(Reply::new(FILE_ACTION_OK, text)).await
    }

    /// STAT with a path: a LIST over the control connection (RFC 959); a
    /// single file is named by its last component, a directory (the
    /// headers of `-R`) as typed.
    pub(super) async fn stat_path(&mut self, l: Listing) -> Flow {
        let prepared = match self.prepare_listing(&l, true).await {
            Ok(p) => p,
            Err(e) => return self.refuse(&l.path, e).await,
        };
        let (bytes, cut, listed) = match prepared {
            Prepared::Bytes(b) => (b, None, 1),
            Prepared::Stream(mut s) => {
                // Chunk by chunk, one worker job each, as a LIST streams:
                // other sessions' listings take turns on the shard's two
                // workers with a long `STAT -R`. One job for the whole
                // tree held both for seconds (ten of 100,000 entries kept
                // an NLST of 30 names waiting 2.6 s; a review helper).
                let mut bytes = Vec::new();
                loop {
                    match s.next().await {
                        Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                        Ok(None) => break,
                        Err(_) => {
                            let e = VfsError::Io(std::io::Error::other("listing worker failed"));
                            return self.refuse(&l.path, e).await;
                        }
                    }
                }
                (bytes, s.cut.take(), s.listed.get())
            }
        };
        self.ctx.metrics.listing_entries.add(listed as u64);
        let mut text = listing::stat_text(&bytes);
        if let Some(cut) = cut {
            text.extend_from_slice(b" (");
            text.extend_from_slice(cut.as_bytes());
            text.push(b')');
        }
        self.reply(Reply::new(FILE_STATUS, text)).await
    }
}
