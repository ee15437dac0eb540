//! s3ferry as a library: the pipeline stages and commands behind the `s3ferry` binary.
//!
//! The stages live in their own modules, in order: [`walk`] → [`list`] → [`plan`] → [`read`] →
//! [`upload`] → [`verify`], with [`march`] merging the walk and the listing for every command
//! and [`download`] as the mirror of [`upload`] for restores;
//! [`sync`], [`check`], [`restore`] and [`cleanup`] are the commands built from them,
//! and [`app`] wires flags and configuration to them. The library exists so the integration
//! tests can use the same S3 plumbing the binary uses; it makes no stability promise.

pub mod app;
pub mod bwlimit;
pub mod check;
pub mod class;
pub mod cleanup;
pub mod cli;
pub mod confine;
pub mod download;
pub mod etag;
pub mod exit;
pub mod filter;
pub mod limits;
pub mod list;
pub mod march;
pub mod mirror;
pub mod multipart;
pub mod plan;
pub mod rclone_conf;
pub mod read;
pub mod redact;
pub mod registry;
pub mod relay;
pub mod remote;
pub mod report;
pub mod restore;
pub mod s3;
pub mod shard;
pub mod sync;
pub mod transfers;
pub mod units;
pub mod upload;
pub mod verify;
pub mod walk;
