//! `ringftp loadtest prepare`: writes the deterministic tree the bundled
//! scenarios run against, and the content function that lets `--verify`
//! check every downloaded byte without a copy of the data.
//!
//! **Content.** Byte `i` of a file is a pure function of the file's path
//! (relative to the tree root) and `i`: the path is hashed once (FNV-1a) into
//! a key, and each 8-byte word `w = i / 8` is `splitmix64(key ^ w * φ)`,
//! stored little-endian. Any offset can be checked on its own (a download
//! resumed with REST, a chunk in the middle of a stream), it costs a
//! multiply-xorshift per 8 bytes, and two files never share content. Tests
//! of the server reuse [`fill`] and [`first_mismatch`].
//!
//! **Tree.** Under `--dir`:
//! - `pub/dNN/dNN/fNNNNNN.dat`: `--files` mirror files, 100 a directory,
//!   10 directories a parent. Sizes follow a mirror's shape: 97.4 % small
//!   (1–64 KiB), 2.5 % mid-size (1–16 MiB), 0.1 % large (64–256 MiB), each
//!   log-uniform within its class and capped at `--max-size` (16 MiB by
//!   default, so 10,000 files are about 1.8 GiB; raise it to get the large
//!   class too);
//! - `listing/`: `--listing` small files (10,000 by default) in one
//!   directory, for the `listing` scenario;
//! - `bigfile`: `--bigfile` bytes (1 GiB by default, 0 for none);
//! - `ops/`: 100 files of exactly 1 KiB (`f00.dat` .. `f99.dat`), for the
//!   `single-ops` scenario (SIZE, MDTM, RETR of a 1 KiB file, LIST of a
//!   100-entry directory);
//! - `upload/`: an empty directory for the scenarios that upload;
//! - `index.txt`: every mirror file's remote path (`/pub/...`), one a line,
//!   usable with `--files`.
//!
//! Everything follows from the arguments (`--seed` picks the sizes): the
//! same arguments always give the same tree, byte for byte.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::units::{format_bytes, parse_size};

/// Flags of `ringftp loadtest prepare`.
#[derive(Args, Debug, Clone)]
pub struct PrepareArgs {
    /// Directory to write the tree into (created if missing; files already
    /// there with the same names are overwritten).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Mirror files to write under pub/.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub files: u64,

    /// Seed of the size draw: same seed, same tree.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Largest mirror file; larger draws are capped to it. The default keeps
    /// a 10,000-file tree near 1.8 GiB; `--max-size 256MiB` adds the few
    /// 64-256 MiB files of the large class.
    #[arg(long = "max-size", value_name = "SIZE", default_value = "16MiB", value_parser = parse_size)]
    pub max_size: u64,

    /// Size of /bigfile for the bigfile scenario (0: do not write it).
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub bigfile: u64,

    /// Entries in /listing for the listing scenario (0: do not write it).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub listing: u64,
}

/// Files in one leaf directory of pub/, and leaf directories per parent.
const FILES_PER_DIR: u64 = 100;
const DIRS_PER_PARENT: u64 = 10;
/// Files in ops/, and the size of each.
const OPS_FILES: u64 = 100;
const OPS_FILE_SIZE: u64 = 1024;
/// Write buffer: big enough that a large file costs few syscalls.
const CHUNK: usize = 4 << 20;

/// The content of one file, keyed by its path.
#[derive(Clone, Copy, Debug)]
pub struct Content {
    key: u64,
}

impl Content {
    /// The content of the file at `path`, relative to the tree root. A
    /// leading `/` is ignored, so remote paths of a server rooted at the tree
    /// can be passed as they are.
    pub fn new(path: &str) -> Content {
        let rel = path.trim_start_matches('/');
        // FNV-1a: tiny, and good enough to spread similar paths apart
        // before splitmix64 does the real mixing.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in rel.as_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Content { key: h }
    }

