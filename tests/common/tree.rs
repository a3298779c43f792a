//! The test's files: the [`Fixture`] directories (a served root and a
//! scratch directory), deterministic test data, the comparisons that
//! check what a client got against the source, byte for byte, and a small
//! [`Tmpfs`] for the disk-full tests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A test's temporary directories: `root` (served) and `work` (downloads,
/// server log, scratch). Both are removed on drop.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub work: PathBuf,
    /// The server's user once the tree was given to it (see
    /// [`Fixture::give_to_server_user`]): files written later through
    /// [`Fixture::write`] are given to it too.
    owner: std::sync::OnceLock<(u32, u32)>,
}

/// The names at the top of [`Fixture::standard_tree`], sorted.
pub const STANDARD_TOP: [&str; 7] = [
    "dir",
    "empty",
    "hello.txt",
    "h\u{e9}llo w\u{f6}rld.txt",
    "link-to-a",
    "with space.txt",
    "\u{65e5}\u{672c}.txt",
];

impl Fixture {
    pub fn new() -> Fixture {
        Self::in_dir(
            tempfile::Builder::new()
                .prefix("ringftp-itest-")
                .tempdir()
                .unwrap(),
        )
    }

    /// A fixture under the build's own temporary directory (target/tmp),
    /// on the disk the build lives on even where /tmp is a tmpfs, for
    /// tests that need pages to leave the page cache.
    pub fn on_disk() -> Fixture {
        Self::in_dir(
            tempfile::Builder::new()
                .prefix("ringftp-itest-")
                .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
                .unwrap(),
        )
    }

    /// A fixture on tmpfs (/dev/shm), for tests of a tree served from
    /// memory.
    #[allow(dead_code)]
    pub fn on_tmpfs() -> Fixture {
        Self::in_dir(
            tempfile::Builder::new()
                .prefix("ringftp-itest-")
                .tempdir_in("/dev/shm")
                .expect("a directory on /dev/shm"),
        )
    }

    fn in_dir(dir: tempfile::TempDir) -> Fixture {
        let root = dir.path().join("root");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        Fixture {
            _dir: dir,
            root,
            work,
            owner: std::sync::OnceLock::new(),
        }
    }

    /// Fills `dir` with `n` empty files of 200-byte names (a five-digit
    /// number, then `fill`): an NLST of `n` × 202 bytes, about 6 MiB for
    /// 30,000, more than the socket buffers hold. Returns the names,
    /// sorted (compare them with [`nlst_names`]).
    pub fn wide_dir(&self, dir: &str, n: usize, fill: char) -> Vec<String> {
        let mut names: Vec<String> = (0..n)
            .map(|i| format!("{i:05}{}", fill.to_string().repeat(195)))
            .collect();
        for name in &names {
            self.write(&format!("{dir}/{name}"), b"");
        }
        names.sort();
        names
    }

    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = write(&self.root, rel, data);
        if let Some(&(uid, gid)) = self.owner.get() {
            // The file and the directories made for it, up to the root.
            let mut at = p.as_path();
            while at.starts_with(&self.root) && at != self.root {
                let _ = std::os::unix::fs::lchown(at, Some(uid), Some(gid));
                at = at.parent().expect("inside the root");
            }
        }
        p
    }

    /// The bytes of a served file.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root.join(rel)).unwrap()
    }

    /// A path under `work` (not served).
    pub fn out(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }

    /// The standard small tree most tests use:
    ///
    /// ```text
    /// hello.txt                 text, LF line ends
    /// empty                     0 bytes
    /// dir/a.bin                 100 KiB pseudo-random
    /// dir/b.bin                 1 MiB + 3 bytes
    /// dir/sub/deeper/c.txt
    /// with space.txt
    /// héllo wörld.txt
    /// 日本.txt
    /// link-to-a -> dir/a.bin    relative symlink inside the root
    /// ```
    pub fn standard_tree(&self) {
        self.write("hello.txt", &text_lines(50));
        self.write("empty", b"");
        self.write("dir/a.bin", &pattern(1, 100 * 1024));
        self.write("dir/b.bin", &pattern(2, (1 << 20) + 3));
        self.write("dir/sub/deeper/c.txt", b"deep file\n");
        self.write("with space.txt", b"a name with spaces\n");
        self.write(
            "h\u{e9}llo w\u{f6}rld.txt",
            "UTF-8 name: h\u{e9}llo\n".as_bytes(),
        );
        self.write("\u{65e5}\u{672c}.txt", "\u{65e5}\u{672c}\n".as_bytes());
        symlink(&self.root, "link-to-a", "dir/a.bin");
    }
}

