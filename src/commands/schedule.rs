//! The transfers of a restore or a bucket copy, started one by one as the march hands over
//! keys: at most `--transfers` at once; none started once `--max-transfer` or
//! `--max-duration` is reached (and, with `--cutoff-mode hard`, those in flight stopped, left
//! for the rerun to resume); in registry mode, no link before every transfer started ahead of
//! it has ended. (`sync` interleaves its own queue and content comparisons with the march.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{JoinError, JoinSet};

use crate::report::Stats;

/// How `--max-transfer` and `--max-duration` stop a run (rclone's `--cutoff-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
#[value(rename_all = "UPPER")]
pub enum CutoffMode {
    /// Stop at once: transfers in flight fail.
    #[default]
    Hard,
    /// Start no new transfer; finish those in flight.
    Soft,
    /// Start no transfer that would go past the limit.
    Cautious,
}

/// When a run stops early: rclone's `--max-transfer`, `--max-duration` and `--cutoff-mode`.
#[derive(Debug, Clone, Default)]
pub struct Cutoff {
    pub max_transfer: Option<u64>,
    pub max_duration: Option<Duration>,
    pub mode: CutoffMode,
}

/// Why a run was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Transfer,
    Duration,
}

impl Cut {
    /// The flag that set the limit.
    pub fn flag(self) -> &'static str {
        match self {
            Cut::Transfer => "--max-transfer",
            Cut::Duration => "--max-duration",
        }
    }
}

impl Cutoff {
    /// Start watching the limits of a run whose bytes `stats` counts: the duration counts
    /// from now, and `--max-transfer` is set on `stats`.
    pub fn watch(&self, stats: Arc<Stats>) -> CutWatch {
        stats.set_cap(self.max_transfer);
        CutWatch {
            cutoff: self.clone(),
            deadline: self.max_duration.map(|d| tokio::time::Instant::now() + d),
            started: 0,
            stats,
        }
    }
}

/// The limits of one run: whether the next transfer may start, and when the run has reached
/// a limit. `--max-transfer` counts bytes as they move ([`Stats::moved`]), so a limit is seen
/// the moment it is reached, not when a transfer ends.
pub struct CutWatch {
    cutoff: Cutoff,
    deadline: Option<tokio::time::Instant>,
    started: u64,
    stats: Arc<Stats>,
}

impl CutWatch {
    /// Whether a transfer of `size` bytes may start: not once a limit is reached, nor
    /// (cautious mode) one that would go past `--max-transfer`. Counts it when it may.
    pub fn admit(&mut self, size: u64) -> Result<(), Cut> {
        if let Some(cut) = self.reached() {
            return Err(cut);
        }
        if let Some(max) = self.cutoff.max_transfer
            && self.cutoff.mode == CutoffMode::Cautious
            && self.started + size > max
        {
            return Err(Cut::Transfer);
        }
        self.started += size;
        Ok(())
    }

    /// The limit reached, if any: the deadline passed, or more bytes moved than
    /// `--max-transfer` allows.
    pub fn reached(&self) -> Option<Cut> {
        if self
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            return Some(Cut::Duration);
        }
        self.stats.over_cap().then_some(Cut::Transfer)
    }

    /// The limit a run that went to its end still reached: `--max-transfer` (a transfer
    /// that went past it, in soft mode). A deadline that passes as the last transfer ends
    /// stopped nothing.
    pub fn reached_at_end(&self) -> Option<Cut> {
        self.stats.over_cap().then_some(Cut::Transfer)
    }

    /// Wait until a limit is reached (for ever without one).
    pub async fn next(&self) -> Cut {
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => Cut::Duration,
            _ = self.stats.cap_reached() => Cut::Transfer,
        }
    }

    /// Whether transfers in flight stop at once when a limit is reached (`--cutoff-mode hard`).
    pub fn hard(&self) -> bool {
        self.cutoff.mode == CutoffMode::Hard
    }

    /// Whether there is a limit to watch.
    pub fn any(&self) -> bool {
        self.deadline.is_some() || self.cutoff.max_transfer.is_some()
    }
}

/// Say that a run stopped at a limit and deleted nothing.
pub fn stopped(cut: Cut, cutoff: &Cutoff) {
    tracing::warn!(
        "stopped at {} ({:?} cutoff); nothing deleted: run again to go on",
        cut.flag(),
        cutoff.mode
    );
}

