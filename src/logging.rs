//! Log set-up: tracing to stderr (stdout carries only the `listening on`
//! lines), filtered by RUST_LOG when set, else by `--log-level`, as text
//! or JSON (`--log-format json`, one object per line for log shippers).
//!
//! Lines go through a non-blocking writer (`tracing-appender`): a shard
//! hands the formatted line to a channel and goes on; a writer thread
//! does the `write(2)`. A slow reader of stderr (a full pipe, a stalled
//! journald) therefore never stalls a shard: once 128,000 lines wait, new
//! ones are dropped and counted (`ringftp_log_lines_dropped_total`).
//! [`flush`] writes what is still queued; every exit path calls it.
//!
//! The writer thread starts only when [`start_writer`] is called, after
//! the privilege drop and the sandbox (both act per thread, so they must
//! happen while the main thread is the only one: see
//! [`crate::privileges::drop_to`]). Until then lines are written to
//! stderr directly, from the single thread start-up runs on.
//!
//! [`limit`] keeps one client from filling the log: each shard lets a
//! burst of refusal lines (and lines for transfers cut short) per client
//! address through, then one every few seconds, and says how many it left
//! out.

pub mod limit;

use std::sync::{Mutex, OnceLock};

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::{EitherWriter, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (fields at the top level).
    Json,
}

/// The level names `--log-level` accepts, alone or after `target=`.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The writer thread's guard: dropping it writes what is queued.
static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Lines dropped because the writer fell behind.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// The non-blocking writer, once [`start_writer`] has started its thread.
static NON_BLOCKING: OnceLock<NonBlocking> = OnceLock::new();

/// Whether [`init`] installed our subscriber (so [`start_writer`] has
/// lines to carry).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Where each line goes: the writer thread once started, else stderr.
struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = OneLine<EitherWriter<NonBlocking, std::io::Stderr>>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLine(match NON_BLOCKING.get() {
            Some(w) => EitherWriter::A(w.clone()),
            None => EitherWriter::B(std::io::stderr()),
        })
    }
}

/// Keeps each event on one line. A message with line breaks of its own
/// (a TOML error's snippet in "SIGHUP: users file not reloaded", say)
/// would otherwise reach journald, which reads stderr line by line, as
/// several entries, only the first with a time and a level. Line breaks
/// inside an event are written as the two characters `\n` (`\r` for a
/// carriage return); the event's own final newline stays. The fmt layer
/// writes each event with one `write_all`, so `buf` is a whole event.
struct OneLine<W>(W);

impl<W: std::io::Write> std::io::Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let body = buf.strip_suffix(b"\n").unwrap_or(buf);
        if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
            return self.0.write(buf);
        }
        // A message's own trailing line breaks (a TOML error ends with
        // one) say nothing: drop them rather than show `\n` at the end.
        let end = body.len()
            - body
                .iter()
                .rev()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
        let body = &body[..end];
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b => out.push(b),
            }
        }
        if buf.ends_with(b"\n") {
            out.push(b'\n');
        }
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A parsed `--log-level`: the operator's filter, and the quiet one that
/// goes with it (see [`quiet_filter`]).
#[derive(Debug)]
pub struct ParsedFilter {
    /// What the operator asked for.
    pub filter: LogFilter,
    /// [`QUIET_MODULE`] held off, unless the operator named it.
    pub quiet: Option<Targets>,
}

/// The operator's part of a parsed `--log-level`.
#[derive(Debug)]
pub enum LogFilter {
    /// Levels by target only (`info`, `info,ringftp::session=debug`): a
    /// [`Targets`] filter, which decides from the event's callsite alone.
    Static(Box<Targets>),
    /// A directive names a span or a field (`ringftp[session{peer=..}]=
    /// trace`): an [`EnvFilter`], which must follow span entries. It
    /// takes a lock shared by every shard on each entry and exit of a
    /// span, and every session's task runs in one, so only filters that
    /// need it pay for it.
    Dynamic(Box<EnvFilter>),
}

