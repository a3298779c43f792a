//! LIST, NLST, MLSD over the data connection; MLST and STAT with a path
//! over the control connection. Directories are read on the blocking pool
//! ([`crate::vfs::dir`]); the text is rendered by the pure functions of
//! [`crate::vfs::listing`] from the entries, the session's permissions and
//! the listing options.
//!
//! What is listed, for every command alike: a file as itself; a
//! directory's entries (and with `LIST -R` its subdirectories', `ls -lR`
//! style, down to `--list-max-depth`); or, when the path does not exist and
//! its last component is a pattern ([`crate::vfs::glob`]), the matching
//! entries of its directory — none is an empty listing, as vsftpd answers.
//! At most `--list-max-entries` entries are sent; a listing cut short by
//! either cap ends with a 226 that says so.

use std::time::{SystemTime, UNIX_EPOCH};

use super::transfer::{Job, Transfer};
use super::{Conn, Flow};
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::session::outcome::Direction;
use crate::session::step::{DataMode, Listing};
use crate::vfs::dir::{self, Links};
use crate::vfs::glob::{self, Pattern};
use crate::vfs::listing::{self, Entry, EntryKind, ListFormat, ListOptions};
use crate::vfs::{path, resolve, VfsError};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A rendered listing, how many entries it holds, and why it was cut
/// short, if it was.
struct Rendered {
    bytes: Vec<u8>,
    entries: usize,
    cut: Option<String>,
}

/// Where a listing stands against its caps.
struct Budget {
    entries_left: usize,
    max_entries: usize,
    max_depth: usize,
    /// A directory below `max_depth` was not descended into.
    depth_hit: bool,
}

impl Budget {
    /// Keeps at most what is left of the entry budget of `entries`.
    fn take(&mut self, entries: &mut Vec<Entry>) {
        entries.truncate(self.entries_left);
        self.entries_left -= entries.len();
    }

    /// Entries taken so far.
    fn taken(&self) -> usize {
        self.max_entries - self.entries_left
    }

    fn cut(&self) -> Option<String> {
        if self.entries_left == 0 {
            Some(format!(
                "Listing cut at {} entries (--list-max-entries).",
                self.max_entries
            ))
        } else if self.depth_hit {
            Some(format!(
                "Listing not descended below {} levels (--list-max-depth).",
                self.max_depth
            ))
        } else {
            None
        }
    }
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

    /// The listing bytes of `l`, or why not.
    async fn render_listing(&self, l: &Listing) -> Result<Rendered, VfsError> {
        let mut opts = ListOptions {
            format: l.format,
            all: l.all,
            prefix: None,
            facts: self.session.facts(),
            perms: self.session.perms(),
            now: unix_now(),
        };
        let mut budget = Budget {
            entries_left: self.ctx.config.list_max_entries,
            max_entries: self.ctx.config.list_max_entries,
            max_depth: if l.recursive && l.format == ListFormat::Long {
                self.ctx.config.list_max_depth
            } else {
                0
            },
            depth_hit: false,
        };
        let links = if l.format == ListFormat::Machine {
            Links::Follow
        } else {
            Links::Show
        };
        let mut out = Vec::new();
        let st = match resolve::stat(self.root(), &l.path).await {
            Ok(st) => st,
            Err(VfsError::NotFound) => {
                let Some((dir, pattern)) = glob::split(&l.path) else {
                    return Err(VfsError::NotFound);
                };
                let mut entries = self.read_dir(&dir, links).await?;
                entries.retain(|e| pattern_keeps(&pattern, e));
                budget.take(&mut entries);
                if l.format == ListFormat::Names {
                    let typed = glob::typed_dir(l.shown.as_deref().unwrap_or_default());
                    opts.prefix = (!typed.is_empty()).then(|| typed.to_vec());
                }
                listing::render_entries(&entries, &opts, &mut out);
                return Ok(Rendered {
                    bytes: out,
                    entries: budget.taken(),
                    cut: budget.cut(),
                });
            }
            Err(e) => return Err(e),
        };
        if !st.is_dir() {
            if l.format == ListFormat::Machine {
                return Err(VfsError::NotADirectory);
            }
            // LIST/NLST of a file: that one file, named as the client typed it.
            let entry = st.entry(listing::shown_name(&l.path, l.shown.as_deref()), None);
            listing::render_file(&entry, &opts, &mut out);
            return Ok(Rendered {
                bytes: out,
                entries: 1,
                cut: None,
            });
        }
        if l.format == ListFormat::Names {
            opts.prefix = l.shown.as_deref().and_then(listing::nlst_prefix);
        }
        if budget.max_depth == 0 {
            let mut entries = self.read_dir(&l.path, links).await?;
            budget.take(&mut entries);
            listing::render_entries(&entries, &opts, &mut out);
        } else {
            let typed = l.shown.clone().unwrap_or_else(|| b".".to_vec());
            self.render_tree(&l.path, typed, &opts, &mut budget, &mut out)
                .await?;
        }
        Ok(Rendered {
            bytes: out,
            entries: budget.taken(),
            cut: budget.cut(),
        })
    }

