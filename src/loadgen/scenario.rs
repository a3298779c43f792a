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
pub(crate) const BUNDLED: &[(&str, &str)] = &[
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
    ("single-ops", include_str!("../../loadtest/single-ops.toml")),
    (
        "small-uploads",
        include_str!("../../loadtest/small-uploads.toml"),
    ),
];

/// How data channels are opened.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
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
    /// Every mode, in the order of the flag's help.
    pub const ALL: [Mode; 4] = [Mode::Pasv, Mode::Epsv, Mode::Port, Mode::Eprt];

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
    /// `SIZE path` (RFC 3659 section 4) on the control channel: a 213 reply.
    Size,
    /// `MDTM path` (RFC 3659 section 3) on the control channel: a 213 reply.
    Mdtm,
}

impl Op {
    /// Every op, in the order the documentation lists them.
    pub const ALL: [Op; 9] = [
        Op::Login,
        Op::Retr,
        Op::Stor,
        Op::List,
        Op::Nlst,
        Op::Mlsd,
        Op::Noop,
        Op::Size,
        Op::Mdtm,
    ];

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
            Op::Size => "size",
            Op::Mdtm => "mdtm",
        }
    }

    /// Does this op pick a remote path from the plan's targets?
    pub fn needs_path(self) -> bool {
        matches!(
            self,
            Op::Retr | Op::List | Op::Nlst | Op::Mlsd | Op::Size | Op::Mdtm
        )
    }

    /// Does this op name a file (so a listing mixed with it lists the
    /// file's directory)?
    pub fn names_file(self) -> bool {
        matches!(self, Op::Retr | Op::Size | Op::Mdtm)
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
            Op::Size => "SIZE",
            Op::Mdtm => "MDTM",
        }
    }

    /// Does a request of this op open a data channel?
    pub fn uses_data_channel(self) -> bool {
        !matches!(self, Op::Login | Op::Noop | Op::Size | Op::Mdtm)
    }
}

/// One entry of an op mix: an op and, for an op that opens a data channel,
/// the mode it uses when that is not the plan's (`--mode`). Written `retr`
/// (the plan's mode) or `MODE-op`: `pasv-retr`, `epsv-list`, `port-stor`.
/// Reports name it the same way (`request.pasv-retr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Action {
    pub op: Op,
    /// The data-channel mode of this action; None: the plan's.
    pub mode: Option<Mode>,
}

impl Action {
    /// `op` in the plan's mode.
    pub fn new(op: Op) -> Action {
        Action { op, mode: None }
    }

    /// The action's name as scenario files and reports spell it.
    pub fn name(self) -> String {
        match self.mode {
            Some(m) => format!("{}-{}", m.name(), self.op.name()),
            None => self.op.name().to_string(),
        }
    }

    /// Parses `op` or `MODE-op`; the error lists what is accepted.
    pub fn parse(text: &str) -> Result<Action, String> {
        let op_named = |name: &str| Op::ALL.into_iter().find(|o| o.name() == name);
        let (mode, op_text) = match text.split_once('-') {
            Some((m, rest)) => match Mode::ALL.into_iter().find(|x| x.name() == m) {
                Some(mode) => (Some(mode), rest),
                None => (None, text),
            },
            None => (None, text),
        };
        let Some(op) = op_named(op_text) else {
            let names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
            return Err(format!(
                "unknown op {text:?}: expected one of {}, or a data op after a mode (pasv-retr, epsv-list, port-stor, eprt-mlsd)",
                names.join(", ")
            ));
        };
        if mode.is_some() && !op.uses_data_channel() {
            return Err(format!(
                "{text:?}: {} opens no data channel, so it takes no mode",
                op.name()
            ));
        }
        Ok(Action { op, mode })
    }

    /// The data-channel mode this action uses in a plan of mode `plan`.
    pub fn mode_or(self, plan: Mode) -> Mode {
        self.mode.unwrap_or(plan)
    }
}

