//! `--config FILE`: `serve` flags from a TOML file, and the effective
//! configuration that `serve --check-config` prints and SIGHUP compares.
//!
//! The accepted keys are not a list kept by hand: they are read from
//! clap's own definition of [`ServeArgs`], so a flag added to the CLI is a
//! config key at once, under the same name (`pasv-ports`, `max-per-ip`,
//! ...). Each file entry becomes the `--key=value` argument it stands for
//! and goes through the same clap parser, so a value means exactly what it
//! would mean on the command line, and is checked by the same rules. A
//! flag given on the command line wins over the file (for a repeatable
//! flag, the command line's list replaces the file's). Unknown keys, and
//! values of the wrong shape, are errors that name the key.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::cli::{Cli, ServeArgs};

/// Flags that make no sense inside the file they would name.
const NOT_IN_FILE: &[&str] = &["config", "check-config", "help", "version"];

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    File,
    Default,
    Unset,
}

/// One `serve` setting in force: its flag name (= its config key) and
/// value as TOML (`None` when an optional flag is not set).
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub value: Option<toml::Value>,
    pub source: Source,
}

/// The `serve` flags after merging the command line with `--config`.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub args: ServeArgs,
    /// Every setting, in the order the CLI defines them.
    pub effective: Vec<Setting>,
}

/// The `serve` subcommand's definition, built (clap fills in help flags).
fn serve_command() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand("serve")
        .cloned()
        .expect("the CLI has a serve subcommand")
}

/// The config keys: every `serve` flag's long name, except those in
/// `NOT_IN_FILE` (`config`, `check-config`, `help`, `version`).
pub(crate) fn keys() -> Vec<String> {
    serve_command()
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| !NOT_IN_FILE.contains(l))
        .map(str::to_string)
        .collect()
}

/// Parses the full command line `argv` (`ringftp serve ...`), merged with
/// the `--config` file it names (if any).
pub(crate) fn load(argv: &[OsString]) -> Result<Loaded, String> {
    let cli = Cli::command();
    let matches = cli
        .clone()
        .try_get_matches_from(argv)
        .map_err(|e| e.to_string())?;
    let serve = serve_matches(&matches)?;
    let Some(path) = serve.get_one::<PathBuf>("config").cloned() else {
        return finish(serve, &BTreeSet::new());
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let file_args = file_argv(&text).map_err(|e| format!("--config {}: {e}", path.display()))?;
    // Each value alone first, so a bad one is reported as the file's.
    let mut alone: Vec<OsString> = vec!["ringftp".into(), "serve".into()];
    alone.extend(file_args.iter().flat_map(|f| f.args.iter().cloned()));
    cli.clone()
        .try_get_matches_from(&alone)
        .map_err(|e| format!("--config {}: {}", path.display(), first_line(&e)))?;
    // Then the file's settings that the command line does not give.
    let mut merged = argv.to_vec();
    let mut from_file = BTreeSet::new();
    for f in file_args {
        if serve.value_source(&f.id) == Some(ValueSource::CommandLine) {
            continue;
        }
        merged.extend(f.args);
        from_file.insert(f.key);
    }
    let matches = cli
        .try_get_matches_from(&merged)
        .map_err(|e| e.to_string())?;
    finish(serve_matches(&matches)?, &from_file)
}

/// clap's message without its usage footer, for errors about file values.
fn first_line(e: &clap::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_string()
}

fn serve_matches(m: &ArgMatches) -> Result<&ArgMatches, String> {
    match m.subcommand() {
        Some(("serve", s)) => Ok(s),
        _ => Err("expected `ringftp serve ...`".into()),
    }
}

fn finish(serve: &ArgMatches, from_file: &BTreeSet<String>) -> Result<Loaded, String> {
    let args = ServeArgs::from_arg_matches(serve).map_err(|e| e.to_string())?;
    Ok(Loaded {
        args,
        effective: effective(serve, from_file),
    })
}

/// One file entry as command-line arguments.
struct FileArg {
    /// clap's id of the flag.
    id: String,
    /// The flag's long name (the key).
    key: String,
    args: Vec<OsString>,
}

/// Turns the file's entries into `--key=value` arguments, per key, in
/// file order.
fn file_argv(text: &str) -> Result<Vec<FileArg>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // toml's message spans several lines (with a caret under the
        // spot); keep it whole, it says where.
        e.to_string().trim_end().to_string()
    })?;
    let cmd = serve_command();
    let mut out = Vec::new();
    for (key, value) in table {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && !NOT_IN_FILE.contains(&key.as_str()))
            .ok_or_else(|| unknown_key(&key))?;
        let flag = format!("--{key}");
        let mut args = Vec::new();
        match arg.get_action() {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) => args.push(OsString::from(&flag)),
                toml::Value::Boolean(false) => {}
                other => {
                    return Err(format!(
                        "{key}: a switch takes true or false, not {}",
                        describe(&other)
                    ))
                }
            },
            ArgAction::Append => {
                let items = match value {
                    toml::Value::Array(items) => items,
                    single => vec![single],
                };
                for item in items {
                    args.push(OsString::from(format!("{flag}={}", scalar(&key, &item)?)));
                }
            }
            _ => {
                if let toml::Value::Array(_) = value {
                    return Err(format!("{key}: takes one value, not a list"));
                }
                args.push(OsString::from(format!("{flag}={}", scalar(&key, &value)?)));
            }
        }
        out.push(FileArg {
            id: arg.get_id().as_str().to_string(),
            key,
            args,
        });
    }
    Ok(out)
}

