//! The `herald` binary: parse the command line, start logging, run, and turn
//! the outcome into an exit code (0 ok, 1 runtime failure, 2 bad input).

use std::process::ExitCode;

use clap::Parser;

use herald::cli::Cli;
use herald::error::{exit, exit_code};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::BAD_INPUT
            } else {
                exit::OK
            });
        }
    };
    herald::telemetry::init(cli.log_format);
    herald::sigbus::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(herald::commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("herald: error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