impl From<Op> for Action {
    fn from(op: Op) -> Action {
        Action::new(op)
    }
}

/// Order in which a client walks the target paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Pick {
    /// Uniformly at random (seeded: runs are repeatable).
    Random,
    /// In order, each client starting at a different place.
    Sequential,
}

/// The `ops` field: a list used in turn (`["list", "mlsd"]`), or weights
/// (`{ retr = 8, list = 1, stor = 1 }`: 80 % RETR, interleaved evenly).
/// Each entry is an [`Action`]: an op, or a data op with its own mode
/// (`pasv-retr`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub enum Ops {
    /// Each op once per cycle, in this order (repeats allowed).
    InTurn(Vec<Action>),
    /// Each op `weight` times per cycle.
    Weighted(BTreeMap<Action, u32>),
}

/// `ops` as written: each shape and each name is checked here, so a wrong
/// one gets its own message, not serde's "did not match any variant".
impl TryFrom<toml::Value> for Ops {
    type Error = String;

    fn try_from(raw: toml::Value) -> Result<Ops, String> {
        const SHAPES: &str =
            "a list of ops in turn ([\"list\", \"retr\"]) or a table of weights ({ retr = 8, list = 1 })";
        match raw {
            toml::Value::Array(list) => list
                .iter()
                .map(|v| match v {
                    toml::Value::String(n) => Action::parse(n),
                    other => Err(format!("{other} is not an op name; ops is {SHAPES}")),
                })
                .collect::<Result<_, _>>()
                .map(Ops::InTurn),
            toml::Value::Table(table) => {
                let mut out = BTreeMap::new();
                for (name, w) in table {
                    let action = Action::parse(&name)?;
                    let weight = match w {
                        toml::Value::Integer(w) => u32::try_from(w).ok(),
                        _ => None,
                    }
                    .ok_or_else(|| {
                        format!("{name} = {w}: a weight is a whole number from 0 to 4294967295")
                    })?;
                    if out.insert(action, weight).is_some() {
                        return Err(format!("{} is given twice", action.name()));
                    }
                }
                Ok(Ops::Weighted(out))
            }
            other => Err(format!("ops = {other}: ops is {SHAPES}")),
        }
    }
}

impl Ops {
    /// Parses the `--ops` flag: names separated by commas, used in turn
    /// (`noop,size,pasv-retr`), or `name=weight` pairs (`retr=8,list=1`).
    pub fn parse_flag(text: &str) -> Result<Ops, String> {
        let items: Vec<&str> = text.split(',').map(str::trim).collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(format!(
                "--ops {text:?}: give op names separated by commas, e.g. noop,size,pasv-retr or retr=8,list=1"
            ));
        }
        let weighted = items.iter().filter(|i| i.contains('=')).count();
        if weighted == 0 {
            return items
                .iter()
                .map(|i| Action::parse(i))
                .collect::<Result<_, _>>()
                .map(Ops::InTurn);
        }
        if weighted < items.len() {
            return Err(format!(
                "--ops {text:?}: give every op a weight (retr=8,list=1) or none (a list used in turn)"
            ));
        }
        let mut table = BTreeMap::new();
        for item in items {
            let (name, w) = item.split_once('=').expect("counted above");
            let action = Action::parse(name.trim())?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("--ops {item:?}: a weight is a whole number (retr=8)"))?;
            if table.insert(action, w).is_some() {
                return Err(format!("--ops: {} is given twice", action.name()));
            }
        }
        Ok(Ops::Weighted(table))
    }
}

/// A fraction as a scenario file may write it: `0.01` or `"1%"`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum Fraction {
    Number(f64),
    Text(String),
}