/// The account a server started as root without `--user` serves as:
/// `ftp` if the system has one, else `nobody` (as `ringftp serve` picks
/// it). `(name, uid, gid)`.
pub fn server_user() -> (String, u32, u32) {
    for name in ["ftp", "nobody"] {
        if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
            return (name.to_string(), u.uid.as_raw(), u.gid.as_raw());
        }
    }
    panic!("neither an ftp nor a nobody account exists");
}

impl Fixture {
    /// Before a server started by root (which drops to [`server_user`])
    /// serves `root`: the fixture's directories become reachable (0755),
    /// and `root`, when it lies inside the fixture, and the scratch
    /// directory are given to the server's user, so uploads work as they
    /// did when the server ran as root. Nothing happens when the tests do
    /// not run as root, or for a root outside the fixture.
    pub fn give_to_server_user(&self, root: &Path) {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let (_, uid, gid) = server_user();
        let top = self.root.parent().expect("the fixture root has a parent");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
        let inside = root
            .canonicalize()
            .ok()
            .zip(top.canonicalize().ok())
            .is_some_and(|(r, t)| r.starts_with(t));
        if inside {
            chown_tree(root, uid, gid);
        }
        chown_tree(&self.work, uid, gid);
        let _ = self.owner.set((uid, gid));
    }
}

/// Gives a directory a test created outside any [`Fixture`] to the account
/// a server started as root serves as ([`server_user`]): `chown -R`. A
/// no-op unless the tests run as root.
pub fn give_dir_to_server_user(dir: &Path) {
    if nix::unistd::geteuid().is_root() {
        let (_, uid, gid) = server_user();
        chown_tree(dir, uid, gid);
    }
}

/// `chown -R uid:gid dir`, symlinks themselves (not their targets).
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).unwrap();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => chown_tree(&p, uid, gid),
            _ => {
                let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
            }
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

/// `len` deterministic pseudo-random bytes (xorshift64*), fast enough for
/// the 80 MiB files of the big-file tests.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What a TYPE A download sends for a file's `bytes`: each bare LF as
/// CRLF (a CR LF pair already there goes as it is).
pub fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Text with LF line ends (for TYPE A tests).
pub fn text_lines(n: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "line {i}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    s.into_bytes()
}

/// Writes `data` to `root/rel`, creating parent directories.
pub fn write(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, data).unwrap();
    p
}

/// [`write`] for a name given as bytes (one that is not UTF-8, or holds
/// 0xFF): `root/rel`, parent directories created.
pub fn write_raw(root: &Path, rel: &[u8], data: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let p = root.join(std::ffi::OsStr::from_bytes(rel));
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, data).unwrap();
    p
}

/// The names in `dir` as bytes (not recursive), sorted.
pub fn raw_names_in(dir: &Path) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    v.sort();
    v
}

pub fn mkdir(root: &Path, rel: &str) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    p
}

pub fn symlink(root: &Path, rel: &str, target: &str) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// Sets a file's modification time to `unix` seconds.
pub fn set_mtime(path: &Path, unix: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(unix))
        .unwrap();
}

/// The sha256 of `data`, by `sha256sum` (only used for failure messages).
pub fn sha256(data: &[u8]) -> String {
    let mut child = match Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return "(sha256sum unavailable)".into(),
    };
    let mut stdin = child.stdin.take().unwrap();
    let owned = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&owned);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Asserts two byte strings are equal; on mismatch says where they differ
/// and prints both sha256 sums instead of megabytes of bytes.
#[track_caller]
pub fn assert_bytes_eq(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: content differs: got {} bytes (sha256 {}), want {} bytes (sha256 {}); first difference at offset {first}",
        got.len(),
        sha256(got),
        want.len(),
        sha256(want)
    );
}

