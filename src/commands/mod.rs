//! The commands: `sync` and `copy` in each direction, `check` and `cleanup`. A sync or copy
//! runs on the one driver ([`drive`]) over the [`crate::march`], whatever its direction; a
//! direction ([`sync`]: directory → bucket, [`restore`]: bucket → directory, [`mirror`]:
//! bucket → bucket) brings its decisions and the transfer of one item ([`crate::transfer`]),
//! and every run ends the same way ([`delete`], with the cutoffs of [`schedule`]).

pub mod check;
pub mod cleanup;
pub mod delete;
pub mod drive;
pub mod mirror;
pub mod restore;
pub mod schedule;
pub mod sync;

use std::sync::Arc;
use std::time::Duration;

use crate::commands::schedule::Cutoff;
use crate::config::filter::Filter;
use crate::config::registry::Layout;
use crate::march::list::{self, Listing};
use crate::report::{Progress, ProgressMode, Stats};
use crate::s3::{S3Error, Store};

/// `sync` deletes what only the destination holds; `copy` never deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sync,
    Copy,
}

/// What every `sync` and `copy` is told, whatever its direction: built once from the flags,
/// the config file and the environment (`crate::cli::app`); each direction's options add only
/// what is its own.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: Mode,
    pub dry_run: bool,
    /// `--delete-excluded`: the destination is read without the filters' rules, so what they
    /// leave out there is extra and deleted with the rest.
    pub delete_excluded: bool,
    pub max_delete: Option<u64>,
    /// `--max-transfer`, `--max-duration` and how they stop the run.
    pub cutoff: Cutoff,
    pub progress: ProgressMode,
    pub stats_interval: Duration,
    /// Registry mode (the source is a distribution storage tree), if on.
    pub registry: Option<Layout>,
    /// Registry mode: also move the driver's `_uploads` state.
    pub include_uploads: bool,
}

impl RunOptions {
    /// The filter the destination is read with: the run's, or with `--delete-excluded` only
    /// its shard, so that what the filters leave out there is extra and deleted.
    pub fn destination_filter(&self, filter: &Filter) -> Filter {
        if self.delete_excluded {
            filter.shard_only()
        } else {
            filter.clone()
        }
    }

    /// The progress line of a run that moves data (none in a dry run).
    pub fn progress(&self, stats: &Arc<Stats>) -> Option<Progress> {
        (!self.dry_run).then(|| Progress::start(stats.clone(), self.progress, self.stats_interval))
    }
}

/// Start listing a destination bucket; where it does not exist and `--create-bucket` asks
/// for it (and this is no dry run), create it, in `location` if given, and list it empty.
pub async fn list_destination(
    store: &Arc<Store>,
    filter: &Filter,
    checkers: usize,
    create: bool,
    dry_run: bool,
    location: Option<&str>,
) -> Result<Listing, S3Error> {
    match list::start(store, filter, checkers).await {
        Err(S3Error::NoSuchBucket { .. }) if create && !dry_run => {
            store.create_bucket(location).await?;
            tracing::warn!("created bucket {}", store.path.bucket);
            Ok(Listing::empty())
        }
        other => other,
    }
}
