//! Log set-up: tracing to stderr (stdout carries only the `listening on`
//! lines), filtered by RUST_LOG when set, else by `--log-level`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `level` is a level name or any
/// `EnvFilter` directive string.
pub fn init(level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v)?,
        _ => {
            EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("--log-level {level:?}: {e}"))?
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    Ok(())
}
