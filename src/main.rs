//! The `herald` binary: parse the command line, start logging, run, and turn
//! the outcome into an exit code (0 ok, 1 runtime failure, 2 bad input).

use std::process::ExitCode;

use clap::Parser;

use herald::cli::{Cli, Command};
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
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // Delivery runs on one worker thread. Its work is waiting on sockets
    // and the database with short bursts of composing in between; a second
    // worker mostly woke up to find nothing to take (a context switch each
    // time), and on a small machine that shares its cores with the relay
    // that cost about a tenth of a send's CPU. DKIM signing, the one heavy
    // step, runs on the blocking pool and still uses every core.
    if matches!(cli.command, Command::Send(_) | Command::RunDue(_)) {
        runtime.worker_threads(1);
    }
    let runtime = match runtime.enable_all().build() {
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