/// The module whose events every filter holds off unless one of its
/// directives names it or a parent (`rustls`, `rustls::msgs`,
/// `rustls::msgs::handshake`). rustls warns there, once per TLS
/// connection, of a client hello whose SNI names an IP address ("Illegal
/// SNI extension: ignoring IP address presented as hostname"; RFC 6066
/// section 3 allows only host names, and rustls ignores it): lftp sends
/// one whenever it connects to an address, so an FTPS server's log would
/// fill with a client's habit that changes nothing. The module logs
/// nothing else a server meets (its other warnings are about a duplicate
/// or malformed SNI, likewise ignored).
const QUIET_MODULE: &str = "rustls::msgs::handshake";

/// True if `directive` (`TARGET[SPAN]=LEVEL` or a bare level) names
/// [`QUIET_MODULE`] or a module above it.
fn names_quiet_module(directive: &str) -> bool {
    let Some((target, _)) = directive.rsplit_once('=') else {
        return false;
    };
    let target = target.split('[').next().unwrap_or_default().trim();
    !target.is_empty()
        && QUIET_MODULE.starts_with(target)
        && (target.len() == QUIET_MODULE.len() || QUIET_MODULE[target.len()..].starts_with("::"))
}

/// The second filter every log passes besides the operator's: everything
/// up to `max` (the operator's filter's most verbose level, so it lowers
/// no global level hint) except [`QUIET_MODULE`]. None when the
/// operator's filter names that module. It is a filter of its own, not a
/// directive added to the operator's, because an [`EnvFilter`] lets
/// through every event inside a span its span directive enables, which
/// a target directive does not stop (tracing-subscriber's
/// `EnvFilter::enabled`), and a session's span holds every handshake.
fn quiet_filter(
    directives: &[String],
    max: Option<tracing::level_filters::LevelFilter>,
) -> Option<Targets> {
    if directives.iter().any(|d| names_quiet_module(d)) {
        return None;
    }
    let max = max.unwrap_or(tracing::level_filters::LevelFilter::TRACE);
    Some(
        Targets::new()
            .with_default(max)
            .with_target(QUIET_MODULE, tracing::level_filters::LevelFilter::OFF),
    )
}

/// Parses a `--log-level` value: a level name (`error`, `warn`, `info`,
/// `debug`, `trace`, `off`) or a tracing filter whose every directive
/// ends in `=LEVEL` (`info,ringftp::session=debug`, or with a span:
/// `ringftp[session]=debug`). A bare word that is not a level
/// (`verbose`) is refused: tracing would read it as a target name and
/// silently log nothing else; so is a value with no directive at all
/// (`,`).
pub fn parse_filter(spec: &str) -> Result<ParsedFilter, String> {
    let levels = LEVELS.join(", ");
    if spec.trim().is_empty() {
        return Err(format!("empty; give a level ({levels})"));
    }
    let directives: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(format!(
            "{spec:?} holds no directive; give a level ({levels})"
        ));
    }
    // Each directive as tracing reads it: `TARGET=LEVEL` without spaces
    // around the `=` (which tracing would take as part of the names).
    let mut clean = Vec::with_capacity(directives.len());
    for d in &directives {
        let level = match d.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => {
                clean.push(format!("{}={}", target.trim(), level.trim()));
                level
            }
            Some(_) => return Err(format!("{d:?}: nothing before '='")),
            None => {
                clean.push(d.to_string());
                d
            }
        };
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level.trim())) {
            return Err(match d.contains('=') {
                true => format!("{d:?}: {level:?} is not a level ({levels})"),
                false => format!(
                    "{d:?} is not a level ({levels}); a filter names a target and a level, e.g. ringftp::session=debug"
                ),
            });
        }
    }
    let joined = clean.join(",");
    if clean.iter().any(|d| d.contains('[')) {
        let f = EnvFilter::builder()
            .parse(joined)
            .map_err(|e| format!("{spec:?}: {e}"))?;
        return Ok(ParsedFilter {
            quiet: quiet_filter(&clean, f.max_level_hint()),
            filter: LogFilter::Dynamic(Box::new(f)),
        });
    }
    let f = joined
        .parse::<Targets>()
        .map_err(|e| format!("{spec:?}: {e}"))?;
    let max = Layer::<tracing_subscriber::Registry>::max_level_hint(&f);
    Ok(ParsedFilter {
        quiet: quiet_filter(&clean, max),
        filter: LogFilter::Static(Box::new(f)),
    })
}