/// A scenario file as written. Every field but `name` and `ops` is
/// optional; flags override fields. Durations and sizes are strings in the
/// syntax of [`crate::units`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
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
    /// STOR a new file each time (`lg-RUN-CLIENT-N.bin`) instead of
    /// overwriting one file per client.
    pub new_files: Option<bool>,
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
    pub(crate) fn load(name_or_path: &str, scale: Option<&str>) -> anyhow::Result<Scenario> {
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

    #[cfg(test)]
    /// Parses a scenario's text at its top-level values.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Scenario> {
        Scenario::parse_at(text, None)
    }

    /// Parses a scenario's text; with `scale`, the fields of its
    /// `[scale.NAME]` table replace the top-level ones. Every scale of the
    /// file is checked, used or not, so a typo in one shows at once.
    pub(crate) fn parse_at(text: &str, scale: Option<&str>) -> anyhow::Result<Scenario> {
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
        assert_eq!(s.ops, Ops::InTurn(vec![Op::List.into(), Op::Mlsd.into()]));
        let s = Scenario::parse("name = \"x\"\nops = { retr = 8, list = 1, stor = 1 }").unwrap();
        assert_eq!(
            s.ops,
            Ops::Weighted(BTreeMap::from([
                (Op::Retr.into(), 8),
                (Op::Stor.into(), 1),
                (Op::List.into(), 1)
            ]))
        );
        for (text, want) in [
            ("name = \"x\"\nops = { fly = 1 }", "unknown op \"fly\""),
            ("name = \"x\"\nops = [\"fly\"]", "unknown op \"fly\""),
            ("name = \"x\"\nops = [\"pasv-noop\"]", "takes no mode"),
            ("name = \"x\"\nops = \"retr\"", "a list of ops in turn"),
            ("name = \"x\"\nops = [1]", "1 is not an op name"),
            (
                "name = \"x\"\nops = { retr = -1 }",
                "retr = -1: a weight is a whole number",
            ),
            (
                "name = \"x\"\nops = { retr = \"8\" }",
                "a weight is a whole number",
            ),
            (
                "name = \"x\"\nops = [\"retr\"]\nunknown = 1",
                "unknown field",
            ),
        ] {
            let e = format!("{:#}", Scenario::parse(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn actions_carry_their_own_mode() {
        let s = Scenario::parse(
            "name = \"x\"\nops = [\"noop\", \"size\", \"mdtm\", \"pasv-retr\", \"epsv-retr\", \"list\"]",
        )
        .unwrap();
        let Ops::InTurn(list) = s.ops else {
            panic!("a list")
        };
        let names: Vec<String> = list.iter().map(|a| a.name()).collect();
        assert_eq!(
            names,
            ["noop", "size", "mdtm", "pasv-retr", "epsv-retr", "list"]
        );
        assert_eq!(list[3].mode_or(Mode::Epsv), Mode::Pasv);
        assert_eq!(list[5].mode_or(Mode::Port), Mode::Port);
        // A name with a dash that is not a mode is an unknown op.
        assert!(Action::parse("fast-retr").is_err());
        for a in Op::ALL.iter().map(|&o| Action::new(o)) {
            assert_eq!(Action::parse(&a.name()), Ok(a));
        }
    }

    #[test]
    fn the_ops_flag() {
        assert_eq!(
            Ops::parse_flag("stor"),
            Ok(Ops::InTurn(vec![Op::Stor.into()]))
        );
        assert_eq!(
            Ops::parse_flag("retr=8, pasv-list=1"),
            Ok(Ops::Weighted(BTreeMap::from([
                (Op::Retr.into(), 8),
                (
                    Action {
                        op: Op::List,
                        mode: Some(Mode::Pasv)
                    },
                    1
                ),
            ])))
        );
        for (text, want) in [
            ("", "separated by commas"),
            ("retr,", "separated by commas"),
            ("retr=8,list", "every op a weight"),
            ("retr=x", "whole number"),
            ("retr=1,retr=2", "twice"),
            ("fly", "unknown op"),
        ] {
            let e = Ops::parse_flag(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
