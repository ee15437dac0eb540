//! Command wiring: turn parsed flags, the config file and the environment into the values each
//! command needs (source, store, filter, limits, options), run the command, and choose the exit
//! code. This is the only layer that uses `anyhow`; below it every error is typed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};

use crate::cli::{Cli, Command, Global};
use crate::commands::check::{self, CheckOptions};
use crate::commands::cleanup;
use crate::commands::delete::Ending;
use crate::commands::sync::{self, SyncOptions};
use crate::commands::{Mode, RunOptions};
use crate::config::filter::Filter;
use crate::config::limits::Limits;
use crate::config::rclone_conf::{self, ConfError};
use crate::config::registry::{self, Layout, RegistryMode};
use crate::config::remote::{self, Location, LocationError, S3Path, S3Settings, SettingsError};
use crate::config::shard::{Shard, ShardError};
use crate::config::units::UnitError;
use crate::march::plan::SkipRule;
use crate::read::IoEngine;
use crate::report::ProgressMode;
use crate::report::exit::Exit;
use crate::s3::{self, ClientOptions, PutOptions, S3Error, Store};

/// A usage problem found while wiring (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The source directory does not exist (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("source directory {0} not found: check the path (and the volume mount)")]
pub struct SourceMissing(pub PathBuf);

/// Map an error that ended the whole run to the documented exit code (see [`crate::report::class`]).
pub fn exit_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<UsageError>()
            || cause.is::<ConfError>()
            || cause.is::<SettingsError>()
            || cause.is::<LocationError>()
            || cause.is::<UnitError>()
            || cause.is::<crate::config::filter::FilterError>()
            || cause.is::<crate::s3::bwlimit::BwError>()
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