fn unknown_key(key: &str) -> String {
    let keys = keys();
    let dashed = key.replace('_', "-");
    if dashed != key && keys.contains(&dashed) {
        return format!("unknown key `{key}` (did you mean `{dashed}`? keys are flag names)");
    }
    format!(
        "unknown key `{key}`: the keys are the names of `ringftp serve` flags without the leading -- (see `ringftp serve --help`)"
    )
}

fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(i) => format!("the number {i}"),
        toml::Value::Float(f) => format!("the number {f}"),
        toml::Value::Boolean(b) => format!("{b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// A single value as the command-line text clap parses.
fn scalar(key: &str, v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        other => Err(format!(
            "{key}: expected a string or a whole number, not {}",
            describe(other)
        )),
    }
}

/// Every setting of `serve` as TOML values, from the final matches.
fn effective(serve: &ArgMatches, from_file: &BTreeSet<String>) -> Vec<Setting> {
    let cmd = serve_command();
    let mut out = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(key) = arg.get_long() else { continue };
        if NOT_IN_FILE.contains(&key) {
            continue;
        }
        let id = arg.get_id().as_str();
        let raw: Vec<&OsStr> = serve.get_raw(id).map(|v| v.collect()).unwrap_or_default();
        let source = if from_file.contains(key) {
            Source::File
        } else {
            match serve.value_source(id) {
                Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable) => {
                    Source::CommandLine
                }
                Some(ValueSource::DefaultValue) => Source::Default,
                _ => Source::Unset,
            }
        };
        let text = |s: &OsStr| s.to_string_lossy().into_owned();
        let value = match arg.get_action() {
            ArgAction::SetTrue => Some(toml::Value::Boolean(serve.get_flag(id))),
            ArgAction::Append => Some(toml::Value::Array(
                raw.iter().map(|s| toml::Value::String(text(s))).collect(),
            )),
            _ => raw.first().map(|s| {
                let s = text(s);
                match s.parse::<i64>() {
                    Ok(n) if !s.starts_with('+') && !s.starts_with('0') || s == "0" => {
                        toml::Value::Integer(n)
                    }
                    _ => toml::Value::String(s),
                }
            }),
        };
        let source = if value.is_none() {
            Source::Unset
        } else {
            source
        };
        out.push(Setting {
            key: key.to_string(),
            value,
            source,
        });
    }
    out
}

