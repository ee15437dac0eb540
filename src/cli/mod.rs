//! Command-line definition. Flags keep rclone's names and meanings where they apply, so the
//! arguments of an existing rclone Job work unchanged, plus the AWS CLI's for `s3://` runs;
//! every flag is global, as in rclone, and may appear before or after the command.
//!
//! The flags are grouped by what they touch (transfer, S3, filters, check outputs, logging,
//! registry), each group a struct with its help heading; sizes and durations are parsed here,
//! at the edge, into typed values. [`crate::cli::app`] is the one place that turns them into each
//! command's options. Flags of rclone that change nothing in s3ferry are accepted and said
//! so; flags that would weaken what s3ferry promises are refused with the reason
//! ([`compat`]); an unknown flag gets one line naming the nearest one ([`unknown_flag`]).

pub mod app;
mod compat;

pub use compat::{CompatFlags, FlagNote, compat, unknown_flag};

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::schedule::CutoffMode;
use crate::config::units::{parse_duration, parse_size};

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

impl Cli {
    /// The command line as rclone reads its own: a flag that takes a value takes the next
    /// argument whatever it starts with, so `--filter '- *.log'` (two items of a Job's
    /// `args:`), `--exclude '-x*'` and negative numbers work.
    pub fn command_line() -> clap::Command {
        fn hyphens(c: clap::Command) -> clap::Command {
            c.mut_args(|a| {
                if !a.is_positional() && a.get_action().takes_values() {
                    a.allow_hyphen_values(true)
                } else {
                    a
                }
            })
            .mut_subcommands(hyphens)
        }
        hyphens(<Cli as CommandFactory>::command())
    }

    /// Parse `args` (the program's name first) with [`Cli::command_line`].
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut matches = Self::command_line().try_get_matches_from(args)?;
        Cli::from_arg_matches_mut(&mut matches)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make DST identical to SRC: transfer new and changed files, then delete extra ones
    /// (only if the run had no errors). Directory to bucket, bucket to directory, bucket to
    /// bucket.
    Sync(TwoPaths),
    /// Transfer new and changed files; never delete.
    Copy(TwoPaths),
    /// Verify DST holds every SRC entry with the same size and content.
    Check(TwoPaths),
    /// Abort incomplete multipart uploads under DST.
    Cleanup(OnePath),
    /// Print the version.
    Version,
}

#[derive(Debug, Args)]
pub struct TwoPaths {
    /// Source: a directory, REMOTE:BUCKET[/PREFIX], :s3,KEY=VALUE,…:BUCKET[/PREFIX] or
    /// s3://BUCKET[/PREFIX].
    pub src: String,
    /// Destination: a directory or an S3 location, as SRC.
    pub dst: String,
}

#[derive(Debug, Args)]
pub struct OnePath {
    /// REMOTE:BUCKET[/PREFIX], :s3,KEY=VALUE,…:BUCKET[/PREFIX] or s3://BUCKET[/PREFIX].
    pub dst: String,
}

