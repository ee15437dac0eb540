//! s3ferry: verified, idempotent directory → S3 sync and check, a drop-in for the rclone Job
//! that moves a container registry's storage to object storage. This file only parses the
//! command line, sets up logging and the runtime, and turns the outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;

use s3ferry::exit::Exit;
use s3ferry::{app, cli, report};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Success.code()
            };
        }
    };
    let level = match app::log_level(&cli.global) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ERROR : {e:#}");
            return Exit::Usage.code();
        }
    };
    report::init_logging(level, cli.global.verbose >= 3, cli.global.use_json_log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return Exit::Fatal.code();
        }
    };
    match runtime.block_on(app::run(cli)) {
        Ok(exit) => exit.code(),
        Err(e) => {
            tracing::error!("{e:#}");
            app::exit_for(&e).code()
        }
    }
}
