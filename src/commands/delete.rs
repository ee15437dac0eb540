//! The end of a run, the same in every direction: whether it stopped at a cutoff, and the
//! deletion tail of `sync`, which removes what only the destination holds only after every
//! transfer succeeded, never because the source looked empty, never past `--max-delete`
//! ([`crate::march::plan::may_delete`]). A direction brings only how one entry is deleted.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::commands::schedule::Cut;
use crate::march::plan::{DeleteRefusal, may_delete};
use crate::report::Stats;
use crate::s3::{S3Error, Store};

/// How a run's deletions and limits ended: part of every direction's summary (and so of
/// `--report`), and what its exit code is chosen from.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Ending {
    pub deleted: u64,
    pub deletes_planned: u64,
    /// Deletes were needed but not done (errors, an empty source, over `--max-delete`, a
    /// cutoff).
    pub deletes_refused: bool,
    pub max_delete_exceeded: bool,
    /// The run stopped at `--max-transfer` (exit 8) or `--max-duration` (exit 10).
    pub transfer_exceeded: bool,
    pub duration_exceeded: bool,
}

impl Ending {
    /// The run stopped at `cut` with `planned` deletions it will not make.
    pub fn cut(&mut self, cut: Cut, planned: usize) {
        self.transfer_exceeded = cut == Cut::Transfer;
        self.duration_exceeded = cut == Cut::Duration;
        self.deletes_refused = planned > 0;
    }

    /// Whether `planned` deletions may go ahead after a run with `errors` over
    /// `source_entries` entries of the source (`src` names it, `what` the entries: "files",
    /// "objects"). When they may not, they are refused here; the message to count as an
    /// error of the run is returned when the refusal is one (an empty source, `--max-delete`),
    /// and logged here when earlier errors already explain it.
    pub fn allow(
        &mut self,
        errors: u64,
        source_entries: u64,
        planned: usize,
        max_delete: Option<u64>,
        src: &str,
        what: &str,
    ) -> Result<(), Option<String>> {
        let Err(refusal) = may_delete(errors, source_entries, planned as u64, max_delete) else {
            return Ok(());
        };
        self.deletes_refused = true;
        let message = refusal.message(src, what);
        if refusal == DeleteRefusal::Errors {
            tracing::error!("{message}");
            return Err(None);
        }
        self.max_delete_exceeded = true;
        Err(Some(message))
    }
}

/// Delete objects (relative keys), `concurrency` at once; each deletion is logged and
/// counted in `stats` as it succeeds. Returns every outcome.
pub async fn delete_objects(
    store: &Arc<Store>,
    concurrency: usize,
    rels: Vec<String>,
    stats: &Stats,
) -> Vec<(String, Result<(), S3Error>)> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for rel in rels {
        let (store, sem) = (store.clone(), sem.clone());
        set.spawn(async move {
            let _p = sem.acquire_owned().await;
            let r = store.delete(&rel).await;
            (rel, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        let (rel, r) = r.expect("delete task");
        if r.is_ok() {
            Stats::add(&stats.deletes, 1);
            tracing::info!("{rel}: Deleted");
        }
        out.push((rel, r));
    }
    out
}