/// A size such as `16Mi`, `512k` or `1G` (rclone's syntax: binary, KiB when bare).
pub fn size_arg(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

/// A duration such as `30s`, `10m` or `1h30m` (a bare number is seconds).
pub fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// Every flag, by group.
#[derive(Debug, Args, Clone)]
pub struct Global {
    #[command(flatten)]
    pub transfer: TransferFlags,
    #[command(flatten)]
    pub s3: S3Flags,
    #[command(flatten)]
    pub filter: FilterFlags,
    #[command(flatten)]
    pub check: CheckFlags,
    #[command(flatten)]
    pub log: LogFlags,
    #[command(flatten)]
    pub registry: RegistryFlags,
    #[command(flatten)]
    pub compat: CompatFlags,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Transfer")]
pub struct TransferFlags {
    /// Show progress: a live line on a terminal, otherwise a line every --stats interval.
    #[arg(short = 'P', long, global = true)]
    pub progress: bool,
    /// Show what would be done; change nothing.
    #[arg(short = 'n', long, global = true, visible_alias = "dryrun")]
    pub dry_run: bool,
    /// Files transferred in parallel.
    #[arg(long, global = true, env = "RCLONE_TRANSFERS", value_name = "N")]
    pub transfers: Option<usize>,
    /// Files checked (hashed, compared) in parallel, and the most LIST requests in flight.
    #[arg(long, global = true, env = "RCLONE_CHECKERS", value_name = "N")]
    pub checkers: Option<usize>,
    /// Skip files whose size matches, whatever their time or content.
    #[arg(long, global = true, conflicts_with = "checksum")]
    pub size_only: bool,
    /// Skip files whose size and content hash match (hashes every same-size file).
    #[arg(short = 'c', long, global = true)]
    pub checksum: bool,
    /// Features to turn off, comma-separated: `copy` makes bucket-to-bucket copies on one
    /// endpoint stream through s3ferry (hashed) instead of being copied by the server.
    #[arg(long, global = true, env = "RCLONE_DISABLE", value_name = "FEATURES")]
    pub disable: Option<String>,
    /// Skip every file that already exists in the destination, whatever it holds.
    #[arg(long, global = true)]
    pub ignore_existing: bool,
    /// Skip files whose object is newer than the file (by the mtime it records, else its
    /// LastModified).
    #[arg(short = 'u', long, global = true)]
    pub update: bool,
    /// Compare the file's mtime with the object's LastModified, not the mtime it records:
    /// no request per object, but a file set back in time (cp -p, rsync -a, tar) of the same
    /// size is not seen.
    #[arg(long, global = true)]
    pub use_server_modtime: bool,
    /// Leave the object as it is when a file's mtime changed but not its content (by default
    /// the object gets the file's mtime, a server-side copy onto itself, so the next run needs
    /// no request for it).
    #[arg(long, global = true)]
    pub no_update_modtime: bool,
    /// sync: do not delete more than N objects (if more are needed, none are deleted).
    #[arg(long, global = true, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub max_delete: i64,
    /// sync to an s3:// URL: delete objects that have no source file (the AWS CLI's flag;
    /// REMOTE:BUCKET destinations always do, as rclone's sync does).
    #[arg(long, global = true)]
    pub delete: bool,
    /// sync: delete extra objects after all transfers succeeded (the default, and the only
    /// order s3ferry deletes in).
    #[arg(long, global = true)]
    pub delete_after: bool,
    /// Follow symlinks and upload what they point to.
    #[arg(short = 'L', long, global = true)]
    pub copy_links: bool,
    /// Create the bucket if it does not exist.
    #[arg(long, global = true)]
    pub create_bucket: bool,
    /// Exit 9 if nothing was transferred.
    #[arg(long, global = true)]
    pub error_on_no_transfer: bool,
    /// Attempts per file (or part) after an integrity failure: bad digest or ETag mismatch.
    #[arg(long, global = true, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Pause before each of those attempts, e.g. 10s.
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg, default_value = "0")]
    pub retries_sleep: Duration,
    /// Attempts per request for transport errors, timeouts, throttling and 5xx (jittered
    /// backoff).
    #[arg(long, global = true, value_name = "N", default_value_t = 10)]
    pub low_level_retries: u32,
    /// Connect timeout per TCP connection, e.g. 30s (rclone's default 1m; 0 = none).
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg, default_value = "1m")]
    pub contimeout: Duration,
    /// Idle timeout: a request fails (and is retried) when no byte has moved in either
    /// direction for this long, e.g. 2m (rclone's default 5m; 0 = none).
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg, default_value = "5m")]
    pub timeout: Duration,
    /// Bandwidth limit over all transfers: 10M, UP:DOWN (10M:off), or a timetable
    /// ("08:00,512k 19:00,off", days as "Mon-08:00,512k"); a bare number is KiB/s.
    #[arg(long, global = true, value_name = "LIMIT")]
    pub bwlimit: Option<String>,
    /// Stop after this many bytes have been sent (exit 8), e.g. 500G.
    #[arg(long, global = true, value_name = "SIZE", value_parser = size_arg)]
    pub max_transfer: Option<u64>,
    /// Stop starting transfers after this long (exit 10), e.g. 2h.
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg)]
    pub max_duration: Option<Duration>,
    /// How --max-transfer and --max-duration stop: HARD, SOFT or CAUTIOUS.
    #[arg(long, global = true, value_enum, ignore_case = true, default_value_t = CutoffMode::Hard)]
    pub cutoff_mode: CutoffMode,
    /// Most file data held in memory at once, e.g. 1Gi (default: from the container's limit).
    #[arg(long, global = true, value_name = "SIZE", value_parser = size_arg)]
    pub max_buffer_memory: Option<u64>,
    /// How source files are read: io_uring reader threads, pread on blocking threads, or auto
    /// (io_uring where the kernel and the seccomp profile allow it, else pread).
    #[arg(long, global = true, value_enum, default_value_t = crate::read::IoEngineMode::Auto)]
    pub io_engine: crate::read::IoEngineMode,
    /// Parts of large files (8 MiB and up) are read past the page cache with O_DIRECT where
    /// the filesystem allows it (auto), or through it (off): each byte is read once, so caching
    /// costs a copy per byte and evicts what the node had cached.
    #[arg(long, global = true, value_enum, default_value_t = crate::read::DirectIo::Auto)]
    pub direct_io: crate::read::DirectIo,
    /// Work on one shard of the key space: I/N, or auto/N to take I from JOB_COMPLETION_INDEX
    /// (Kubernetes Indexed Jobs). N runs with I = 0..N-1 cover every file exactly once.
    #[arg(long, global = true, value_name = "I/N")]
    pub shard: Option<String>,
    /// cleanup: only abort uploads started at least this long ago.
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg, default_value = "24h")]
    pub older_than: Duration,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "S3")]