/// A check that stopped as a whole, as an error whose causes [`exit_for`] can read (a
/// listing's failure keeps its class).
fn check_failed(e: check::CheckError) -> anyhow::Error {
    match e {
        check::CheckError::S3(e) => e.into(),
        check::CheckError::Output(e) => e.into(),
        check::CheckError::Task(e) => e.into(),
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// Run the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    let g = cli.global;
    let (no_effect, refused) = crate::cli::compat(&g.compat);
    if let Some((flag, why)) = refused.first() {
        return Err(UsageError(format!("{flag} is refused: {why}")).into());
    }
    for (flag, why) in no_effect {
        tracing::info!("{flag} has no effect in s3ferry: {why}");
    }
    if g.transfer.delete_after {
        tracing::info!("--delete-after: s3ferry always deletes after every transfer succeeded");
    }
    if let Some(addr) = g.log.metrics_addr.as_deref().filter(|a| !a.is_empty()) {
        let bound = crate::report::metrics::serve(addr)
            .await
            .map_err(|e| UsageError(e.to_string()))?;
        tracing::warn!("metrics at http://{bound}/metrics");
    }
    match cli.command {
        Command::Version => {
            println!("s3ferry {}", env!("CARGO_PKG_VERSION"));
            Ok(Exit::Success)
        }
        Command::Sync(p) if is_s3(&p.src) && is_s3(&p.dst) => {
            run_mirror(&g, &p.src, &p.dst, Mode::Sync).await
        }
        Command::Copy(p) if is_s3(&p.src) && is_s3(&p.dst) => {
            run_mirror(&g, &p.src, &p.dst, Mode::Copy).await
        }
        Command::Sync(p) if is_s3(&p.src) => run_restore(&g, &p.src, &p.dst, Mode::Sync).await,
        Command::Copy(p) if is_s3(&p.src) => run_restore(&g, &p.src, &p.dst, Mode::Copy).await,
        Command::Sync(p) => run_sync(&g, &p.src, &p.dst, Mode::Sync).await,
        Command::Copy(p) => run_sync(&g, &p.src, &p.dst, Mode::Copy).await,
        Command::Check(p) if is_s3(&p.src) && is_s3(&p.dst) => {
            run_check_buckets(&g, &p.src, &p.dst).await
        }
        Command::Check(p) if is_s3(&p.src) => run_check(&g, &p.dst, &p.src, true).await,
        Command::Check(p) => run_check(&g, &p.src, &p.dst, false).await,
        Command::Cleanup(p) => {
            if g.filter.max_age.is_some() {
                return Err(UsageError(
                    "cleanup: --max-age is rclone's file filter; give the uploads' age with --older-than".into(),
                )
                .into());
            }
            let (path, settings) = resolve_s3(&g, &p.dst)?;
            let limits = limits(&g, &settings);
            let store = store(&g, path, &settings, &limits).await?;
            let s = cleanup::run(&store, g.transfer.older_than, g.transfer.dry_run).await?;
            write_report(&g, &s)?;
            Ok(if s.errors > 0 {
                Exit::Uncategorized
            } else {
                Exit::Success
            })
        }
    }
}

/// Whether a location names S3 (a remote, an on-the-fly remote or an `s3://` URL); unparsable
/// text is left for the command to report.
fn is_s3(text: &str) -> bool {
    matches!(remote::parse_location(text), Ok(Location::S3(_)))
}

/// `sync` with an `s3://` URL on the side that would lose entries (`to` a bucket, `from` a
/// bucket into a directory) deletes nothing without `--delete`, as `aws s3 sync`.
fn aws_sync(mode: Mode, aws: bool, delete: bool, side: &str) -> Mode {
    if mode == Mode::Sync && aws && !delete {
        tracing::warn!(
            "sync {side} an s3:// URL deletes nothing without --delete, as aws s3 sync (REMOTE:BUCKET locations delete, as rclone sync)"
        );
        return Mode::Copy;
    }
    mode
}

/// `--max-transfer`, `--max-duration` and `--cutoff-mode`.
fn cutoff(g: &Global) -> crate::commands::schedule::Cutoff {
    let t = &g.transfer;
    crate::commands::schedule::Cutoff {
        max_transfer: t.max_transfer,
        max_duration: t.max_duration,
        mode: t.cutoff_mode,
    }
}

/// What every `sync` and `copy` is told, whatever its direction, from the flags.
fn run_options(g: &Global, mode: Mode, registry: Option<Layout>) -> RunOptions {
    let t = &g.transfer;
    let (progress, stats_interval) = progress(g);
    RunOptions {
        mode,
        dry_run: t.dry_run,
        delete_excluded: g.filter.delete_excluded,
        max_delete: u64::try_from(t.max_delete).ok(),
        cutoff: cutoff(g),
        progress,
        stats_interval,
        registry,
        include_uploads: g.registry.registry_uploads,
    }
}

/// What a rerun of an upload skips, from rclone's flags (the first that is set wins).
fn skip_rule(t: &crate::cli::TransferFlags) -> SkipRule {
    if t.ignore_existing {
        SkipRule::Exists
    } else if t.checksum {
        SkipRule::Checksum
    } else if t.size_only {
        SkipRule::SizeOnly
    } else if t.update && t.use_server_modtime {
        SkipRule::UpdateServerTime
    } else if t.update {
        SkipRule::Update
    } else if t.use_server_modtime {
        SkipRule::ServerTime
    } else {
        SkipRule::SizeAndTime
    }
}

/// How a run that moved data ended, for its exit code.
struct Ended<'a> {
    errors: Exit,
    ending: &'a Ending,
    /// Nothing was transferred (for `--error-on-no-transfer`, with nothing deleted).
    transferred: u64,
}

/// The exit code of a sync or copy in any direction: 7 over `--max-delete`; else the file
/// errors' class; else 8 or 10 at a cutoff; else 9 for `--error-on-no-transfer`.
fn exit_of(g: &Global, e: Ended) -> Exit {
    if e.ending.max_delete_exceeded {
        return Exit::Fatal;
    }
    if e.errors != Exit::Success {
        return e.errors;
    }
    if e.ending.transfer_exceeded {
        return Exit::TransferExceeded;
    }
    if e.ending.duration_exceeded {
        return Exit::DurationExceeded;
    }
    if g.transfer.error_on_no_transfer && e.transferred == 0 && e.ending.deleted == 0 {
        return Exit::NoFilesTransferred;
    }
    Exit::Success
}

/// Whether `--disable` turns server-side copies off; any other name is refused.
fn copy_disabled(g: &Global) -> anyhow::Result<bool> {
    let mut off = false;
    for name in g.transfer.disable.iter().flat_map(|d| d.split(',')) {
        match name.trim().to_ascii_lowercase().as_str() {
            "copy" => off = true,
            "" => {}
            other => {
                return Err(UsageError(format!(
                    "--disable {other}: the only feature s3ferry can turn off is copy (server-side copies)"
                ))
                .into());
            }
        }
    }
    Ok(off)
}

