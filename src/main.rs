//! The `ringftp` binary: parse flags and hand them to the library.
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = ringftp::cli::Cli::parse();
    let code = match cli.command {
        // Parsed again with its --config file merged in.
        ringftp::cli::Command::Serve(_) => {
            match ringftp::server::main(std::env::args_os().collect()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("ringftp: {e:#}");
                    1
                }
            }
        }
        ringftp::cli::Command::Passwd => match ringftp::auth::password::passwd_command() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ringftp passwd: {e:#}");
                1
            }
        },
        ringftp::cli::Command::Loadtest(args) => match ringftp::loadgen::run(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("ringftp loadtest: {e:#}");
                1
            }
        },
    };
    std::process::exit(code);
}
