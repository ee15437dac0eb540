//! Configuration: everything a run is told before it starts, parsed and checked at the edge
//! into typed values: remotes (flags, environment, `rclone.conf`), filters and shards, sizes
//! and durations, the concurrency and memory limits, and the registry layout.

pub mod filter;
pub mod limits;
pub mod rclone_conf;
pub mod registry;
pub mod remote;
pub mod shard;
pub mod units;