/// Whether two S3 locations overlap: one endpoint, one bucket, and one prefix inside the
/// other (a sync would copy onto, or delete from, its own source).
fn overlapping(a: &S3Path, sa: &S3Settings, b: &S3Path, sb: &S3Settings) -> bool {
    sa.endpoint == sb.endpoint
        && a.bucket == b.bucket
        && (a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix))
}

/// `sync | copy REMOTE:A REMOTE:B`: bucket to bucket.
async fn run_mirror(g: &Global, src: &str, dst: &str, mode: Mode) -> anyhow::Result<Exit> {
    let (src_path, src_settings) = resolve_s3(g, src)?;
    let (dst_path, dst_settings) = resolve_s3(g, dst)?;
    if overlapping(&src_path, &src_settings, &dst_path, &dst_settings) {
        return Err(UsageError(format!(
            "source {src} and destination {dst} overlap (one bucket, one prefix inside the other): give disjoint locations"
        ))
        .into());
    }
    // One endpoint and one set of credentials: the destination's client can read the source.
    let same_endpoint = src_settings.endpoint == dst_settings.endpoint
        && src_settings.credentials == dst_settings.credentials
        && src_settings.profile == dst_settings.profile;
    let server_side = same_endpoint && !copy_disabled(g)?;
    let aws = dst_path.remote.is_none();
    let limits = limits(g, &dst_settings);
    let filter = filter(g, aws)?;
    let src_store = store(g, src_path, &src_settings, &limits).await?;
    let dst_store = store(g, dst_path, &dst_settings, &limits).await?;
    let t = &g.transfer;
    let mode = aws_sync(mode, aws, t.delete, "to");
    let registry = remote_registry(g, &src_store).await?;
    let opts = crate::commands::mirror::MirrorOptions {
        run: run_options(g, mode, registry),
        size_only: t.size_only,
        ignore_existing: t.ignore_existing,
        checksum: t.checksum,
        server_side,
        create_bucket: t.create_bucket,
        location_constraint: dst_settings.location_constraint.clone(),
        retry: crate::transfer::multipart::Retry {
            again: t.retries.saturating_sub(1),
            sleep: t.retries_sleep,
        },
    };
    let summary = crate::commands::mirror::run(src_store, dst_store, filter, limits, opts).await?;
    write_report(g, &summary)?;
    Ok(exit_of(
        g,
        Ended {
            errors: summary.failures.exit(),
            ending: &summary.ending,
            transferred: summary.objects_copied,
        },
    ))
}

/// `copy REMOTE:BUCKET[/P] DIR`: restore objects into a directory.
async fn run_restore(g: &Global, src: &str, dst: &str, mode: Mode) -> anyhow::Result<Exit> {
    let root = match remote::parse_location(dst)? {
        Location::Local(p) => p,
        Location::S3(_) => return Err(anyhow!("internal: a bucket-to-bucket run reached restore")),
    };
    if root.exists() && !root.is_dir() {
        return Err(UsageError(format!(
            "destination {} is not a directory: pass the directory to restore into",
            root.display()
        ))
        .into());
    }
    if !g.transfer.dry_run {
        writable(&root)?;
    }
    let (path, settings) = resolve_s3(g, src)?;
    let aws = path.remote.is_none();
    let limits = limits(g, &settings);
    let filter = filter(g, aws)?;
    let store = store(g, path, &settings, &limits).await?;
    let t = &g.transfer;
    let mode = aws_sync(mode, aws, t.delete, "from");
    let registry = remote_registry(g, &store).await?;
    let opts = crate::commands::restore::RestoreOptions {
        run: run_options(g, mode, registry),
        size_only: t.size_only,
        ignore_existing: t.ignore_existing,
        direct_io: t.direct_io == crate::read::DirectIo::Auto,
    };
    use crate::commands::restore::{self, RestoreError};
    let summary = restore::run(store, root, filter, limits, opts)
        .await
        .map_err(|e| match e {
            // A listing's failure keeps its class, and so its exit code.
            RestoreError::S3(e) => anyhow::Error::from(e),
            e => e.into(),
        })?;
    write_report(g, &summary)?;
    Ok(exit_of(
        g,
        Ended {
            errors: summary.failures.exit(),
            ending: &summary.ending,
            transferred: summary.files_restored,
        },
    ))
}