pub struct S3Flags {
    /// rclone config file (default: $RCLONE_CONFIG, $XDG_CONFIG_HOME/rclone/rclone.conf,
    /// ~/.config/rclone/rclone.conf, /root/.config/rclone/rclone.conf).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// S3 endpoint URL (overrides the remote and AWS_ENDPOINT_URL).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        visible_alias = "endpoint-url"
    )]
    pub endpoint: Option<String>,
    /// Region to sign with (empty → us-east-1).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Path-style bucket addressing (true/false; default by provider).
    #[arg(long, global = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub path_style: Option<bool>,
    /// s3:// URLs: the profile of ~/.aws/credentials and ~/.aws/config to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Also trust the CA certificates in this PEM file (AWS_CA_BUNDLE is honoured too).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Do not verify the server certificate (insecure: for testing only).
    #[arg(long, global = true)]
    pub no_check_certificate: bool,
    /// Sign every upload's payload with SHA-256 (SigV4). Off by default: Content-MD5 (signed)
    /// and the ETag checks already protect the body; turn on for servers that require it.
    #[arg(long, global = true)]
    pub s3_sign_payload: bool,
    /// Settings of every S3 location, as rclone's `--s3-*` flags: they override the config
    /// file, and RCLONE_S3_* variables stand in for them.
    #[command(flatten)]
    pub keys: S3Keys,
}

