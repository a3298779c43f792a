//! The remote paths a run's requests use, gathered once before the run.
//!
//! They come from the scenario's `paths` (used as given), or from `files` /
//! `--files`:
//! - a local file: one remote path a line (`#` comments and blank lines
//!   skipped), e.g. the `index.txt` that `prepare` writes;
//! - otherwise a remote path. For a scenario that downloads, it is a
//!   directory listed recursively with MLSD (RFC 3659), or with a flat NLST
//!   where the server has no MLSD; for one that lists, it is the directory
//!   to list.
//!
//! With `--verify`, downloads must know each file's size to check the byte
//! count; MLSD gives it, otherwise one `SIZE` per file is asked here, before
//! the run, so the measured requests stay plain RETRs.
//!
//! A scenario that uploads has its `upload_dir` checked here too (one
//! `CWD`), so an account whose home lacks it gets one clear error before
//! the run rather than a 550 per request.

use std::path::Path;

use anyhow::{bail, Context};

use super::client::Control;
use super::data::BufPool;
use super::failure::Failure;
use super::plan::Plan;
use super::scenario::Op;
use super::transfer;
use crate::proto::reply::codes;

/// A remote path, with its size when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub path: String,
    pub size: Option<u64>,
}

/// Directories and files an MLSD walk may visit before giving up: a guard
/// against pointing `--files` at the root of a huge (or looping) server.
const MAX_WALK: usize = 1_000_000;

/// Gathers the plan's targets (an empty list when no op needs one). Runs
/// on a tokio-uring runtime; may log in to the server once.
pub(crate) async fn load(plan: &Plan) -> anyhow::Result<Vec<Target>> {
    let mut session: Option<Control> = None;
    if plan.has(Op::Stor) {
        let ctrl = login(plan, &mut session).await?;
        check_upload_dir(ctrl, plan).await?;
    }
    if !plan.ops.iter().any(|a| a.op.needs_path()) {
        if let Some(ctrl) = session {
            let _ = ctrl.quit().await;
        }
        return Ok(Vec::new());
    }
    let mut targets: Vec<Target> = plan
        .paths
        .iter()
        .map(|p| Target {
            path: p.clone(),
            size: None,
        })
        .collect();
    // Walk a remote directory for files when an op names a file; a
    // listing on its own lists the directory itself.
    let walks = plan.names_files();
    let downloads = plan.has(Op::Retr);

    if let Some(files) = &plan.files {
        if Path::new(files).is_file() {
            let text =
                std::fs::read_to_string(files).with_context(|| format!("--files {files}"))?;
            targets.extend(parse_index(&text));
        } else if !walks {
            targets.push(Target {
                path: files.clone(),
                size: None,
            });
        } else {
            let ctrl = login(plan, &mut session).await?;
            targets.extend(walk(ctrl, plan, files).await?);
        }
    }
    if targets.is_empty() {
        bail!(
            "no remote paths to use (from {:?}): nothing to request",
            plan.files.as_deref().unwrap_or("paths")
        );
    }

    if plan.verify && downloads && targets.iter().any(|t| t.size.is_none()) {
        let ctrl = login(plan, &mut session).await?;
        for t in targets.iter_mut().filter(|t| t.size.is_none()) {
            let r = ctrl
                .command(&format!("SIZE {}", t.path))
                .await
                .map_err(anyhow::Error::msg)?;
            match r.code {
                codes::FILE_STATUS => t.size = r.text.trim().parse().ok(),
                codes::FILE_UNAVAILABLE => {
                    bail!("--verify: {} does not exist on the server ({})", t.path, r)
                }
                _ => {
                    eprintln!("loadtest: the server does not answer SIZE ({r}); --verify checks content but not byte counts");
                    break;
                }
            }
        }
    }
    if let Some(ctrl) = session {
        let _ = ctrl.quit().await;
    }
    Ok(targets)
}

/// Refuses to start an upload run whose `upload_dir` the account cannot
/// enter, saying why: paths are the account's view, whose root is its home.
async fn check_upload_dir(ctrl: &mut Control, plan: &Plan) -> anyhow::Result<()> {
    let dir = &plan.upload_dir;
    let r = ctrl
        .command(&format!("CWD {dir}"))
        .await
        .map_err(anyhow::Error::msg)?;
    if r.is_success() {
        let _ = ctrl.command("CWD /").await;
        return Ok(());
    }
    bail!(
        "uploads go to {dir}/lg-N.bin, but user {:?} cannot enter {dir} on {} ({}). \
         Upload paths are as the account sees them, with its home directory as `/`: \
         create {dir} under the account's home (e.g. the prepared tree's upload/ when \
         the home is the tree's root), or point --upload-dir (scenario field \
         upload_dir) at a directory the account can write to.",
        plan.user,
        plan.target,
        r.to_string().trim()
    )
}

async fn login<'a>(
    plan: &Plan,
    session: &'a mut Option<Control>,
) -> anyhow::Result<&'a mut Control> {
    if session.is_none() {
        let what = || format!("set-up session with {}", plan.target);
        let mut ctrl = Control::connect(plan.target, plan.timeout)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        ctrl.data_rcvbuf = plan.rcvbuf;
        ctrl.greeting()
            .await
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        ctrl.login(&plan.user, &plan.password)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        ctrl.expect_ok("TYPE I")
            .await
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        *session = Some(ctrl);
    }
    Ok(session.as_mut().expect("just set"))
}