/// A restore's destination (or, while it does not exist, the directory it will be made in)
/// must be writable: one line naming the fix before anything is fetched, not an error per
/// file.
fn writable(root: &Path) -> anyhow::Result<()> {
    let Some(there) = root.ancestors().find(|p| p.exists()) else {
        return Ok(());
    };
    match rustix::fs::access(there, rustix::fs::Access::WRITE_OK) {
        Ok(()) => Ok(()),
        Err(e) => {
            let e = std::io::Error::from(e);
            Err(UsageError(format!(
                "destination {}: {e}{}",
                there.display(),
                crate::transfer::confine::hint(&e)
            ))
            .into())
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
        Location::S3(_) => Err(anyhow!("internal: an S3 source reached the directory path")),
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
    // Precedence, as rclone: connection-string parameters > --s3-* flags (RCLONE_S3_* in
    // the environment) > RCLONE_CONFIG_<REMOTE>_* > the config file.
    let flags = g.s3.keys.pairs();
    let mut section = match path.remote.as_deref() {
        Some(":s3") => rclone_conf::RemoteSection::s3(":s3"),
        Some(name) => {
            let vars: Vec<(String, String)> = std::env::vars().collect();
            rclone_conf::load_remote(name, g.s3.config.as_deref(), &env, &vars)?
        }
        None => remote::aws_env_section(&env),
    };
    section.overlay(&flags, false);
    section.overlay(&path.params, true);
    let mut settings = remote::from_rclone(&section)?;
    if let Some(e) = &g.s3.endpoint {
        settings.endpoint = Some(remote::normalise_endpoint(e));
    }
    if let Some(r) = &g.s3.region {
        settings.region = Some(r.clone());
    }
    if let Some(ps) = g.s3.path_style {
        settings.path_style = Some(ps);
    }
    if let Some(p) = &g.s3.profile {
        if path.remote.is_some() {
            return Err(UsageError(
                "--profile names an AWS profile, for s3:// URLs; a REMOTE: takes its keys from rclone.conf".into(),
            )
            .into());
        }
        // As the AWS CLI: an explicit profile wins over keys in the environment.
        settings.credentials = Some(remote::Credentials::DefaultChain);
        settings.profile = Some(p.clone());
    }
    let origin = match &path.remote {
        Some(name) => format!("remote {name:?}"),
        None => "s3:// (AWS environment)".to_string(),
    };
    settings.validate(&origin)?;
    Ok((path, settings))
}

fn limits(g: &Global, s: &S3Settings) -> Limits {
    // Flags (already merged into the settings with the remote's keys) > defaults.
    let d = Limits::default();
    let t = &g.transfer;
    Limits {
        chunk_size: s.chunk_size.unwrap_or(d.chunk_size),
        upload_cutoff: s.upload_cutoff.unwrap_or(d.upload_cutoff),
        parts_per_file: s.upload_concurrency.unwrap_or(d.parts_per_file),
        max_parts: s.max_upload_parts.unwrap_or(d.max_parts),
        transfers: t.transfers.unwrap_or(d.transfers),
        checkers: t.checkers.unwrap_or(d.checkers),
        buffer_memory: match t.max_buffer_memory {
            Some(b) => b,
            None => {
                let limit = crate::config::limits::cgroup_memory_limit();
                let b = crate::config::limits::budget_for(limit);
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
    .normalised()
}

async fn store(
    g: &Global,
    path: S3Path,
    s: &S3Settings,
    limits: &Limits,
) -> anyhow::Result<Arc<Store>> {
    let mut extra_roots = g.s3.ca_cert.clone();
    if let Some(bundle) = env("AWS_CA_BUNDLE").filter(|b| !b.is_empty()) {
        let p = PathBuf::from(&bundle);
        if p.is_file() {
            extra_roots.push(p);
        } else {
            tracing::warn!("AWS_CA_BUNDLE={bundle} is not a readable file: ignored");
        }
    }
    if g.s3.no_check_certificate {
        tracing::warn!(
            "--no-check-certificate: server certificates are NOT verified; anyone on the path can read and change the data"
        );
    }
    let on = |d: Duration| (!d.is_zero()).then_some(d);
    let (connect_timeout, idle_timeout) = (on(g.transfer.contimeout), on(g.transfer.timeout));
    let bwlimit = match &g.transfer.bwlimit {
        Some(text) => {
            let l = crate::s3::bwlimit::Limiter::new(crate::s3::bwlimit::Schedule::parse(text)?);
            l.is_limited().then(|| Arc::new(l))
        }
        None => None,
    };
    let opts = ClientOptions {
        http: s3::http::HttpOptions {
            extra_roots,
            insecure: g.s3.no_check_certificate,
            max_idle_per_host: limits.connections(),
            connect_timeout,
            idle_timeout,
            bwlimit: bwlimit.clone(),
        },
        max_attempts: g.transfer.low_level_retries.max(1),
        path_style: None,
    };
    let counts = Arc::new(crate::report::requests::RequestCounts::default());
    let client = s3::build_client(s, &opts, counts.clone())
        .await
        .map_err(|e| match e {
            // Wrong HTTP settings are a usage error (see exit_for).
            s3::ClientError::Http(e) => anyhow::Error::from(e),
            e => e.into(),
        })?;
    if let Some(c) = &s.sse_customer {
        crate::report::redact::register_secret(c.key_base64.expose());
        if let Some(raw) = c.raw_key() {
            crate::report::redact::register_secret(&raw);
        }
    }
    let put = PutOptions {
        acl: s.acl.clone(),
        sse: s.server_side_encryption.clone(),
        sse_kms_key_id: s.sse_kms_key_id.clone(),
        sse_customer: s.sse_customer.clone(),
        storage_class: s.storage_class.clone(),
        sign_payload: g.s3.s3_sign_payload,
        checksum: s.checksum.unwrap_or_default(),
        opaque_etags: Default::default(),
    };
    // Under a bandwidth limit a healthy request may take any time: only the idle timeout
    // stays (a stalled server still trips it; waiting for the limit does not).
    let ceiling_from = if bwlimit.is_some() {
        None
    } else {
        idle_timeout
    };
    Ok(Arc::new(Store::new(
        client,
        path,
        put,
        counts,
        ceiling_from,
    )))
}

/// The store, and its limits, that a command line would use for `remote` (its flags parsed as
/// s3ferry's): for benchmarks and tools built on the library, wired exactly as a run is.
pub async fn open_store(args: &[&str], remote: &str) -> anyhow::Result<(Arc<Store>, Limits)> {
    let cli = Cli::parse_args(
        ["s3ferry", "cleanup", remote]
            .into_iter()
            .chain(args.iter().copied()),
    )?;
    let g = cli.global;
    let (path, settings) = resolve_s3(&g, remote)?;
    let limits = limits(&g, &settings);
    Ok((store(&g, path, &settings, &limits).await?, limits))
}

fn progress(g: &Global) -> (ProgressMode, Duration) {
    let interval = match g.log.stats {
        Some(s) => s,
        None if g.transfer.progress => Duration::from_secs(10),
        None => Duration::from_secs(60),
    };
    (
        ProgressMode::choose(g.transfer.progress, g.log.quiet),
        interval,
    )
}

/// The engine that reads the source, per `--io-engine`: one ring per core, up to 4.
fn io_engine(g: &Global) -> anyhow::Result<(Arc<IoEngine>, String)> {
    let rings = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    Ok(IoEngine::choose(g.transfer.io_engine, rings, g.transfer.direct_io).map_err(UsageError)?)
}

/// The registry layout under the source, per `--registry`.
fn registry_layout(g: &Global, root: &Path) -> anyhow::Result<Option<Layout>> {
    let found = registry::detect(root);
    match (g.registry.registry, found) {
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

/// The registry layout under an S3 source, per `--registry`: a `v2` holding both `blobs/` and
/// `repositories/` (one short listing per place it may be).
async fn remote_registry(g: &Global, store: &Store) -> anyhow::Result<Option<Layout>> {
    if g.registry.registry == RegistryMode::Off {
        return Ok(None);
    }
    let prefix = &store.path.prefix;
    for v2 in registry::V2_PREFIXES {
        let mut found = true;
        for dir in ["blobs/", "repositories/"] {
            let page = store
                .list_page(&format!("{prefix}{v2}{dir}"), None, None, true)
                .await?;
            if page.objects.is_empty() && page.prefixes.is_empty() {
                found = false;
                break;
            }
        }
        if found {
            tracing::warn!(
                "registry mode: {}{} (blob digests verified, links after blobs; --registry off disables)",
                store.shown(prefix),
                v2.trim_end_matches('/')
            );
            return Ok(Some(Layout { v2: v2.to_string() }));
        }
    }
    if g.registry.registry == RegistryMode::On {
        return Err(UsageError(format!(
            "--registry on: no docker/registry/v2 (with blobs/ and repositories/) under {}: point the source at the registry's storage root",
            store.shown(prefix)
        ))
        .into());
    }
    Ok(None)
}

/// The filter rules (rclone's, or the AWS CLI's for `s3://` destinations), size and age
/// limits, and the shard, if any.
fn filter(g: &Global, aws: bool) -> anyhow::Result<Filter> {
    let shard = match &g.transfer.shard {
        Some(s) => {
            let shard = Shard::parse(s, env("JOB_COMPLETION_INDEX").as_deref())?;
            tracing::warn!(
                "shard {shard}: only this shard's files are synced, checked and deleted"
            );
            Some(shard)
        }
        None => None,
    };
    let f = &g.filter;
    let syntax = if aws {
        crate::config::filter::Syntax::AwsCli
    } else {
        crate::config::filter::Syntax::Rclone
    };
    if aws
        && !(f.filter.is_empty()
            && f.filter_from.is_empty()
            && f.include_from.is_empty()
            && f.exclude_from.is_empty())
    {
        return Err(UsageError(
            "--filter, --filter-from, --include-from and --exclude-from are rclone's: give a REMOTE:BUCKET destination, or use --include/--exclude (the AWS CLI's) with s3://".into(),
        )
        .into());
    }
    let args: Vec<String> = std::env::args().collect();
    let spec = crate::config::filter::FilterSpec {
        syntax,
        include: f.include.clone(),
        exclude: f.exclude.clone(),
        ordered: if aws {
            crate::config::filter::aws_order(&args)
        } else {
            Vec::new()
        },
        filter: f.filter.clone(),
        exclude_if_present: f.exclude_if_present.clone(),
        include_from: f.include_from.clone(),
        exclude_from: f.exclude_from.clone(),
        filter_from: f.filter_from.clone(),
        min_size: f.min_size,
        max_size: f.max_size,
        min_age: f.min_age,
        max_age: f.max_age,
    };
    Ok(Filter::from_spec(&spec, std::time::SystemTime::now())?.with_shard(shard))
}

fn write_report<T: serde::Serialize>(g: &Global, value: &T) -> anyhow::Result<()> {
    if let Some(path) = &g.check.report {
        let text = serde_json::to_string_pretty(value)?;
        let text = crate::report::redact::scrub(&text);
        std::fs::write(path, text.as_bytes())
            .with_context(|| format!("writing report {}", path.display()))?;
    }
    Ok(())
}

/// What `sync`, `copy` and `check` share: the source, the destination, and how to run.
struct Setup {
    root: PathBuf,
    settings: S3Settings,
    /// The destination is an `s3://` URL (the AWS CLI's conventions apply).
    aws: bool,
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
    let aws = path.remote.is_none();
    let limits = limits(g, &settings);
    let filter = filter(g, aws)?;
    let (progress, stats_interval) = progress(g);
    let registry = registry_layout(g, &root)?;
    let store = store(g, path, &settings, &limits).await?;
    Ok(Setup {
        root,
        settings,
        aws,
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
        aws,
        limits,
        filter,
        registry,
        store,
        ..
    } = setup(g, src, dst).await?;
    let t = &g.transfer;
    let mode = aws_sync(mode, aws, t.delete, "to");
    let opts = SyncOptions {
        run: run_options(g, mode, registry),
        skip_rule: skip_rule(t),
        update_modtime: !t.no_update_modtime,
        copy_links: t.copy_links,
        create_bucket: t.create_bucket,
        location_constraint: settings.location_constraint.clone(),
        integrity_retries: t.retries.saturating_sub(1),
        retries_sleep: t.retries_sleep,
        io: io_engine(g)?,
    };
    let summary = sync::run(store, root, filter, limits, opts).await?;
    write_report(g, &summary)?;
    Ok(exit_of(
        g,
        Ended {
            errors: crate::report::class::exit_for_file_errors(
                summary.errors_temporary,
                summary.errors_permanent,
            ),
            ending: &summary.ending,
            transferred: summary.files_uploaded,
        },
    ))
}

/// `check DIR REMOTE:B`, or with `reversed` `check REMOTE:B DIR` (`dir` and `remote` are the
/// two locations, whichever is the source).
async fn run_check(g: &Global, dir: &str, remote: &str, reversed: bool) -> anyhow::Result<Exit> {
    let Setup {
        root,
        limits,
        filter,
        progress,
        stats_interval,
        registry,
        store,
        ..
    } = setup(g, dir, remote).await?;
    // Registry proofs are about a source tree (its links, its blobs' digests): none when the
    // directory is the destination.
    let registry = if reversed { None } else { registry };
    let c = &g.check;
    if g.registry.verify_digests && registry.is_none() {
        return Err(UsageError(format!(
            "--verify-digests needs registry mode, and {} is not a registry storage tree (no docker/registry/v2 with blobs/ and repositories/): point SRC at the storage root or drop the flag",
            root.display()
        ))
        .into());
    }
    let opts = CheckOptions {
        registry,
        include_uploads: g.registry.registry_uploads,
        verify_digests: !g.registry.no_verify_digests,
        one_way: c.one_way,
        reversed,
        download: !c.no_download,
        always_download: c.download,
        copy_links: g.transfer.copy_links,
        progress,
        stats_interval,
        combined: c.combined.clone(),
        missing_on_dst: c.missing_on_dst.clone(),
        missing_on_src: c.missing_on_src.clone(),
        differ: c.differ.clone(),
        matched: c.match_file.clone(),
        error_file: c.error.clone(),
    };
    if c.download {
        tracing::info!(
            "--download: objects whose ETag cannot prove content are downloaded (always on unless --no-download)"
        );
    }
    let summary = check::run(store, &root, filter, limits, opts)
        .await
        .map_err(check_failed)?;
    write_report(g, &summary)?;
    Ok(if summary.not_ok() > 0 {
        Exit::Uncategorized
    } else {
        Exit::Success
    })
}

/// `check REMOTE:A REMOTE:B`: bucket against bucket.
async fn run_check_buckets(g: &Global, src: &str, dst: &str) -> anyhow::Result<Exit> {
    let (src_path, src_settings) = resolve_s3(g, src)?;
    let (dst_path, dst_settings) = resolve_s3(g, dst)?;
    let aws = dst_path.remote.is_none();
    let limits = limits(g, &dst_settings);
    let filter = filter(g, aws)?;
    let (progress, stats_interval) = progress(g);
    let src_store = store(g, src_path, &src_settings, &limits).await?;
    let dst_store = store(g, dst_path, &dst_settings, &limits).await?;
    let c = &g.check;
    let opts = CheckOptions {
        registry: None,
        include_uploads: false,
        verify_digests: false,
        one_way: c.one_way,
        reversed: false,
        download: !c.no_download,
        always_download: c.download,
        copy_links: false,
        progress,
        stats_interval,
        combined: c.combined.clone(),
        missing_on_dst: c.missing_on_dst.clone(),
        missing_on_src: c.missing_on_src.clone(),
        differ: c.differ.clone(),
        matched: c.match_file.clone(),
        error_file: c.error.clone(),
    };
    let summary = check::run_buckets(src_store, dst_store, filter, limits, opts)
        .await
        .map_err(check_failed)?;
    write_report(g, &summary)?;
    Ok(if summary.not_ok() > 0 {
        Exit::Uncategorized
    } else {
        Exit::Success
    })
}

/// Parse rclone's level names (`--log-level`, `--stats-log-level`).
pub fn parse_level(flag: &str, text: &str) -> anyhow::Result<tracing::Level> {
    use tracing::Level;
    match text.to_ascii_uppercase().as_str() {
        "DEBUG" => Ok(Level::DEBUG),
        "INFO" => Ok(Level::INFO),
        "NOTICE" | "WARNING" | "WARN" => Ok(Level::WARN),
        "ERROR" => Ok(Level::ERROR),
        other => Err(anyhow!(UsageError(format!(
            "{flag} {other}: use DEBUG, INFO, NOTICE or ERROR"
        )))),
    }
}

/// The most verbose level shown, from `--log-level`, `-v` and `-q`.
pub fn log_level(g: &Global) -> anyhow::Result<tracing::Level> {
    use tracing::Level;
    if let Some(l) = &g.log.log_level {
        return parse_level("--log-level", l);
    }
    Ok(match (g.log.quiet, g.log.verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::WARN,
        (false, 1) => Level::INFO,
        _ => Level::DEBUG,
    })
}
