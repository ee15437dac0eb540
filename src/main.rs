//! s3ferry: verified, idempotent directory → S3 sync and check, a drop-in for the rclone Job
//! that moves a container registry's storage to object storage. This file only parses the
//! command line, sets up logging and the runtime, and turns the outcome into an exit code.

use std::path::Path;
use std::process::ExitCode;

use s3ferry::cli::{self, app};
use s3ferry::report;
use s3ferry::report::exit::Exit;

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_args(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let log = &cli.global.log;
    let level = match app::log_level(&cli.global) {
        Ok(l) => l,
        Err(e) => return refuse(&log.termination_log, &format!("{e:#}"), Exit::Usage),
    };
    let stats_level = match log
        .stats_log_level
        .as_deref()
        .map(|l| app::parse_level("--stats-log-level", l))
    {
        None => tracing::Level::WARN,
        Some(Ok(l)) => l,
        Some(Err(e)) => return refuse(&log.termination_log, &format!("{e:#}"), Exit::Usage),
    };
    report::set_stats_style(report::StatsStyle {
        level: stats_level,
        one_line: log.stats_one_line,
    });
    let file = match &log.log_file {
        None => None,
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(f),
            Err(e) => {
                return refuse(
                    &log.termination_log,
                    &format!("--log-file {}: {e}: give a writable path", p.display()),
                    Exit::Usage,
                );
            }
        },
    };
    report::init_logging(level, log.verbose >= 3, log.use_json_log, file);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                &log.termination_log,
                &format!("cannot start the runtime: {e}"),
                Exit::Fatal,
            );
        }
    };
    let termination_log = log.termination_log.clone();
    let (exit, error) = match runtime.block_on(app::run(cli)) {
        Ok(exit) => (exit, None),
        Err(e) => {
            tracing::error!("{e:#}");
            (app::exit_for(&e), Some(format!("{e:#}")))
        }
    };
    report::termination::write(&termination_log, exit, error.as_deref());
    exit.code()
}

/// End before the run: the error on stderr and in the termination message at `path`.
fn refuse(path: &Path, line: &str, exit: Exit) -> ExitCode {
    eprintln!("ERROR : {line}");
    report::termination::write(path, exit, Some(line));
    exit.code()
}

/// A command line clap refused: help and version as clap prints them; an unknown flag as one
/// line naming the nearest flag (or why rclone's flag of that name does not apply); anything
/// else as clap's message, on one line.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !e.use_stderr() {
        let _ = e.print();
        return Exit::Success.code();
    }
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let line = match e.kind() {
        ErrorKind::UnknownArgument => {
            let flag = text(ContextKind::InvalidArg).unwrap_or_default();
            cli::unknown_flag(&flag, text(ContextKind::SuggestedArg).as_deref())
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            format!("{first} (s3ferry --help lists the flags)")
        }
    };
    // The flags were not parsed: the environment's path, or Kubernetes' default.
    let path = std::env::var_os("S3FERRY_TERMINATION_LOG")
        .unwrap_or_else(|| report::termination::DEFAULT_PATH.into());
    refuse(Path::new(&path), &line, Exit::Usage)
}