/// Reads `got` and `want` and asserts they are byte-for-byte equal.
#[track_caller]
pub fn assert_same_file(got: &Path, want: &Path) {
    let g = std::fs::read(got).unwrap_or_else(|e| panic!("cannot read {}: {e}", got.display()));
    let w = std::fs::read(want).unwrap_or_else(|e| panic!("cannot read {}: {e}", want.display()));
    assert_bytes_eq(&format!("{} vs {}", got.display(), want.display()), &g, &w);
}

/// One entry of [`walk`]: the path relative to the walked directory, the
/// full path and its metadata.
pub struct Entry {
    pub rel: String,
    pub path: PathBuf,
    pub meta: std::fs::Metadata,
}

/// Everything under `dir`, depth first, each directory's entries sorted by
/// name. With `follow`, symlinks are followed (a link to a directory is
/// walked into; a dangling link panics); without, a link is an entry of
/// its own.
pub fn walk(dir: &Path, follow: bool) -> Vec<Entry> {
    fn go(base: &Path, dir: &Path, follow: bool, out: &mut Vec<Entry>) {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let meta = if follow {
                std::fs::metadata(&path)
            } else {
                std::fs::symlink_metadata(&path)
            }
            .unwrap_or_else(|e| panic!("{}: {e} (a dangling link?)", path.display()));
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let is_dir = meta.is_dir();
            out.push(Entry {
                rel,
                path: path.clone(),
                meta,
            });
            if is_dir {
                go(base, &path, follow, out);
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, follow, &mut out);
    out
}

/// Every regular file under `dir` (following symlinks), as relative path
/// -> bytes. Directories map to `None` so that empty directories count
/// too.
pub fn tree_contents(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    walk(dir, true)
        .into_iter()
        .map(|e| {
            let bytes = (!e.meta.is_dir()).then(|| std::fs::read(&e.path).unwrap());
            (e.rel, bytes)
        })
        .collect()
}

/// Asserts that `got` holds exactly the files and directories of `want`,
/// each file byte for byte. `ignore` names (e.g. wget's `.listing`) are
/// skipped in `got`.
#[track_caller]
pub fn assert_same_tree(got: &Path, want: &Path, ignore: &[&str]) {
    let mut g = tree_contents(got);
    g.retain(|k, _| {
        !ignore
            .iter()
            .any(|i| Path::new(k).file_name().is_some_and(|n| n == *i))
    });
    let w = tree_contents(want);
    let gk: Vec<_> = g.keys().collect();
    let wk: Vec<_> = w.keys().collect();
    assert_eq!(
        gk,
        wk,
        "the downloaded tree {} has other names than the source {}",
        got.display(),
        want.display()
    );
    for (k, wv) in &w {
        match (wv, &g[k]) {
            (None, None) => {}
            (Some(wb), Some(gb)) => assert_bytes_eq(k, gb, wb),
            _ => panic!("{k}: a file on one side, a directory on the other"),
        }
    }
}

/// `sha256sum` of a file (hex).
pub fn sha256_file(p: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(p)
        .output()
        .unwrap_or_else(|e| panic!("sha256sum {}: {e}", p.display()));
    assert!(out.status.success(), "sha256sum {}", p.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// relative path -> sha256 of every regular file under `dir` ("dir" for
/// directories; a symlink is not walked into), by `sha256sum`.
pub fn sha256_tree(dir: &Path) -> BTreeMap<String, String> {
    walk(dir, false)
        .into_iter()
        .map(|e| {
            let sum = if e.meta.is_dir() {
                "dir".to_string()
            } else {
                sha256_file(&e.path)
            };
            (e.rel, sum)
        })
        .collect()
}

/// The names an NLST listed (the last path component of each line),
/// sorted: NLST's order is the directory's.
pub fn nlst_names(bytes: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Names in `dir` (not recursive), sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A tmpfs mounted for one test; unmounted on drop (also on panic).
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`; `None` (and says why) where
    /// mounting is not permitted.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here ({}): a disk-full test needs root \
                     and mount permission",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}): a disk-full test needs it");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}
