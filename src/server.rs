//! placeholder
pub fn main(_args: crate::cli::ServeArgs) -> anyhow::Result<()> {
    Ok(())
}