/// The filter start-up installs: RUST_LOG when set and not blank, else
/// `level` (`--log-level`), each checked by [`parse_filter`]. The error
/// names which of the two is wrong.
pub fn filter_in_force(level: &str) -> anyhow::Result<ParsedFilter> {
    match rust_log() {
        Some(v) => parse_filter(&v).map_err(|e| anyhow::anyhow!("RUST_LOG {e}")),
        None => parse_filter(level).map_err(|e| anyhow::anyhow!("--log-level {e}")),
    }
}

/// RUST_LOG when it is set and not blank: then it, not `--log-level`,
/// says what is logged.
pub fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Whether lines are text (`--log-format text`), whose `key=value` fields
/// [`Field`] quotes; JSON escapes its own.
static TEXT_FORMAT: AtomicBool = AtomicBool::new(true);

/// Whether `c` changes how a terminal shows text without showing itself:
/// Unicode's bidirectional controls (the `Bidi_Control` property: U+061C,
/// U+200E–U+200F, U+202A–U+202E, U+2066–U+2069), the line and paragraph
/// separators (U+2028, U+2029), and the invisible format characters
/// (soft hyphen U+00AD, zero-width U+200B–U+200D, U+2060–U+2064, the
/// byte-order mark U+FEFF). None is a control character to
/// `char::is_control`, yet U+202E (the right-to-left override) makes
/// `gpj.exe` read `exe.jpg` (the "Trojan Source" attack, CVE-2021-42574),
/// a separator can break a log line where the reader sees none, and a
/// zero-width one makes two names look alike. Client-given text shown to
/// an operator escapes them as it escapes ESC.
pub fn is_hidden_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// A client-given value (a user name, a path) as a `key=value` field of a
/// text line: as it is, or in double quotes (`"` and `\` escaped) when it
/// holds a blank, a `"` or a `=`, so that it cannot pose as more fields
/// (`USER x code=230` logs `user="x code=230"`), the logfmt rule. Control
/// characters are the caller's to escape first. Unchanged in JSON lines.
pub struct Field<'a>(pub &'a str);

