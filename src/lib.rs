//! s3ferry as a library: the stages and commands behind the `s3ferry` binary. The library
//! exists so the integration tests and benchmarks use the same plumbing the binary uses; it
//! makes no stability promise.
//!
//! The folders are the architecture, each layer using only those below it:
//!
//! - [`cli`]: the flags (clap), rclone and AWS CLI compatibility, and [`cli::app`], the one
//!   place that turns flags, the config file and the environment into each command's options.
//! - [`commands`]: `sync`/`copy` in its three directions (directory → bucket, bucket →
//!   directory, bucket → bucket) on one driver, `check`, `cleanup`, and what they share: the
//!   cutoffs and the deletion tail.
//! - [`transfer`]: moving and proving one item: upload, download, bucket-to-bucket relay, the
//!   multipart session, verification, and the confined writes of a restore.
//! - [`march`]: setting a source beside a destination: the local walk, the bucket listing, the
//!   merge in key order, and the pure decisions (skip, transfer, delete).
//! - [`s3`]: the client: credentials, one method per S3 call, errors and their classes, request
//!   counters, HTTP with its timeouts and DNS, bandwidth limits.
//! - [`read`]: reading source files (io_uring or `pread`), the memory budget, hashers and ETags.
//! - [`config`]: remotes and `rclone.conf`, filters, shards, sizes and durations, limits,
//!   registry layouts.
//! - [`report`]: what a run says and how it ends: counters, progress and log lines, error
//!   classes, exit codes, redaction of secrets.

pub mod cli;
pub mod commands;
pub mod config;
pub mod march;
pub mod read;
pub mod report;
pub mod s3;
pub mod transfer;