    /// `LIST -R`: the directory `vpath` (typed by the client as `typed`),
    /// then each subdirectory, depth first, each under an `ls -lR` style
    /// `path:` header. A subdirectory that vanished or is unreadable is
    /// skipped, as `ls -R` goes on past it.
    async fn render_tree(
        &self,
        vpath: &[u8],
        typed: Vec<u8>,
        opts: &ListOptions,
        budget: &mut Budget,
        out: &mut Vec<u8>,
    ) -> Result<(), VfsError> {
        // (virtual path, as typed, depth)
        let mut todo = vec![(vpath.to_vec(), typed, 0usize)];
        let mut first = true;
        while let Some((dir_vpath, dir_typed, depth)) = todo.pop() {
            if budget.entries_left == 0 {
                break;
            }
            let mut entries = match self.read_dir(&dir_vpath, Links::Show).await {
                Ok(e) => e,
                Err(e) if first => return Err(e),
                Err(_) => continue,
            };
            if !first {
                out.extend_from_slice(b"\r\n");
            }
            first = false;
            out.extend_from_slice(&dir_typed);
            out.extend_from_slice(b":\r\n");
            budget.take(&mut entries);
            listing::render_entries(&entries, opts, out);
            // Pushed in reverse so the first subdirectory comes out first.
            for e in entries.iter().rev() {
                if e.kind != EntryKind::Dir || (!opts.all && e.name.first() == Some(&b'.')) {
                    continue;
                }
                if depth >= budget.max_depth {
                    budget.depth_hit = true;
                    continue;
                }
                let mut typed = dir_typed.clone();
                if !typed.ends_with(b"/") {
                    typed.push(b'/');
                }
                typed.extend_from_slice(&e.name);
                todo.push((path::join(&dir_vpath, &e.name), typed, depth + 1));
            }
        }
        Ok(())
    }

    pub(super) async fn list(&mut self, verb: &'static str, l: Listing, data: DataMode) -> Flow {
        let rendered = match self.render_listing(&l).await {
            Ok(r) => r,
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
        let opening = Reply::new(FILE_STATUS_OK, "Here comes the directory listing.");
        let mut t = Transfer::new(verb, Direction::Listing, l.path, false, data);
        t.note = rendered.cut;
        let outcome = self
            .run_transfer(&t, opening, Job::Listing(rendered.bytes))
            .await;
        if outcome.is_complete() {
            self.ctx
                .metrics
                .listing_entries
                .add(rendered.entries as u64);
        }
        self.finish(&t, outcome).await
    }

    pub(super) async fn mlst(&mut self, vpath: Vec<u8>) -> Flow {
        let st = match resolve::stat(self.root(), &vpath).await {
            Ok(st) => st,
            Err(e) => return self.refuse(&vpath, e).await,
        };
        let entry = st.entry(vpath.clone(), None);
        let text = listing::mlst_text(&vpath, &entry, self.session.facts(), self.session.perms());
        self.reply(Reply::new(FILE_ACTION_OK, text)).await
    }

    /// STAT with a path: a LIST over the control connection (RFC 959); a
    /// single file is named by its last component.
    pub(super) async fn stat_path(&mut self, mut l: Listing) -> Flow {
        if l.shown.is_some() && glob::split(&l.path).is_none() {
            l.shown = Some(path::file_name(&l.path).to_vec());
        }
        match self.render_listing(&l).await {
            Ok(r) => {
                self.ctx.metrics.listing_entries.add(r.entries as u64);
                let mut text = listing::stat_text(&r.bytes);
                if let Some(cut) = r.cut {
                    text.extend_from_slice(b" (");
                    text.extend_from_slice(cut.as_bytes());
                    text.push(b')');
                }
                self.reply(Reply::new(FILE_STATUS, text)).await
            }
            Err(e) => self.refuse(&l.path, e).await,
        }
    }
}

/// Whether a pattern listing keeps `e`: the name matches (as UTF-8, what
/// the client typed the pattern in).
fn pattern_keeps(pattern: &Pattern, e: &Entry) -> bool {
    std::str::from_utf8(&e.name).is_ok_and(|n| pattern.matches(n))
}