/// rclone's `--s3-KEY` flags, one per config key s3ferry accepts (`RCLONE_S3_KEY` in the
/// environment). Precedence: on-the-fly remote parameters > these > the config file.
#[derive(Debug, Args, Clone, Default)]
pub struct S3Keys {
    /// Provider: AWS, Minio, Ceph, Other, … (decides path style).
    #[arg(long, global = true, env = "RCLONE_S3_PROVIDER", value_name = "NAME")]
    pub s3_provider: Option<String>,
    /// Take credentials from the AWS chain (env, profile, web identity, metadata).
    #[arg(long, global = true, env = "RCLONE_S3_ENV_AUTH", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub s3_env_auth: Option<String>,
    /// Access key id.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_ACCESS_KEY_ID",
        hide_env_values = true,
        value_name = "ID"
    )]
    pub s3_access_key_id: Option<String>,
    /// Secret access key (prefer RCLONE_S3_SECRET_ACCESS_KEY: arguments are visible in ps).
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SECRET_ACCESS_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub s3_secret_access_key: Option<String>,
    /// Session token.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SESSION_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub s3_session_token: Option<String>,
    /// Endpoint URL.
    #[arg(long, global = true, env = "RCLONE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Signing region.
    #[arg(long, global = true, env = "RCLONE_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Location constraint for --create-bucket.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_LOCATION_CONSTRAINT",
        value_name = "LC"
    )]
    pub s3_location_constraint: Option<String>,
    /// Canned ACL for every object.
    #[arg(long, global = true, env = "RCLONE_S3_ACL", value_name = "ACL")]
    pub s3_acl: Option<String>,
    /// Path-style addressing (true/false).
    #[arg(long, global = true, env = "RCLONE_S3_FORCE_PATH_STYLE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub s3_force_path_style: Option<String>,
    /// Accepted: s3ferry never checks or creates buckets unless --create-bucket.
    #[arg(long, global = true, env = "RCLONE_S3_NO_CHECK_BUCKET", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub s3_no_check_bucket: Option<String>,
    /// Files this size or larger are uploaded in parts, e.g. 64Mi.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_UPLOAD_CUTOFF",
        value_name = "SIZE"
    )]
    pub s3_upload_cutoff: Option<String>,
    /// Part size for multipart uploads (grown to fit the part limit), e.g. 16Mi.
    #[arg(long, global = true, env = "RCLONE_S3_CHUNK_SIZE", value_name = "SIZE")]
    pub s3_chunk_size: Option<String>,
    /// Parts of one file uploaded in parallel.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_UPLOAD_CONCURRENCY",
        value_name = "N"
    )]
    pub s3_upload_concurrency: Option<String>,
    /// Most parts per multipart upload (S3: 10000; Swift's S3 API: 1000).
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_MAX_UPLOAD_PARTS",
        value_name = "N"
    )]
    pub s3_max_upload_parts: Option<String>,
    /// Server-side encryption: AES256 or aws:kms.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SERVER_SIDE_ENCRYPTION",
        value_name = "ALG"
    )]
    pub s3_server_side_encryption: Option<String>,
    /// KMS key id for aws:kms.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SSE_KMS_KEY_ID",
        value_name = "ID"
    )]
    pub s3_sse_kms_key_id: Option<String>,
    /// Storage class of every object.
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_STORAGE_CLASS",
        value_name = "CLASS"
    )]
    pub s3_storage_class: Option<String>,
    /// S3 checksum beside Content-MD5 on uploads: auto (only where ETags cannot prove an
    /// object; registry blobs carry their SHA-256), off, crc32c, crc64nvme or sha256.
    #[arg(long, global = true, env = "RCLONE_S3_CHECKSUM", value_name = "MODE")]
    pub s3_checksum: Option<String>,
    /// SSE-C algorithm (AES256, the default when a key is given).
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SSE_CUSTOMER_ALGORITHM",
        value_name = "ALG"
    )]
    pub s3_sse_customer_algorithm: Option<String>,
    /// SSE-C key, 32 bytes as given (never printed).
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SSE_CUSTOMER_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub s3_sse_customer_key: Option<String>,
    /// SSE-C key in base64 (never printed).
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SSE_CUSTOMER_KEY_BASE64",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub s3_sse_customer_key_base64: Option<String>,
    /// MD5 of the SSE-C key, base64 (computed when left out).
    #[arg(
        long,
        global = true,
        env = "RCLONE_S3_SSE_CUSTOMER_KEY_MD5",
        value_name = "MD5"
    )]
    pub s3_sse_customer_key_md5: Option<String>,
}

