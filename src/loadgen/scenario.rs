//! Scenarios: what the virtual clients do, as TOML files (`loadtest/*.toml`,
//! compiled into the binary so `--scenario mirror` works from anywhere, or a
//! user's own file).
//!
//! A scenario may carry named scales (`[scale.quick]`, `[scale.full]`):
//! tables of fields that replace the top-level ones when `--scale NAME` is
//! given, so "the same scenario, smaller" lives with the scenario rather
//! than in the scripts that run it. [`super::plan::Plan::resolve`] merges a
//! scenario with the command line into one validated plan. Field by field
//! documentation is in loadtest/README.md.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The scenarios shipped in `loadtest/`, by name.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "login-storm",
        include_str!("../../loadtest/login-storm.toml"),
    ),
    (
        "login-storm-big",
        include_str!("../../loadtest/login-storm-big.toml"),
    ),
    ("mirror", include_str!("../../loadtest/mirror.toml")),
    ("bigfile", include_str!("../../loadtest/bigfile.toml")),
    ("upload", include_str!("../../loadtest/upload.toml")),
    ("listing", include_str!("../../loadtest/listing.toml")),
    ("idle", include_str!("../../loadtest/idle.toml")),
];

/// How data channels are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Passive, IPv4 only: PASV, the server announces address and port.
    Pasv,
    /// Extended passive (RFC 2428): EPSV, the server announces the port.
    Epsv,
    /// Active, IPv4 only: PORT, the server connects to the client.
    Port,
    /// Extended active (RFC 2428): EPRT, IPv4 or IPv6.
    Eprt,
}

impl Mode {
    /// The mode's name as flags and reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pasv => "pasv",
            Mode::Epsv => "epsv",
            Mode::Port => "port",
            Mode::Eprt => "eprt",
        }
    }
}

/// One kind of request a virtual client makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A whole session: connect, greeting, USER/PASS (then QUIT).
    Login,
    /// Download a file.
    Retr,
    /// Upload `size` bytes.
    Stor,
    /// `LIST dir` over a data channel.
    List,
    /// `NLST dir` over a data channel.
    Nlst,
    /// `MLSD dir` over a data channel (RFC 3659).
    Mlsd,
    /// A NOOP round trip on the control channel.
    Noop,
}

impl Op {
    /// The op's name as scenario files and reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Retr => "retr",
            Op::Stor => "stor",
            Op::List => "list",
            Op::Nlst => "nlst",
            Op::Mlsd => "mlsd",
            Op::Noop => "noop",
        }
    }

    /// Does this op pick a remote path from the plan's targets?
    pub fn needs_path(self) -> bool {
        matches!(self, Op::Retr | Op::List | Op::Nlst | Op::Mlsd)
    }

    /// Is this op a directory listing?
    pub fn lists(self) -> bool {
        matches!(self, Op::List | Op::Nlst | Op::Mlsd)
    }

    /// The FTP command a request of this op sends (the transfer command for
    /// data ops).
    pub fn verb(self) -> &'static str {
        match self {
            Op::Login => "USER",
            Op::Retr => "RETR",
            Op::Stor => "STOR",
            Op::List => "LIST",
            Op::Nlst => "NLST",
            Op::Mlsd => "MLSD",
            Op::Noop => "NOOP",
        }
    }

    /// Does a request of this op open a data channel?
    pub fn uses_data_channel(self) -> bool {
        !matches!(self, Op::Login | Op::Noop)
    }
}

/// Order in which a client walks the target paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    /// Uniformly at random (seeded: runs are repeatable).
    Random,
    /// In order, each client starting at a different place.
    Sequential,
}

/// The `ops` field: a list used in turn (`["list", "mlsd"]`), or weights
/// (`{ retr = 8, list = 1, stor = 1 }`: 80 % RETR, interleaved evenly).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Ops {
    /// Each op once per cycle, in this order (repeats allowed).
    InTurn(Vec<Op>),
    /// Each op `weight` times per cycle.
    Weighted(BTreeMap<Op, u32>),
}

/// A fraction as a scenario file may write it: `0.01` or `"1%"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Fraction {
    Number(f64),
    Text(String),
}

/// A scenario file as written. Every field but `name` and `ops` is
/// optional; flags override fields. Durations and sizes are strings in the
/// syntax of [`crate::units`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub ops: Ops,
    pub clients: Option<usize>,
    /// Open loop: most virtual clients once all are busy (`--max-clients`).
    pub max_clients: Option<usize>,
    pub duration: Option<String>,
    pub requests: Option<u64>,
    pub requests_per_client: Option<u64>,
    pub rate: Option<f64>,
    /// Ramp-up: open loop, the rate grows linearly from 0 over this long;
    /// closed loop, the clients start spread over it.
    pub ramp: Option<String>,
    pub mode: Option<Mode>,
    pub files: Option<String>,
    pub paths: Option<Vec<String>>,
    pub pick: Option<Pick>,
    pub seed: Option<u64>,
    pub size: Option<String>,
    pub upload_dir: Option<String>,
    pub think: Option<String>,
    pub barrier: Option<bool>,
    /// Limit on every wait (`--timeout`).
    pub timeout: Option<String>,
    /// Thresholds (`--max-p99`, `--max-error-rate`, `--min-rate`).
    pub max_p99: Option<String>,
    pub max_error_rate: Option<Fraction>,
    pub min_rate: Option<f64>,
    /// The scale the file was loaded at (set by [`Scenario::load`], not
    /// written in files: a `scale` table there holds the scales).
    #[serde(skip)]
    pub scale: Option<String>,
}

