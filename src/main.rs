//! s3ferry: verified, idempotent directory → S3 sync and check, a drop-in for the rclone Job
//! that moves a container registry's storage to object storage.
//!
//! The pipeline stages live in their own modules, in order: `walk` → `list` → `plan` → `read`
//! → `upload` → `verify`; `sync`, `check` and `cleanup` are the commands built from them.

mod app;
mod check;
mod cleanup;
mod cli;
mod etag;
mod exit;
mod filter;
mod limits;
mod list;
mod plan;
mod rclone_conf;
mod read;
mod remote;
mod report;
mod s3;
mod sync;
mod units;
mod upload;
mod verify;
mod walk;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::Exit;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage.code() } else { Exit::Success.code() };
        }
    };
    let level = match app::log_level(&cli.global) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ERROR : {e:#}");
            return Exit::Usage.code();
        }
    };
    report::init_logging(level, cli.global.use_json_log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