impl S3Keys {
    /// The keys set, as config-file keys and values.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let all = [
            ("provider", &self.s3_provider),
            ("env_auth", &self.s3_env_auth),
            ("access_key_id", &self.s3_access_key_id),
            ("secret_access_key", &self.s3_secret_access_key),
            ("session_token", &self.s3_session_token),
            ("endpoint", &self.s3_endpoint),
            ("region", &self.s3_region),
            ("location_constraint", &self.s3_location_constraint),
            ("acl", &self.s3_acl),
            ("force_path_style", &self.s3_force_path_style),
            ("no_check_bucket", &self.s3_no_check_bucket),
            ("upload_cutoff", &self.s3_upload_cutoff),
            ("chunk_size", &self.s3_chunk_size),
            ("upload_concurrency", &self.s3_upload_concurrency),
            ("max_upload_parts", &self.s3_max_upload_parts),
            ("server_side_encryption", &self.s3_server_side_encryption),
            ("sse_kms_key_id", &self.s3_sse_kms_key_id),
            ("storage_class", &self.s3_storage_class),
            ("checksum", &self.s3_checksum),
            ("sse_customer_algorithm", &self.s3_sse_customer_algorithm),
            ("sse_customer_key", &self.s3_sse_customer_key),
            ("sse_customer_key_base64", &self.s3_sse_customer_key_base64),
            ("sse_customer_key_md5", &self.s3_sse_customer_key_md5),
        ];
        all.into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v)))
            .collect()
    }
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Filters")]
pub struct FilterFlags {
    /// Exclude files matching the glob (repeatable; rclone's syntax, or the AWS CLI's for
    /// s3:// destinations).
    #[arg(long, global = true, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Include only files matching the glob (repeatable).
    #[arg(long, global = true, value_name = "GLOB")]
    pub include: Vec<String>,
    /// A filter rule: `+ GLOB` includes, `- GLOB` excludes, `!` clears (repeatable).
    #[arg(short = 'f', long, global = true, value_name = "RULE")]
    pub filter: Vec<String>,
    /// Read exclude globs from a file, one per line (`#`, `;` comments).
    #[arg(long, global = true, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
    /// Read include globs from a file, one per line.
    #[arg(long, global = true, value_name = "FILE")]
    pub include_from: Vec<PathBuf>,
    /// Read filter rules from a file, one per line.
    #[arg(long, global = true, value_name = "FILE")]
    pub filter_from: Vec<PathBuf>,
    /// Leave out every directory that holds a file of this name, and all under it
    /// (repeatable). As with rclone, what the destination holds there is then extra to a
    /// sync.
    #[arg(long, global = true, value_name = "FILE")]
    pub exclude_if_present: Vec<String>,
    /// sync: also delete what the filters leave out in the destination (after a run without
    /// errors, within --max-delete), as rclone's does.
    #[arg(long, global = true)]
    pub delete_excluded: bool,
    /// Only files at least this large, e.g. 1M (a bare number is KiB).
    #[arg(long, global = true, value_name = "SIZE", value_parser = size_arg)]
    pub min_size: Option<u64>,
    /// Only files at most this large.
    #[arg(long, global = true, value_name = "SIZE", value_parser = size_arg)]
    pub max_size: Option<u64>,
    /// Only files modified at least this long ago, e.g. 1h.
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg)]
    pub min_age: Option<Duration>,
    /// Only files modified at most this long ago, e.g. 7d.
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg)]
    pub max_age: Option<Duration>,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Check")]
pub struct CheckFlags {
    /// check: only check that source files are in the destination (not the reverse).
    #[arg(long, global = true)]
    pub one_way: bool,
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
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Logging")]
pub struct LogFlags {
    /// More logging: -v info, -vv debug, -vvv also the S3 library's debug logs.
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
    /// Append the log to this file instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Interval between progress lines, e.g. 10s (default 10s with --progress, else 1m; 0 = off).
    #[arg(long, global = true, value_name = "DURATION", value_parser = duration_arg)]
    pub stats: Option<Duration>,
    /// Progress as one short line (s3ferry's progress is always one line; this drops the
    /// in-flight, error and retry counts).
    #[arg(long, global = true)]
    pub stats_one_line: bool,
    /// Level of the progress lines: DEBUG, INFO, NOTICE or ERROR (default NOTICE).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub stats_log_level: Option<String>,
    /// Write how the run ended (its summary line and exit code) to this file where it exists:
    /// the container's termination message in Kubernetes. An empty value turns it off.
    #[arg(long, global = true, env = "S3FERRY_TERMINATION_LOG", value_name = "FILE", default_value = crate::report::termination::DEFAULT_PATH)]
    pub termination_log: PathBuf,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while the run goes (rclone's
    /// flag), e.g. 0.0.0.0:9090 in a pod; port 0 picks a free one (logged).
    #[arg(
        long,
        global = true,
        env = "S3FERRY_METRICS_ADDR",
        value_name = "HOST:PORT"
    )]
    pub metrics_addr: Option<String>,
}