/// What waiting for a transfer slot gave.
enum Waited<T> {
    /// A transfer ended.
    Done(Result<T, JoinError>),
    /// A limit was reached first.
    Cut(Cut),
}

/// Wait for the next transfer of `tasks` to end, or for the run to reach a limit, whichever
/// comes first; `tasks` must not be empty.
async fn wait_slot<T: 'static>(tasks: &mut JoinSet<T>, watch: &CutWatch) -> Waited<T> {
    tokio::select! {
        Some(j) = tasks.join_next() => Waited::Done(j),
        cut = watch.next() => Waited::Cut(cut),
    }
}

/// Let the transfers in flight end (or, after a hard cutoff, stop them: a rerun resumes them)
/// and hand each that ended to `record`.
async fn drain<T: 'static>(
    tasks: &mut JoinSet<T>,
    stop: bool,
    mut record: impl FnMut(Result<T, JoinError>),
) {
    if stop {
        tasks.abort_all();
    }
    while let Some(j) = tasks.join_next().await {
        match j {
            Err(e) if e.is_cancelled() => {}
            j => record(j),
        }
    }
}

/// The transfers of one run.
pub struct Transfers<T> {
    tasks: JoinSet<T>,
    slots: usize,
    watch: CutWatch,
    /// The limit that stopped the run, once one has: nothing more starts.
    cut: Option<Cut>,
    links_open: bool,
}

impl<T: Send + 'static> Transfers<T> {
    /// `stats` counts the run's bytes, for `--max-transfer`.
    pub fn new(slots: usize, cutoff: &Cutoff, stats: Arc<Stats>) -> Transfers<T> {
        Transfers {
            tasks: JoinSet::new(),
            slots: slots.max(1),
            watch: cutoff.watch(stats),
            cut: None,
            links_open: false,
        }
    }

    /// Wait for a free slot, handing each transfer that ends to `record`. False once a limit
    /// is reached: start nothing more.
    pub async fn room(&mut self, mut record: impl FnMut(Result<T, JoinError>)) -> bool {
        if self.cut.is_none() {
            self.cut = self.watch.reached();
        }
        while self.tasks.len() >= self.slots && self.cut.is_none() {
            match wait_slot(&mut self.tasks, &self.watch).await {
                Waited::Done(j) => record(j),
                Waited::Cut(c) => self.cut = Some(c),
            }
        }
        self.cut.is_none()
    }

    /// Registry mode, before the first link: wait for every transfer started before it
    /// (keys come in order, and `blobs/` sorts before `repositories/`), so that no link is
    /// written before a blob it may need.
    pub async fn before_link(&mut self, mut record: impl FnMut(Result<T, JoinError>)) {
        if self.links_open {
            return;
        }
        while let Some(j) = self.tasks.join_next().await {
            record(j);
        }
        self.links_open = true;
    }

    /// Start a transfer of `size` bytes, unless a limit forbids it. False then: start
    /// nothing more.
    pub fn start(&mut self, size: u64, transfer: impl Future<Output = T> + Send + 'static) -> bool {
        match self.watch.admit(size) {
            Ok(()) => {
                self.tasks.spawn(transfer);
                true
            }
            Err(c) => {
                self.cut = Some(c);
                false
            }
        }
    }

    /// Let the transfers in flight end (after a hard cutoff, stop them), handing each to
    /// `record`. Returns the limit that stopped the run, if any, having said so.
    pub async fn finish(mut self, mut record: impl FnMut(Result<T, JoinError>)) -> Option<Cut> {
        if self.cut.is_none() {
            // A hard cutoff stops what is in flight the moment the limit is reached.
            while !self.tasks.is_empty() && self.cut.is_none() {
                match wait_slot(&mut self.tasks, &self.watch).await {
                    Waited::Done(j) => record(j),
                    Waited::Cut(c) => self.cut = Some(c),
                }
            }
            self.cut = self.cut.or_else(|| self.watch.reached_at_end());
        }
        let stop = self.cut.is_some() && self.watch.hard();
        drain(&mut self.tasks, stop, record).await;
        if let Some(c) = self.cut {
            stopped(c, &self.watch.cutoff);
        }
        self.cut
    }
}
