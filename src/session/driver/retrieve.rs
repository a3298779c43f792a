//! RETR: open the file under the session's root (race-free), check the
//! restart offset, then send it over the data connection — zero-copy in
//! binary mode (see [`crate::engine::splice`]), converted to CRLF in ASCII.

use std::rc::Rc;

use super::transfer::{Job, Outcome, Transfer};
use super::{shown, Conn, Flow};
use crate::engine::sys::{self, FdRef};
use crate::proto::codes::*;
use crate::proto::Reply;
use crate::session::outcome::Direction;
use crate::session::step::DataMode;
use crate::vfs::world::Use;
use crate::vfs::{path, resolve, VfsError};

impl Conn {
    pub(super) async fn retr(
        &mut self,
        verb: &'static str,
        vpath: Vec<u8>,
        offset: u64,
        ascii: bool,
        data: DataMode,
    ) -> Flow {
        let opened = resolve::open_file(self.root(), &vpath, self.published_only()).await;
        let (file, st, linked) = match opened {
            Ok(f) => f,
            Err(e @ (VfsError::NotAFile | VfsError::PermissionDenied)) if self.published_only() => {
                // What anonymous is not shown reads as missing; what it is
                // shown keeps its reason: a directory (even a 0711 one the
                // server may not open for reading) is "Not a plain file.",
                // a shown file the server's user may not read is refused.
                let e = match self.stat_published(&vpath, Use::Look).await {
                    Ok(found) if !found.stat.is_file() => VfsError::NotAFile,
                    Ok(_) => e,
                    Err(hidden) => hidden,
                };
                return self.refuse(&vpath, e).await;
            }
            Err(e) => return self.refuse(&vpath, self.lookup_error(e)).await,
        };
        let through = linked.then_some(&file);
        if let Err(e) = self.published(&vpath, through, &st, Use::Read).await {
            return self.refuse(&vpath, e).await;
        }
        if offset > st.size {
            let e = VfsError::PastEnd {
                offset,
                size: st.size,
            };
            return self.refuse(&vpath, e).await;
        }
        let name = shown(path::file_name(&vpath));
        // The byte count a client may show as progress is the file's size
        // in TYPE I; in TYPE A the converted stream is longer, so none is
        // given (RFC 959 leaves it out of the 150 altogether).
        let text = if ascii {
            format!("Opening ASCII mode data connection for {name}.")
        } else {
            format!(
                "Opening BINARY mode data connection for {name} ({} bytes).",
                st.size
            )
        };
        let opening = Reply::new(FILE_STATUS_OK, text);
        // The RETR's own handle on the file goes after the 226: the
        // close(2) is then not part of the client's wait.
        let file: FdRef = Rc::new(file);
        let job = Job::File {
            file: file.clone(),
            size: st.size,
            offset,
            residency: sys::Residency::for_file(st.uid, st.gid, st.mode),
        };
        let t = Transfer::new(verb, Direction::Download, vpath, ascii, data);
        let outcome = self.run_transfer(&t, opening, job).await;
        if let Outcome::Connected { bytes, .. } = outcome {
            self.log_transfer(&t, bytes, outcome.is_complete()).await;
        }
        let flow = self.finish(&t, outcome).await;
        drop(file);
        flow
    }
}
