//! Command wiring: turn parsed flags, the config file and the environment into the values each
//! command needs (source, store, filter, limits, options), run the command, and choose the exit
//! code. This is the only layer that uses `anyhow`; below it every error is typed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::check::{self, CheckOptions};
use crate::cleanup;
use crate::cli::{Cli, Command, Global};
use crate::exit::Exit;
use crate::filter::Filter;
use crate::limits::Limits;
use crate::plan::SkipRule;
use crate::rclone_conf::{self, ConfError};
use crate::read::IoEngine;
use crate::registry::{self, Layout, RegistryMode};
use crate::remote::{self, Location, LocationError, S3Path, S3Settings, SettingsError};
use crate::report::ProgressMode;
use crate::s3::{self, ClientOptions, PutOptions, S3Error, Store};
use crate::shard::{Shard, ShardError};
use crate::sync::{self, Mode, SyncOptions};
use crate::units::{UnitError, parse_duration, parse_size};

/// A usage problem found while wiring (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The source directory does not exist (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("source directory {0} not found: check the path (and the volume mount)")]
pub struct SourceMissing(pub PathBuf);

/// Map an error that ended the whole run to the documented exit code (see [`crate::class`]).
pub fn exit_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<UsageError>()
            || cause.is::<ConfError>()
            || cause.is::<SettingsError>()
            || cause.is::<LocationError>()
            || cause.is::<UnitError>()
            || cause.is::<crate::filter::FilterError>()
            || cause.is::<s3::http::HttpError>()
            || cause.is::<ShardError>()
        {
            return Exit::Usage;
        }
        if cause.is::<SourceMissing>() {
            return Exit::DirNotFound;
        }
        if let Some(e) = cause.downcast_ref::<S3Error>() {
            return e.class().exit();
        }
    }
    Exit::Uncategorized
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let g = cli.global;
    match cli.command {
        Command::Version => {
            println!("s3ferry {}", env!("CARGO_PKG_VERSION"));
            Ok(Exit::Success)
        }
        Command::Sync(p) => run_sync(&g, &p.src, &p.dst, Mode::Sync).await,
        Command::Copy(p) => run_sync(&g, &p.src, &p.dst, Mode::Copy).await,
        Command::Check(p) => run_check(&g, &p.src, &p.dst).await,
        Command::Cleanup(p) => {
            let (path, settings) = resolve_s3(&g, &p.dst)?;
            let limits = limits(&g, &settings)?;
            let store = store(&g, path, &settings, &limits).await?;
            let max_age = parse_duration(&g.max_age)?;
            let s = cleanup::run(&store, max_age, g.dry_run).await?;
            write_report(&g, &s)?;
            Ok(if s.errors > 0 {
                Exit::Uncategorized
            } else {
                Exit::Success
            })
        }
    }
}

fn source_dir(text: &str) -> anyhow::Result<PathBuf> {
    match remote::parse_location(text)? {
        Location::Local(p) => {
            let meta = std::fs::metadata(&p).map_err(|_| SourceMissing(p.clone()))?;
            if !meta.is_dir() {
                return Err(UsageError(format!(
                    "source {} is not a directory: pass the directory to copy",
                    p.display()
                ))
                .into());
            }
            Ok(p)
        }
        Location::S3(_) => Err(UsageError(
            "S3 sources are not supported yet: SRC must be a local directory".into(),
        )
        .into()),
    }
}