impl std::fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        let plain = !v.contains([' ', '\t', '"', '=']);
        if plain || !TEXT_FORMAT.load(Ordering::Relaxed) {
            return f.write_str(v);
        }
        f.write_str("\"")?;
        for c in v.chars() {
            match c {
                '"' | '\\' => write!(f, "\\{c}")?,
                _ => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// Installs the global subscriber with [`filter_in_force`].
pub fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    TEXT_FORMAT.store(format == LogFormat::Text, Ordering::Relaxed);
    let ParsedFilter { filter, quiet } = filter_in_force(level)?;
    let (fixed, dynamic) = match filter {
        LogFilter::Static(t) => (Some(*t), None),
        LogFilter::Dynamic(e) => (None, Some(*e)),
    };
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(LogWriter)
        .with_target(false);
    let lines = match format {
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(fixed)
        .with(dynamic)
        .with(quiet)
        .with(lines)
        .try_init()?;
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Starts the writer thread; from then on no log line blocks its caller.
/// Call once start-up no longer needs to be single-threaded (after the
/// privilege drop and the sandbox). Does nothing when [`init`] did not
/// run or the thread is already started.
pub fn start_writer() {
    if !INSTALLED.load(Ordering::Relaxed) || NON_BLOCKING.get().is_some() {
        return;
    }
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("ringftp-log")
        .finish(std::io::stderr());
    let _ = DROPPED.set(writer.error_counter());
    *GUARD.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
    let _ = NON_BLOCKING.set(writer);
}

/// Writes every queued line and stops the writer thread; later lines are
/// lost. Call before the process exits.
pub fn flush() {
    let guard = GUARD.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(guard);
}

/// Log lines dropped so far because the writer fell behind.
pub fn dropped_lines() -> u64 {
    DROPPED.get().map(|c| c.dropped_lines() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_event_stays_on_one_line() {
        use std::io::Write;
        let write = |event: &[u8]| {
            let mut w = OneLine(Vec::new());
            w.write_all(event).unwrap();
            w.0
        };
        assert_eq!(write(b"INFO plain\n"), b"INFO plain\n");
        assert_eq!(
            write(b"ERROR not reloaded: TOML parse error\n  |\r\n6 | shell\n"),
            b"ERROR not reloaded: TOML parse error\\n  |\\r\\n6 | shell\n"
        );
        // No final newline (a writer that was handed part of an event).
        assert_eq!(write(b"a\nb"), b"a\\nb");
        // The message's own trailing line break is dropped, not escaped.
        assert_eq!(write(b"ERROR x\n  |\ny\n\n"), b"ERROR x\\n  |\\ny\n");
    }

    use super::*;

    #[test]
    fn levels_and_filters_are_accepted() {
        for ok in [
            "info",
            "WARN",
            "off",
            "trace",
            "info,ringftp::session=debug",
            "ringftp=debug",
            "warn, ringftp::server=info",
            "ringftp[session{peer=127.0.0.1:5000}]=trace",
            "ringftp::session = debug",
        ] {
            assert!(
                parse_filter(ok).is_ok(),
                "{ok}: {:?}",
                parse_filter(ok).err()
            );
        }
    }

    /// The rustls handshake module is held off unless a directive names
    /// it or a module above it, whatever else the filter says.
    #[test]
    fn the_sni_warning_module_is_quiet_unless_named() {
        for (spec, quiet) in [
            ("info", true),
            ("debug", true),
            ("ringftp=debug", true),
            ("info,ringftp[session]=debug", true),
            ("info,rustls::server=debug", true),
            ("info,rustlsx=warn", true),
            ("info,rustls=warn", false),
            ("info, rustls = warn", false),
            ("rustls::msgs=debug", false),
            ("rustls::msgs::handshake=warn", false),
            ("info,rustls[session]=warn", false),
        ] {
            let parsed = parse_filter(spec).unwrap();
            assert_eq!(parsed.quiet.is_some(), quiet, "{spec}");
            if let Some(q) = parsed.quiet {
                assert!(
                    !q.would_enable(QUIET_MODULE, &tracing::Level::ERROR),
                    "{spec}"
                );
                assert!(
                    q.would_enable("rustls::server", &tracing::Level::INFO),
                    "{spec}"
                );
            }
        }
        // It asks for nothing the operator's filter does not: its default
        // is that filter's most verbose level.
        let q = parse_filter("warn").unwrap().quiet.unwrap();
        assert!(!q.would_enable("ringftp", &tracing::Level::INFO));
        assert!(q.would_enable("ringftp", &tracing::Level::WARN));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "verbose",
            "",
            "  ",
            "info,verbose",
            "ringftp=verbose",
            "=debug",
            "ringftp",
            "x=[",
            "[session]",
            ",",
            " , ,",
        ] {
            let e = parse_filter(bad).expect_err(bad);
            assert!(!e.is_empty());
        }
        let e = parse_filter("verbose").unwrap_err();
        assert!(e.contains("not a level") && e.contains("debug"), "{e}");
    }
}
