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

use crate::config::filter::Filter;
use crate::march::list::{self, Listing};
use crate::s3::{S3Error, Store};

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