fn resolve_s3(g: &Global, text: &str) -> anyhow::Result<(S3Path, S3Settings)> {
    let path = match remote::parse_location(text)? {
        Location::S3(p) => p,
        Location::Local(p) => {
            return Err(UsageError(format!(
                "destination {} is a local path: write it as REMOTE:BUCKET[/PREFIX] or s3://BUCKET[/PREFIX]",
                p.display()
            ))
            .into());
        }
    };
    let mut settings = match &path.remote {
        Some(name) => {
            let vars: Vec<(String, String)> = std::env::vars().collect();
            let section = rclone_conf::load_remote(name, g.config.as_deref(), &env, &vars)?;
            remote::from_rclone(&section)?
        }
        None => remote::from_aws_env(&env),
    };
    if let Some(e) = &g.endpoint {
        settings.endpoint = Some(remote::normalise_endpoint(e));
    }
    if let Some(r) = &g.region {
        settings.region = Some(r.clone());
    }
    if let Some(ps) = g.path_style {
        settings.path_style = Some(ps);
    }
    let origin = match &path.remote {
        Some(name) => format!("remote {name:?}"),
        None => "s3:// (AWS environment)".to_string(),
    };
    settings.validate(&origin)?;
    Ok((path, settings))
}

fn limits(g: &Global, s: &S3Settings) -> anyhow::Result<Limits> {
    // Flags > remote settings > defaults.
    let size = |flag: &Option<String>, name: &'static str| {
        flag.as_deref()
            .map(|v| parse_size(v).context(name))
            .transpose()
    };
    let d = Limits::default();
    Ok(Limits {
        chunk_size: size(&g.s3_chunk_size, "--s3-chunk-size")?
            .or(s.chunk_size)
            .unwrap_or(d.chunk_size),
        upload_cutoff: size(&g.s3_upload_cutoff, "--s3-upload-cutoff")?
            .or(s.upload_cutoff)
            .unwrap_or(d.upload_cutoff),
        parts_per_file: g
            .s3_upload_concurrency
            .or(s.upload_concurrency)
            .unwrap_or(d.parts_per_file),
        max_parts: g
            .s3_max_upload_parts
            .or(s.max_upload_parts)
            .unwrap_or(d.max_parts),
        transfers: g.transfers.unwrap_or(d.transfers),
        checkers: g.checkers.unwrap_or(d.checkers),
        buffer_memory: match size(&g.max_buffer_memory, "--max-buffer-memory")? {
            Some(b) => b,
            None => {
                let limit = crate::limits::cgroup_memory_limit();
                let b = crate::limits::budget_for(limit);
                tracing::info!(
                    "buffer memory {} ({}; --max-buffer-memory overrides)",
                    crate::report::bytes(b),
                    match limit {
                        Some(l) => format!(
                            "from the container's memory limit of {}",
                            crate::report::bytes(l)
                        ),
                        None => "no container memory limit".to_string(),
                    }
                );
                b
            }
        },
        walk_threads: d.walk_threads,
    }
    .normalised())
}

async fn store(
    g: &Global,
    path: S3Path,
    s: &S3Settings,
    limits: &Limits,
) -> anyhow::Result<Arc<Store>> {
    let mut extra_roots = g.ca_cert.clone();
    if let Some(bundle) = env("AWS_CA_BUNDLE").filter(|b| !b.is_empty()) {
        let p = PathBuf::from(&bundle);
        if p.is_file() {
            extra_roots.push(p);
        } else {
            tracing::warn!("AWS_CA_BUNDLE={bundle} is not a readable file: ignored");
        }
    }
    if g.no_check_certificate {
        tracing::warn!(
            "--no-check-certificate: server certificates are NOT verified; anyone on the path can read and change the data"
        );
    }
    let (connect_timeout, idle_timeout) = timeouts(g)?;
    let opts = ClientOptions {
        http: s3::http::HttpOptions {
            extra_roots,
            insecure: g.no_check_certificate,
            max_idle_per_host: limits.connections(),
            connect_timeout,
            idle_timeout,
        },
        max_attempts: g.low_level_retries.max(1),
        path_style: None,
    };
    let counts = Arc::new(s3::RequestCounts::default());
    let client = s3::build_client(s, &opts, counts.clone()).await?;
    let put = PutOptions {
        acl: s.acl.clone(),
        sse: s.server_side_encryption.clone(),
        sse_kms_key_id: s.sse_kms_key_id.clone(),
        storage_class: s.storage_class.clone(),
        sign_payload: g.s3_sign_payload,
    };
    Ok(Arc::new(Store::new(
        client,
        path,
        put,
        counts,
        idle_timeout,
    )))
}

