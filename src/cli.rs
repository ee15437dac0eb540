//! Command-line definition. Flags keep rclone's names and meanings where they apply, so the
//! arguments of an existing rclone Job work unchanged; every flag is global, as in rclone, and
//! may appear before or after the command. Unknown flags are errors (exit 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "s3ferry",
    version,
    about = "Verified, idempotent, fast directory → S3 sync and check (rclone-compatible)",
    long_about = None,
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make DST identical to SRC: upload new and changed files, then delete extra objects
    /// (only if the run had no errors).
    Sync(TwoPaths),
    /// Upload new and changed files; never delete.
    Copy(TwoPaths),
    /// Verify DST holds every SRC file with the same size and content.
    Check(TwoPaths),
    /// Abort incomplete multipart uploads under DST.
    Cleanup(OnePath),
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub struct TwoPaths {
    /// Source directory.
    pub src: String,
    /// Destination: REMOTE:BUCKET[/PREFIX] or s3://BUCKET[/PREFIX].
    pub dst: String,
}

#[derive(Debug, Args)]
pub struct OnePath {
    /// REMOTE:BUCKET[/PREFIX] or s3://BUCKET[/PREFIX].
    pub dst: String,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Show progress: a live line on a terminal, otherwise a line every --stats interval.
    #[arg(short = 'P', long, global = true)]
    pub progress: bool,
    /// Show what would be done; change nothing.
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,
    /// Files transferred in parallel.
    #[arg(long, global = true, env = "RCLONE_TRANSFERS", value_name = "N")]
    pub transfers: Option<usize>,
    /// Files checked (hashed, compared) in parallel.
    #[arg(long, global = true, env = "RCLONE_CHECKERS", value_name = "N")]
    pub checkers: Option<usize>,
    /// Part size for multipart uploads (grown to fit the part limit), e.g. 16Mi.
    #[arg(long, global = true, value_name = "SIZE")]
    pub s3_chunk_size: Option<String>,
    /// Files this size or larger are uploaded in parts, e.g. 64Mi.
    #[arg(long, global = true, value_name = "SIZE")]
    pub s3_upload_cutoff: Option<String>,
    /// Parts of one file uploaded in parallel.
    #[arg(long, global = true, value_name = "N")]
    pub s3_upload_concurrency: Option<usize>,
    /// Most parts per multipart upload (S3: 10000; Swift's S3 API: 1000).
    #[arg(long, global = true, value_name = "N")]
    pub s3_max_upload_parts: Option<u64>,
    /// Accepted for rclone compatibility: s3ferry never checks or creates the bucket unless
    /// --create-bucket is given.
    #[arg(long, global = true, hide = true)]
    pub s3_no_check_bucket: bool,
    /// Sign every upload's payload with SHA-256 (SigV4). Off by default: Content-MD5 (signed)
    /// and the ETag checks already protect the body; turn on for servers that require it.
    #[arg(long, global = true)]
    pub s3_sign_payload: bool,
    /// check: only check that source files are in the destination (not the reverse).
    #[arg(long, global = true)]
    pub one_way: bool,
    /// Skip files whose size matches, whatever their time or content.
    #[arg(long, global = true, conflicts_with = "checksum")]
    pub size_only: bool,
    /// Skip files whose size and content hash match (hashes every same-size file).
    #[arg(short = 'c', long, global = true)]
    pub checksum: bool,
    /// sync: do not delete more than N objects (if more are needed, none are deleted).
    #[arg(long, global = true, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub max_delete: i64,
    /// Exclude files matching the glob (rclone syntax; repeatable).
    #[arg(long, global = true, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Include only files matching the glob (rclone syntax; repeatable).
    #[arg(long, global = true, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Interval between progress lines, e.g. 10s (default 10s with --progress, else 1m; 0 = off).
    #[arg(long, global = true, value_name = "DURATION")]
    pub stats: Option<String>,
    /// More logging: -v info, -vv debug.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Log level: DEBUG, INFO, NOTICE or ERROR.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log in JSON lines.
    #[arg(long, global = true)]
    pub use_json_log: bool,
    /// Connect timeout per TCP connection, e.g. 30s (rclone's default 1m; 0 = none).
    #[arg(long, global = true, value_name = "DURATION", default_value = "1m")]
    pub contimeout: String,
    /// Idle timeout: a request fails (and is retried) when no byte has moved in either
    /// direction for this long, e.g. 2m (rclone's default 5m; 0 = none).
    #[arg(long, global = true, value_name = "DURATION", default_value = "5m")]
    pub timeout: String,
    /// Attempts per file (or part) after an integrity failure: bad digest or ETag mismatch.
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Attempts per request for transport errors, throttling and 5xx (jittered backoff).
    #[arg(long, global = true, value_name = "N", default_value_t = 10)]
    pub low_level_retries: u32,
    /// Also trust the CA certificates in this PEM file (AWS_CA_BUNDLE is honoured too).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Do not verify the server certificate (insecure: for testing only).
    #[arg(long, global = true)]
    pub no_check_certificate: bool,
    /// rclone config file (default: $RCLONE_CONFIG, $XDG_CONFIG_HOME/rclone/rclone.conf,
    /// ~/.config/rclone/rclone.conf, /root/.config/rclone/rclone.conf).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Follow symlinks and upload what they point to.
    #[arg(short = 'L', long, global = true)]
    pub copy_links: bool,
    /// Create the bucket if it does not exist.
    #[arg(long, global = true)]
    pub create_bucket: bool,
    /// Exit 9 if nothing was transferred.
    #[arg(long, global = true)]
    pub error_on_no_transfer: bool,
    /// S3 endpoint URL (overrides the remote and AWS_ENDPOINT_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Region to sign with (empty → us-east-1).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Path-style bucket addressing (true/false; default by provider).
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub path_style: Option<bool>,
    /// Most file data held in memory at once, e.g. 1Gi.
    #[arg(long, global = true, value_name = "SIZE")]
    pub max_buffer_memory: Option<String>,
    /// check: download every object and compare its MD5 with the file's, ETag or not.
    #[arg(long, global = true)]
    pub download: bool,
    /// check: never download; objects whose ETag cannot prove content count as unverified.
    #[arg(long, global = true, conflicts_with = "download")]
    pub no_download: bool,
    /// check: write every path with a marker (= match, - missing on dst, + missing on src,
    /// * differ, ! error).
    #[arg(long, global = true, value_name = "FILE")]
    pub combined: Option<PathBuf>,
    /// check: write paths missing from the destination.
    #[arg(long, global = true, value_name = "FILE")]
    pub missing_on_dst: Option<PathBuf>,
    /// check: write paths missing from the source.
    #[arg(long, global = true, value_name = "FILE")]
    pub missing_on_src: Option<PathBuf>,
    /// check: write paths that differ.
    #[arg(long, global = true, value_name = "FILE")]
    pub differ: Option<PathBuf>,
    /// check: write paths that match.
    #[arg(long = "match", global = true, value_name = "FILE")]
    pub match_file: Option<PathBuf>,
    /// check: write paths that could not be checked.
    #[arg(long, global = true, value_name = "FILE")]
    pub error: Option<PathBuf>,
    /// Write a JSON report (counts, bytes, durations, requests, every difference).
    #[arg(long, global = true, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Work on one shard of the key space: I/N, or auto/N to take I from JOB_COMPLETION_INDEX
    /// (Kubernetes Indexed Jobs). N runs with I = 0..N-1 cover every file exactly once.
    #[arg(long, global = true, value_name = "I/N")]
    pub shard: Option<String>,
    /// Registry mode (source is a distribution/Harbor storage tree): verify blob digests while
    /// reading, validate links, upload blobs before links, leave `_uploads` out.
    #[arg(long, global = true, value_enum, default_value_t = crate::registry::RegistryMode::Auto)]
    pub registry: crate::registry::RegistryMode,
    /// Registry mode: also sync (and delete) the driver's in-progress `_uploads` state.
    #[arg(long, global = true)]
    pub registry_uploads: bool,
    /// check, registry mode: hash every source blob and compare with the digest its path names
    /// (on by default in registry mode; a mismatch is a corrupt source blob).
    #[arg(long, global = true, overrides_with = "no_verify_digests")]
    pub verify_digests: bool,
    /// check, registry mode: do not hash source blobs against their digests.
    #[arg(long, global = true, overrides_with = "verify_digests")]
    pub no_verify_digests: bool,
    /// How source files are read: io_uring reader threads, pread on blocking threads, or auto
    /// (io_uring where the kernel and the seccomp profile allow it, else pread).
    #[arg(long, global = true, value_enum, default_value_t = crate::read::IoEngineMode::Auto)]
    pub io_engine: crate::read::IoEngineMode,
    /// cleanup: only abort uploads started at least this long ago.
    #[arg(long, global = true, value_name = "DURATION", default_value = "24h")]
    pub max_age: String,
}