#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Registry")]
pub struct RegistryFlags {
    /// Registry mode (source is a distribution/Harbor storage tree): verify blob digests while
    /// reading, validate links, upload blobs before links, leave `_uploads` out.
    #[arg(long, global = true, value_enum, default_value_t = crate::config::registry::RegistryMode::Auto)]
    pub registry: crate::config::registry::RegistryMode,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(std::iter::once("s3ferry").chain(args.iter().copied()))
    }

    /// A value that starts with `-` is the flag's value, as with rclone: a filter rule given
    /// as its own argument (a Job's YAML `args:` list), an exclude glob, a negative number.
    #[test]
    fn values_may_start_with_a_hyphen() {
        let c = parse(&[
            "sync",
            "--filter",
            "- *.log",
            "/d",
            "r:b",
            "--exclude",
            "-x*",
            "-f",
            "+ keep",
        ])
        .unwrap();
        assert_eq!(c.global.filter.filter, ["- *.log", "+ keep"]);
        assert_eq!(c.global.filter.exclude, ["-x*"]);
        assert!(matches!(c.command, Command::Sync(ref t) if t.src == "/d" && t.dst == "r:b"));
        // Flags without values, and unknown flags, are still flags.
        let c = parse(&["sync", "/d", "r:b", "--dry-run", "-v"]).unwrap();
        assert!(c.global.transfer.dry_run);
        let e = parse(&["sync", "/d", "r:b", "--no-such-flag"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn typed_values_are_parsed_at_the_edge() {
        let c = parse(&[
            "sync",
            "a",
            "r:bkt",
            "--timeout",
            "90s",
            "--max-size",
            "10M",
            "--stats",
            "0",
        ])
        .unwrap();
        assert_eq!(c.global.transfer.timeout, Duration::from_secs(90));
        assert_eq!(c.global.filter.max_size, Some(10 << 20));
        assert_eq!(c.global.log.stats, Some(Duration::ZERO));
        let e = parse(&["sync", "a", "r:bkt", "--max-size", "lots"]).unwrap_err();
        assert!(e.to_string().contains("invalid size"), "{e}");
        let c = parse(&[
            "sync",
            "a",
            "r:bkt",
            "--cutoff-mode",
            "soft",
            "--dryrun",
            "--endpoint-url",
            "http://h:1",
        ])
        .unwrap();
        assert_eq!(c.global.transfer.cutoff_mode, CutoffMode::Soft);
        assert!(c.global.transfer.dry_run);
        assert_eq!(c.global.s3.endpoint.as_deref(), Some("http://h:1"));
    }

    #[test]
    fn compat_flags_are_sorted_into_no_ops_and_refusals() {
        let c = parse(&[
            "sync",
            "a",
            "r:bkt",
            "--fast-list",
            "--buffer-size",
            "16M",
            "--ignore-errors",
        ])
        .unwrap();
        let (noop, refused) = compat(&c.global.compat);
        assert_eq!(
            noop.iter().map(|x| x.0).collect::<Vec<_>>(),
            ["--fast-list", "--buffer-size"]
        );
        assert_eq!(refused[0].0, "--ignore-errors");
    }

    #[test]
    fn unknown_flags_get_one_line() {
        let m = unknown_flag("--backup-dir=x", None);
        assert!(m.starts_with("rclone's --backup-dir does not apply"), "{m}");
        let m = unknown_flag("--transfer", Some("--transfers"));
        assert!(m.contains("did you mean --transfers"), "{m}");
        assert!(!m.contains('\n'));
    }

    #[test]
    fn s3_key_flags_map_to_config_keys() {
        let c = parse(&[
            "sync",
            "a",
            "r:bkt",
            "--s3-provider",
            "Ceph",
            "--s3-chunk-size",
            "8M",
        ])
        .unwrap();
        let pairs = c.global.s3.keys.pairs();
        assert!(pairs.contains(&("provider".to_string(), "Ceph".to_string())));
        assert!(pairs.contains(&("chunk_size".to_string(), "8M".to_string())));
    }
}
