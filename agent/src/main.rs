//! The `outpost` binary: parses arguments, sets up logging and hands over to
//! [`outpost::cli`]. Errors end here as one line on stderr and exit code 2.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    outpost::memory::limit_arenas();
    let args = outpost::cli::Cli::parse();
    outpost::cli::init_logging(&args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(outpost::cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