/// `--contimeout` and `--timeout`; `0` turns one off, as in rclone.
fn timeouts(g: &Global) -> anyhow::Result<(Option<Duration>, Option<Duration>)> {
    let d = |text: &str, flag: &'static str| {
        parse_duration(text)
            .context(flag)
            .map(|d| (!d.is_zero()).then_some(d))
    };
    Ok((
        d(&g.contimeout, "--contimeout")?,
        d(&g.timeout, "--timeout")?,
    ))
}

fn progress(g: &Global) -> anyhow::Result<(ProgressMode, Duration)> {
    let interval = match &g.stats {
        Some(s) => parse_duration(s).context("--stats")?,
        None if g.progress => Duration::from_secs(10),
        None => Duration::from_secs(60),
    };
    Ok((ProgressMode::choose(g.progress, g.quiet), interval))
}

/// The engine that reads the source, per `--io-engine`: one ring per core, up to 4.
fn io_engine(g: &Global) -> anyhow::Result<(Arc<IoEngine>, String)> {
    let rings = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    Ok(IoEngine::choose(g.io_engine, rings).map_err(UsageError)?)
}

/// The registry layout under the source, per `--registry`.
fn registry_layout(g: &Global, root: &Path) -> anyhow::Result<Option<Layout>> {
    let found = registry::detect(root);
    match (g.registry, found) {
        (RegistryMode::Off, _) => Ok(None),
        (RegistryMode::On, None) => Err(UsageError(format!(
            "--registry on: no docker/registry/v2 (with blobs/ and repositories/) under {}: point SRC at the registry's storage root",
            root.display()
        ))
        .into()),
        (_, Some(layout)) => {
            tracing::warn!(
                "registry mode: {}/{} (blob digests and links verified; --registry off disables)",
                root.display(),
                if layout.v2.is_empty() { "." } else { layout.v2.trim_end_matches('/') }
            );
            Ok(Some(layout))
        }
        (RegistryMode::Auto, None) => Ok(None),
    }
}

/// Include/exclude rules and the shard, if any.
fn filter(g: &Global) -> anyhow::Result<Filter> {
    let shard = match &g.shard {
        Some(s) => {
            let shard = Shard::parse(s, env("JOB_COMPLETION_INDEX").as_deref())?;
            tracing::warn!(
                "shard {shard}: only this shard's files are synced, checked and deleted"
            );
            Some(shard)
        }
        None => None,
    };
    Ok(Filter::new(&g.exclude, &g.include)?.with_shard(shard))
}

fn write_report<T: serde::Serialize>(g: &Global, value: &T) -> anyhow::Result<()> {
    if let Some(path) = &g.report {
        let text = serde_json::to_string_pretty(value)?;
        let text = crate::redact::scrub(&text);
        std::fs::write(path, text.as_bytes())
            .with_context(|| format!("writing report {}", path.display()))?;
    }
    Ok(())
}

/// What `sync`, `copy` and `check` share: the source, the destination, and how to run.
struct Setup {
    root: PathBuf,
    settings: S3Settings,
    limits: Limits,
    filter: Filter,
    progress: ProgressMode,
    stats_interval: Duration,
    registry: Option<Layout>,
    store: Arc<Store>,
}

async fn setup(g: &Global, src: &str, dst: &str) -> anyhow::Result<Setup> {
    let root = source_dir(src)?;
    let (path, settings) = resolve_s3(g, dst)?;
    let limits = limits(g, &settings)?;
    let filter = filter(g)?;
    let (progress, stats_interval) = progress(g)?;
    let registry = registry_layout(g, &root)?;
    let store = store(g, path, &settings, &limits).await?;
    Ok(Setup {
        root,
        settings,
        limits,
        filter,
        progress,
        stats_interval,
        registry,
        store,
    })
}

