//! The load generator behind `ringftp loadtest` (placeholder until the
//! load-generator issue lands).

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct LoadtestArgs {}

/// Runs a load test; returns the process exit code.
pub fn run(_args: LoadtestArgs) -> anyhow::Result<i32> {
    anyhow::bail!("loadtest is not implemented yet")
}