/// Lists `root` recursively (MLSD), or flat (NLST) when MLSD is refused.
async fn walk(ctrl: &mut Control, plan: &Plan, root: &str) -> anyhow::Result<Vec<Target>> {
    let pool = BufPool::default();
    let mut found = Vec::new();
    let mut dirs = vec![root.trim_end_matches('/').to_string()];
    let mut visited = 0;
    while let Some(dir) = dirs.pop() {
        visited += 1;
        if visited + found.len() > MAX_WALK {
            bail!("--files {root}: more than {MAX_WALK} entries; point it at a smaller directory or use an index file");
        }
        let shown = if dir.is_empty() { "/" } else { dir.as_str() };
        let text = match fetch(ctrl, plan, &format!("MLSD {shown}"), &pool).await {
            Ok(t) => t,
            Err(Failure::Reply {
                code: codes::SYNTAX_ERROR | codes::NOT_IMPLEMENTED | codes::NOT_IMPLEMENTED_PARAM,
                ..
            }) if found.is_empty() && visited == 1 => {
                let text = fetch(ctrl, plan, &format!("NLST {shown}"), &pool)
                    .await
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("--files {root}: NLST"))?;
                return Ok(parse_nlst(&dir, &text));
            }
            Err(e) => bail!("--files {root}: MLSD {shown}: {e}"),
        };
        for line in text.lines() {
            match parse_mlsd_line(line) {
                Some(Entry::File(name, size)) => found.push(Target {
                    path: format!("{dir}/{name}"),
                    size,
                }),
                Some(Entry::Dir(name)) => dirs.push(format!("{dir}/{name}")),
                None => {}
            }
        }
    }
    Ok(found)
}

async fn fetch(
    ctrl: &mut Control,
    plan: &Plan,
    command: &str,
    pool: &BufPool,
) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    transfer::download(ctrl, plan.mode, command, plan.timeout, pool, |_, chunk| {
        bytes.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Remote paths from an index file's text.
pub(crate) fn parse_index(text: &str) -> Vec<Target> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| Target {
            path: l.to_string(),
            size: None,
        })
        .collect()
}

/// One MLSD entry that matters: a file (with its size fact) or a
/// subdirectory. `.`/`..` (cdir/pdir) and other types are skipped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    File(String, Option<u64>),
    Dir(String),
}

/// Parses `fact=value;fact=value; name` (RFC 3659 section 7.2); fact names
/// are case-insensitive.
pub(crate) fn parse_mlsd_line(line: &str) -> Option<Entry> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (facts, name) = line.split_once(' ')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let mut kind = None;
    let mut size = None;
    for fact in facts.split(';') {
        let Some((k, v)) = fact.split_once('=') else {
            continue;
        };
        match k.to_ascii_lowercase().as_str() {
            "type" => kind = Some(v.to_ascii_lowercase()),
            "size" => size = v.parse().ok(),
            _ => {}
        }
    }
    match kind.as_deref() {
        Some("file") => Some(Entry::File(name.to_string(), size)),
        Some("dir") => Some(Entry::Dir(name.to_string())),
        _ => None,
    }
}

/// NLST output: one name (or path) a line. Names are joined to `dir`;
/// servers that answer with full paths are taken at their word.
pub(crate) fn parse_nlst(dir: &str, text: &str) -> Vec<Target> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && *l != "." && *l != "..")
        .map(|l| Target {
            path: if l.starts_with('/') {
                l.to_string()
            } else {
                format!("{dir}/{l}")
            },
            size: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlsd_lines() {
        let table = [
            (
                "type=file;size=1234;modify=20240101000000; f000001.dat",
                Some(Entry::File("f000001.dat".into(), Some(1234))),
            ),
            (
                "Type=DIR;Modify=20240101000000; d01\r",
                Some(Entry::Dir("d01".into())),
            ),
            ("type=cdir; .", None),
            ("type=pdir; ..", None),
            (
                "type=file;perm=r; name with spaces.txt",
                Some(Entry::File("name with spaces.txt".into(), None)),
            ),
            ("type=OS.unix=symlink; link", None),
            ("garbage", None),
        ];
        for (line, want) in table {
            assert_eq!(parse_mlsd_line(line), want, "{line}");
        }
    }

    #[test]
    fn index_and_nlst() {
        let idx = parse_index("# comment\n/pub/a.dat\n\n  /pub/b.dat  \n");
        assert_eq!(
            idx.iter().map(|t| t.path.as_str()).collect::<Vec<_>>(),
            ["/pub/a.dat", "/pub/b.dat"]
        );
        let n = parse_nlst("/pub", "a.dat\r\n/abs/b.dat\r\n.\r\n");
        assert_eq!(
            n.iter().map(|t| t.path.as_str()).collect::<Vec<_>>(),
            ["/pub/a.dat", "/abs/b.dat"]
        );
    }
}