async fn run_sync(g: &Global, src: &str, dst: &str, mode: Mode) -> anyhow::Result<Exit> {
    let Setup {
        root,
        settings,
        limits,
        filter,
        progress,
        stats_interval,
        registry,
        store,
    } = setup(g, src, dst).await?;
    let opts = SyncOptions {
        mode,
        dry_run: g.dry_run,
        skip_rule: if g.checksum {
            SkipRule::Checksum
        } else if g.size_only {
            SkipRule::SizeOnly
        } else {
            SkipRule::SizeAndTime
        },
        max_delete: u64::try_from(g.max_delete).ok(),
        copy_links: g.copy_links,
        create_bucket: g.create_bucket,
        location_constraint: settings.location_constraint.clone(),
        integrity_retries: g.retries.saturating_sub(1),
        progress,
        stats_interval,
        registry,
        include_uploads: g.registry_uploads,
        io: io_engine(g)?,
    };
    let summary = sync::run(store, root, filter, limits, opts).await?;
    write_report(g, &summary)?;
    if summary.max_delete_exceeded {
        return Ok(Exit::Fatal);
    }
    let code =
        crate::class::exit_for_file_errors(summary.errors_temporary, summary.errors_permanent);
    if code == Exit::Success
        && g.error_on_no_transfer
        && summary.files_uploaded == 0
        && summary.deleted == 0
    {
        return Ok(Exit::NoFilesTransferred);
    }
    Ok(code)
}

async fn run_check(g: &Global, src: &str, dst: &str) -> anyhow::Result<Exit> {
    let Setup {
        root,
        limits,
        filter,
        progress,
        stats_interval,
        registry,
        store,
        ..
    } = setup(g, src, dst).await?;
    if g.verify_digests && registry.is_none() {
        return Err(UsageError(format!(
            "--verify-digests needs registry mode, and {} is not a registry storage tree (no docker/registry/v2 with blobs/ and repositories/): point SRC at the storage root or drop the flag",
            root.display()
        ))
        .into());
    }
    let opts = CheckOptions {
        registry,
        include_uploads: g.registry_uploads,
        verify_digests: !g.no_verify_digests,
        one_way: g.one_way,
        download: !g.no_download,
        always_download: g.download,
        copy_links: g.copy_links,
        progress,
        stats_interval,
        combined: g.combined.clone(),
        missing_on_dst: g.missing_on_dst.clone(),
        missing_on_src: g.missing_on_src.clone(),
        differ: g.differ.clone(),
        matched: g.match_file.clone(),
        error_file: g.error.clone(),
    };
    if g.download {
        tracing::info!(
            "--download: objects whose ETag cannot prove content are downloaded (always on unless --no-download)"
        );
    }
    let summary = check::run(store, &root, filter, limits, opts).await?;
    write_report(g, &summary)?;
    Ok(if summary.not_ok() > 0 {
        Exit::Uncategorized
    } else {
        Exit::Success
    })
}

/// Parse rclone's `--log-level` names.
pub fn log_level(g: &Global) -> anyhow::Result<tracing::Level> {
    use tracing::Level;
    if let Some(l) = &g.log_level {
        return match l.to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(Level::DEBUG),
            "INFO" => Ok(Level::INFO),
            "NOTICE" | "WARNING" | "WARN" => Ok(Level::WARN),
            "ERROR" => Ok(Level::ERROR),
            other => Err(anyhow!(UsageError(format!(
                "--log-level {other}: use DEBUG, INFO, NOTICE or ERROR"
            )))),
        };
    }
    Ok(match (g.quiet, g.verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::WARN,
        (false, 1) => Level::INFO,
        _ => Level::DEBUG,
    })
}