/// The effective configuration as a TOML document that `--config` reads
/// back: one `key = value` line per flag, with where it came from; flags
/// not set are comments.
pub(crate) fn render(effective: &[Setting], file: Option<&Path>) -> String {
    let mut out = String::from("# ringftp serve: effective configuration\n");
    for s in effective {
        let from = match s.source {
            Source::CommandLine => "command line".to_string(),
            Source::File => match file {
                Some(f) => f.display().to_string(),
                None => "file".into(),
            },
            Source::Default => "default".into(),
            Source::Unset => "not set".into(),
        };
        match &s.value {
            Some(v) => out.push_str(&format!("{} = {v}  # {from}\n", s.key)),
            None => out.push_str(&format!("# {} =  (not set)\n", s.key)),
        }
    }
    out
}

/// The keys whose values differ between two effective configurations.
pub(crate) fn changed(old: &[Setting], new: &[Setting]) -> Vec<String> {
    let mut keys = Vec::new();
    for n in new {
        let before = old.iter().find(|o| o.key == n.key).map(|o| &o.value);
        if before != Some(&n.value) {
            keys.push(n.key.clone());
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(extra: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["ringftp".into(), "serve".into()];
        v.extend(extra.iter().map(OsString::from));
        v
    }

    fn with_file(text: &str, extra: &[&str]) -> Result<Loaded, String> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ringftp.toml");
        std::fs::write(&f, text).unwrap();
        let mut a = vec!["--config", f.to_str().unwrap()];
        a.extend_from_slice(extra);
        load(&argv(&a))
    }

    #[test]
    fn keys_come_from_the_cli() {
        let k = keys();
        for want in [
            "listen",
            "pasv-ports",
            "max-per-ip",
            "user",
            "sandbox",
            "banner",
        ] {
            assert!(k.iter().any(|x| x == want), "{want} missing from {k:?}");
        }
        for not in NOT_IN_FILE {
            assert!(!k.iter().any(|x| x == not), "{not}");
        }
    }

    #[test]
    fn file_values_command_line_wins() {
        let l = with_file(
            "pasv-ports = \"40000-40009\"\ncores = 1\nlisten = [\"127.0.0.1:0\", \"[::1]:0\"]\natomic-uploads = true\nmax-per-ip = 3\n",
            &["--max-per-ip", "5", "--listen", "127.0.0.2:0"],
        )
        .unwrap();
        assert_eq!(l.args.pasv_ports, "40000-40009");
        assert_eq!(l.args.cores, Some(1));
        assert!(l.args.atomic_uploads);
        assert_eq!(l.args.max_per_ip, 5);
        assert_eq!(l.args.listen, vec!["127.0.0.2:0".to_string()]);
        let src = |k: &str| l.effective.iter().find(|s| s.key == k).unwrap().source;
        assert_eq!(src("pasv-ports"), Source::File);
        assert_eq!(src("max-per-ip"), Source::CommandLine);
        assert_eq!(src("idle-timeout"), Source::Default);
        assert_eq!(src("users"), Source::Unset);
    }

    #[test]
    fn bad_files_name_the_key() {
        for (text, frag) in [
            ("no-such-flag = 1", "unknown key `no-such-flag`"),
            ("pasv_ports = \"1-2\"", "did you mean `pasv-ports`"),
            ("atomic-uploads = \"yes\"", "atomic-uploads: a switch"),
            ("pasv-ports = [\"1-2\"]", "pasv-ports: takes one value"),
            ("cores = \"many\"", "--cores"),
            ("config = \"x\"", "unknown key `config`"),
            ("idle-timeout = 1.5", "idle-timeout: expected a string"),
            ("[section]\nx = 1", "unknown key `section`"),
            ("cores = ", "--config"),
        ] {
            let e = with_file(text, &[]).unwrap_err();
            assert!(e.contains(frag), "{text:?}: {e}");
            assert!(e.contains("--config"), "{text:?}: {e}");
        }
    }

    #[test]
    fn render_reads_back() {
        let l = with_file(
            "banner = \"hello \\\"there\\\"\"\nallow = [\"192.0.2.0/24\"]\nkeep-partial = true\n",
            &[],
        )
        .unwrap();
        let text = render(&l.effective, None);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("again.toml");
        // Comments and all: the printed configuration is a config file.
        std::fs::write(&f, &text).unwrap();
        let again = load(&argv(&["--config", f.to_str().unwrap()])).unwrap();
        assert_eq!(
            changed(&l.effective, &again.effective),
            Vec::<String>::new()
        );
        assert_eq!(again.args.banner.as_deref(), Some("hello \"there\""));
        assert!(again.args.keep_partial);
    }

    /// A value for a flag without a default, for [`every_key_is_a_config_key`].
    fn sample(key: &str) -> Option<&'static str> {
        Some(match key {
            "root" => "\"/tmp\"",
            "cores" => "1",
            "pasv-address" => "\"192.0.2.1\"",
            "max-rate" | "max-rate-per-session" => "\"1MiB\"",
            "users" => "\"/etc/ringftp/users.toml\"",
            "xferlog" => "\"/var/log/ringftp/xferlog\"",
            "metrics-listen" => "\"127.0.0.1:9121\"",
            "user" => "\"nobody\"",
            "banner" => "\"Hello\"",
            "allow" | "deny" => "[\"192.0.2.0/24\"]",
            "pasv-address-map" => "[\"192.0.2.0/24=192.0.2.10\"]",
            "tls-cert" => "\"/etc/ringftp/cert.pem\"",
            "tls-key" => "\"/etc/ringftp/key.pem\"",
            "listen-implicit" => "[\"127.0.0.1:990\"]",
            "tls-required" => "\"all\"",
            "proxy-from" => "[\"192.0.2.0/24\"]",
            _ => return None,
        })
    }

    /// Every `serve` flag, as the CLI defines it now, is accepted in a
    /// config file under its name and lands in the effective configuration
    /// as coming from the file. A flag added later without a default needs
    /// a sample value above: the test names it.
    #[test]
    fn every_key_is_a_config_key() {
        let serve = serve_command();
        let mut checked = 0;
        for arg in serve.get_arguments() {
            let Some(key) = arg.get_long() else { continue };
            if NOT_IN_FILE.contains(&key) {
                continue;
            }
            let value = match (arg.get_action(), arg.get_default_values().first()) {
                (ArgAction::SetTrue, _) => "true".to_string(),
                _ => match sample(key) {
                    Some(v) => v.to_string(),
                    None => match arg.get_default_values().first() {
                        Some(d) => toml::Value::String(d.to_string_lossy().into_owned()).to_string(),
                        None => panic!("add a sample value for the new flag --{key} to config_file::tests::sample"),
                    },
                },
            };
            // A key that needs another (clap `requires`) comes with it.
            let companion = match key {
                "tls-cert" => "tls-key = \"/etc/ringftp/key.pem\"\n",
                "tls-key" => "tls-cert = \"/etc/ringftp/cert.pem\"\n",
                _ => "",
            };
            let text = format!("{key} = {value}\n{companion}");
            let l = with_file(&text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"));
            let s = l.effective.iter().find(|s| s.key == key).unwrap();
            assert_eq!(s.source, Source::File, "{text}");
            checked += 1;
        }
        assert!(checked >= 35, "only {checked} keys");
    }

    #[test]
    fn the_shipped_config_file_is_accepted() {
        let f = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/ringftp.toml");
        let l = load(&argv(&["--config", f])).unwrap();
        assert_eq!(l.args.listen, ["0.0.0.0:21", "[::]:21"]);
        assert!(l.args.banner.unwrap().contains("Welcome"));
    }

    #[test]
    fn changed_keys() {
        let a = load(&argv(&["--max-per-ip", "3"])).unwrap();
        let b = load(&argv(&["--max-per-ip", "4", "--keep-partial"])).unwrap();
        assert_eq!(
            changed(&a.effective, &b.effective),
            ["max-per-ip", "keep-partial"]
        );
    }
}