    /// The 8-byte word at index `w` (bytes `8w .. 8w+8`).
    #[inline]
    fn word(self, w: u64) -> u64 {
        splitmix64(self.key ^ w.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Byte at `offset`.
    pub fn byte_at(self, offset: u64) -> u8 {
        self.word(offset / 8).to_le_bytes()[(offset % 8) as usize]
    }

    /// Fills `buf` with the bytes at `offset..offset + buf.len()`.
    pub fn fill(self, offset: u64, buf: &mut [u8]) {
        let head = (((8 - offset % 8) % 8) as usize).min(buf.len());
        for (i, b) in buf[..head].iter_mut().enumerate() {
            *b = self.byte_at(offset + i as u64);
        }
        let body_start = offset + head as u64;
        let mut words = buf[head..].chunks_exact_mut(8);
        let mut w = body_start / 8;
        for chunk in &mut words {
            chunk.copy_from_slice(&self.word(w).to_le_bytes());
            w += 1;
        }
        let tail = words.into_remainder();
        let tail_start = w * 8;
        for (i, b) in tail.iter_mut().enumerate() {
            *b = self.byte_at(tail_start + i as u64);
        }
    }

    /// Offset (from the start of the file) of the first byte of `data` that
    /// differs from the content at `offset..`, or `None` when all match.
    pub fn first_mismatch(self, offset: u64, data: &[u8]) -> Option<u64> {
        let head = (((8 - offset % 8) % 8) as usize).min(data.len());
        for (i, &b) in data[..head].iter().enumerate() {
            if b != self.byte_at(offset + i as u64) {
                return Some(offset + i as u64);
            }
        }
        let mut pos = offset + head as u64;
        let mut words = data[head..].chunks_exact(8);
        for chunk in &mut words {
            let want = self.word(pos / 8).to_le_bytes();
            if chunk != want {
                let i = chunk
                    .iter()
                    .zip(want)
                    .position(|(a, b)| *a != b)
                    .unwrap_or(0);
                return Some(pos + i as u64);
            }
            pos += 8;
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            if b != self.byte_at(pos + i as u64) {
                return Some(pos + i as u64);
            }
        }
        None
    }
}

/// Byte at `offset` of the file at `path` (see [`Content::new`]).
pub fn content_byte_at(path: &str, offset: u64) -> u8 {
    Content::new(path).byte_at(offset)
}

/// Fills `buf` with the bytes of the file at `path` from `offset`.
pub fn fill(path: &str, offset: u64, buf: &mut [u8]) {
    Content::new(path).fill(offset, buf)
}

/// First offset where `data`, read from `path` at `offset`, is wrong.
pub fn first_mismatch(path: &str, offset: u64, data: &[u8]) -> Option<u64> {
    Content::new(path).first_mismatch(offset, data)
}

#[inline]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A deterministic random sequence (splitmix64 over a counter).
pub struct Rng(u64);

impl Rng {
    /// The sequence for `seed`: the same seed always gives the same values.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next value, uniform over all of `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        splitmix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant at our n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Size of mirror file number `index`: the class and the size within it
/// both come from the seeded sequence of that one file, so adding files
/// never changes the sizes of the first ones.
pub fn mirror_file_size(seed: u64, index: u64, max_size: u64) -> u64 {
    let mut rng = Rng::new(splitmix64(seed) ^ splitmix64(index.wrapping_add(0x5eed)));
    let class = rng.unit();
    let (lo, hi): (f64, f64) = if class < 0.974 {
        (1024.0, 65536.0)
    } else if class < 0.999 {
        (1048576.0, 16777216.0)
    } else {
        (67108864.0, 268435456.0)
    };
    // Log-uniform: as many files between 1 and 2 KiB as between 32 and 64.
    let size = (lo.ln() + rng.unit() * (hi.ln() - lo.ln())).exp() as u64;
    size.min(max_size)
}

/// Remote path of mirror file number `index` (a leading `/`, relative to
/// the tree root).
pub fn mirror_file_path(index: u64) -> String {
    let leaf = index / FILES_PER_DIR;
    format!(
        "/pub/d{:02}/d{:02}/f{index:06}.dat",
        leaf / DIRS_PER_PARENT,
        leaf % DIRS_PER_PARENT
    )
}

/// Runs `prepare`: writes the tree and prints what it wrote.
pub fn run(args: &PrepareArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let mut writer = TreeWriter {
        root: args.dir.clone(),
        buf: vec![0; CHUNK],
        files: 0,
        bytes: 0,
    };

    let mut index = String::new();
    for i in 0..args.files {
        let path = mirror_file_path(i);
        writer.write_file(&path, mirror_file_size(args.seed, i, args.max_size))?;
        index.push_str(&path);
        index.push('\n');
    }
    for i in 0..args.listing {
        let path = format!("/listing/entry-{i:05}.txt");
        // Sizes vary so listings have realistic column widths.
        let size = Content::new(&path).word(0) % 2048;
        writer.write_file(&path, size)?;
    }
    if args.bigfile > 0 {
        writer.write_file("/bigfile", args.bigfile)?;
    }
    for i in 0..OPS_FILES {
        writer.write_file(&format!("/ops/f{i:02}.dat"), OPS_FILE_SIZE)?;
    }
    fs::create_dir_all(args.dir.join("upload"))?;
    let index_path = args.dir.join("index.txt");
    fs::write(&index_path, index).with_context(|| format!("writing {}", index_path.display()))?;

    let secs = start.elapsed().as_secs_f64();
    println!(
        "prepared {}: {} files, {} in {:.1} s ({:.0} MiB/s); index of the {} mirror files: {}",
        args.dir.display(),
        writer.files,
        format_bytes(writer.bytes),
        secs,
        writer.bytes as f64 / (1 << 20) as f64 / secs.max(1e-9),
        args.files,
        index_path.display()
    );
    Ok(())
}

struct TreeWriter {
    root: PathBuf,
    buf: Vec<u8>,
    files: u64,
    bytes: u64,
}

impl TreeWriter {
    fn write_file(&mut self, remote: &str, size: u64) -> anyhow::Result<()> {
        let local = self.root.join(remote.trim_start_matches('/'));
        if let Some(dir) = local.parent() {
            if !dir.is_dir() {
                fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
        }
        write_content(&local, remote, size, &mut self.buf)
            .with_context(|| format!("writing {}", local.display()))?;
        self.files += 1;
        self.bytes += size;
        Ok(())
    }
}

fn write_content(local: &Path, remote: &str, size: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let content = Content::new(remote);
    let mut file = fs::File::create(local)?;
    let mut offset = 0;
    while offset < size {
        let n = (size - offset).min(buf.len() as u64) as usize;
        content.fill(offset, &mut buf[..n]);
        file.write_all(&buf[..n])?;
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_matches_byte_at_at_any_offset_and_length() {
        let c = Content::new("/pub/d00/d00/f000001.dat");
        for offset in [0u64, 1, 7, 8, 13, 4096, (1 << 33) + 3] {
            for len in [0usize, 1, 5, 8, 9, 63, 100] {
                let mut buf = vec![0; len];
                c.fill(offset, &mut buf);
                let want: Vec<u8> = (0..len as u64).map(|i| c.byte_at(offset + i)).collect();
                assert_eq!(buf, want, "offset {offset} len {len}");
                assert_eq!(c.first_mismatch(offset, &buf), None);
            }
        }
    }

    #[test]
    fn a_resumed_read_sees_the_same_bytes() {
        let mut whole = vec![0; 1000];
        fill("bigfile", 0, &mut whole);
        let mut tail = vec![0; 667];
        fill("/bigfile", 333, &mut tail);
        assert_eq!(
            &whole[333..],
            &tail[..],
            "leading / is ignored and offsets line up"
        );
    }

    #[test]
    fn mismatch_finds_the_exact_offset() {
        let c = Content::new("listing/entry-00001.txt");
        let mut buf = vec![0; 300];
        c.fill(5, &mut buf);
        for bad in [0usize, 2, 3, 10, 150, 299] {
            let mut data = buf.clone();
            data[bad] ^= 0x40;
            assert_eq!(
                c.first_mismatch(5, &data),
                Some(5 + bad as u64),
                "flipped {bad}"
            );
        }
    }

    #[test]
    fn paths_have_different_content() {
        let mut a = vec![0; 64];
        let mut b = vec![0; 64];
        fill("a", 0, &mut a);
        fill("b", 0, &mut b);
        assert_ne!(a, b);
        assert_eq!(content_byte_at("a", 9), a[9]);
    }

    #[test]
    fn content_is_stable_across_versions() {
        // Servers' integration tests and old trees rely on these exact
        // bytes: changing the function is a breaking change.
        let mut buf = [0u8; 8];
        fill("bigfile", 0, &mut buf);
        assert_eq!(u64::from_le_bytes(buf), Content::new("bigfile").word(0));
        assert_eq!(Content::new("").key, 0xcbf2_9ce4_8422_2325);
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn size_distribution_looks_like_a_mirror() {
        let n = 100_000;
        let sizes: Vec<u64> = (0..n).map(|i| mirror_file_size(1, i, u64::MAX)).collect();
        let small = sizes
            .iter()
            .filter(|&&s| (1024..=65536).contains(&s))
            .count();
        let mid = sizes
            .iter()
            .filter(|&&s| (1 << 20..=16 << 20).contains(&s))
            .count();
        let large = sizes.iter().filter(|&&s| s >= 64 << 20).count();
        assert!((96_500..98_300).contains(&small), "small {small}");
        assert!((2_000..3_000).contains(&mid), "mid {mid}");
        assert!((40..200).contains(&large), "large {large}");
        assert!(sizes.iter().all(|&s| s <= 256 << 20));
        assert!((0..1000).all(|i| mirror_file_size(1, i, 16 << 20) <= 16 << 20));
        assert_eq!(
            mirror_file_size(7, 42, 1 << 30),
            mirror_file_size(7, 42, 1 << 30)
        );
    }

    #[test]
    fn mirror_paths_nest() {
        assert_eq!(mirror_file_path(0), "/pub/d00/d00/f000000.dat");
        assert_eq!(mirror_file_path(1234), "/pub/d01/d02/f001234.dat");
    }
}