/// Top-level fields a `[scale.NAME]` table may not replace.
const UNSCALED: [&str; 3] = ["name", "description", "ops"];

impl Scenario {
    /// A bundled scenario by name, or a TOML file by path, at `scale` (a
    /// `[scale.NAME]` table of the file) when given.
    pub fn load(name_or_path: &str, scale: Option<&str>) -> anyhow::Result<Scenario> {
        if let Some((_, text)) = BUNDLED.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse_at(text, scale)
                .with_context(|| format!("bundled scenario {name_or_path}"));
        }
        let path = Path::new(name_or_path);
        if !path.is_file() {
            let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
            bail!(
                "--scenario {name_or_path:?}: no bundled scenario of that name ({}) and no such file",
                names.join(", ")
            );
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Scenario::parse_at(&text, scale)
            .with_context(|| format!("scenario file {}", path.display()))
    }

    /// Parses a scenario's text at its top-level values.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        Scenario::parse_at(text, None)
    }

    /// Parses a scenario's text; with `scale`, the fields of its
    /// `[scale.NAME]` table replace the top-level ones. Every scale of the
    /// file is checked, used or not, so a typo in one shows at once.
    pub fn parse_at(text: &str, scale: Option<&str>) -> anyhow::Result<Scenario> {
        let mut table: toml::Table = toml::from_str(text)?;
        let scales = match table.remove("scale") {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(_) => bail!("`scale` must be a table of tables: [scale.quick], [scale.full], ..."),
        };
        let base: Scenario = table.clone().try_into()?;
        let mut chosen = None;
        for (name, fields) in &scales {
            let toml::Value::Table(fields) = fields else {
                bail!("[scale.{name}] must be a table of scenario fields");
            };
            let mut merged = table.clone();
            for (key, value) in fields {
                if UNSCALED.contains(&key.as_str()) {
                    bail!("[scale.{name}]: `{key}` cannot change with the scale");
                }
                merged.insert(key.clone(), value.clone());
            }
            let at: Scenario = merged
                .try_into()
                .with_context(|| format!("[scale.{name}]"))?;
            if scale == Some(name.as_str()) {
                chosen = Some(at);
            }
        }
        match (scale, chosen) {
            (None, _) => Ok(base),
            (Some(name), Some(mut s)) => {
                s.scale = Some(name.to_string());
                Ok(s)
            }
            (Some(name), None) => {
                let have: Vec<&str> = scales.keys().map(String::as_str).collect();
                bail!(
                    "scenario {} has no scale {name:?} ({})",
                    base.name,
                    if have.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("it has: {}", have.join(", "))
                    }
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_replace_top_level_fields() {
        let text = "name = \"x\"\nops = [\"noop\"]\nclients = 100\nduration = \"30s\"\n\
                    [scale.quick]\nclients = 5\n[scale.full]\n";
        let s = Scenario::parse_at(text, Some("quick")).unwrap();
        assert_eq!((s.clients, s.duration.as_deref()), (Some(5), Some("30s")));
        assert_eq!(s.scale.as_deref(), Some("quick"));
        let s = Scenario::parse_at(text, Some("full")).unwrap();
        assert_eq!(s.clients, Some(100));
        let s = Scenario::parse(text).unwrap();
        assert_eq!((s.clients, s.scale), (Some(100), None));
        let e = format!("{:#}", Scenario::parse_at(text, Some("huge")).unwrap_err());
        assert!(
            e.contains("no scale \"huge\"") && e.contains("full, quick"),
            "{e}"
        );
    }

    #[test]
    fn bad_scales_are_refused() {
        for (text, want) in [
            (
                "name = \"x\"\nops = [\"noop\"]\n[scale.quick]\nclientz = 5\n",
                "scale.quick",
            ),
            (
                "name = \"x\"\nops = [\"noop\"]\n[scale.quick]\nops = [\"retr\"]\n",
                "cannot change",
            ),
            (
                "name = \"x\"\nops = [\"noop\"]\nscale = 3\n",
                "table of tables",
            ),
        ] {
            let e = format!("{:#}", Scenario::parse(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn ops_in_turn_or_weighted() {
        let s = Scenario::parse("name = \"x\"\nops = [\"list\", \"mlsd\"]").unwrap();
        assert_eq!(s.ops, Ops::InTurn(vec![Op::List, Op::Mlsd]));
        let s = Scenario::parse("name = \"x\"\nops = { retr = 8, list = 1, stor = 1 }").unwrap();
        assert_eq!(
            s.ops,
            Ops::Weighted(BTreeMap::from([
                (Op::Retr, 8),
                (Op::Stor, 1),
                (Op::List, 1)
            ]))
        );
        assert!(Scenario::parse("name = \"x\"\nops = { fly = 1 }").is_err());
        assert!(Scenario::parse("name = \"x\"\nops = [\"fly\"]").is_err());
        assert!(Scenario::parse("name = \"x\"\nops = [\"retr\"]\nunknown = 1").is_err());
    }
}
