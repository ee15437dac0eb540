//! The transfers of a restore or a bucket copy, started one by one as the march hands over
//! keys: at most `--transfers` at once; none started once `--max-transfer` or
//! `--max-duration` is reached (and, with `--cutoff-mode hard`, those in flight stopped, left
//! for the rerun to resume); in registry mode, no link before every transfer started ahead of
//! it has ended. (`sync` interleaves its own queue and content comparisons with the march.)

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::{JoinError, JoinSet};

use crate::sync::{Cut, Cutoff, CutoffMode};

impl Cutoff {
    /// Start watching the limits: the duration counts from now.
    pub fn watch(&self) -> CutWatch {
        CutWatch {
            cutoff: self.clone(),
            deadline: self.max_duration.map(|d| tokio::time::Instant::now() + d),
            started: 0,
        }
    }
}

/// The limits of one run, for commands whose transfers start one by one (restores, bucket
/// copies): whether the next may start, and when the run has reached a limit.
pub struct CutWatch {
    cutoff: Cutoff,
    deadline: Option<tokio::time::Instant>,
    started: u64,
}

impl CutWatch {
    /// Whether a transfer of `size` bytes may start, `done` bytes being done: not once a
    /// limit is reached, nor (cautious mode) one that would go past `--max-transfer`.
    /// Counts it when it may.
    pub fn admit(&mut self, size: u64, done: u64) -> Result<(), Cut> {
        if let Some(cut) = self.reached(done) {
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

    /// The limit reached, `done` bytes being done: the deadline passed, or `--max-transfer`.
    pub fn reached(&self, done: u64) -> Option<Cut> {
        if self
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            return Some(Cut::Duration);
        }
        match self.cutoff.max_transfer {
            Some(max) if done >= max => Some(Cut::Transfer),
            _ => None,
        }
    }

    /// Wait until the deadline (for ever without one).
    pub async fn deadline(&self) {
        match self.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    }

    /// Whether transfers in flight stop at once when a limit is reached (`--cutoff-mode hard`).
    pub fn hard(&self) -> bool {
        self.cutoff.mode == CutoffMode::Hard
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

/// Wait for the next transfer of `tasks` to end, or for the run to reach a limit (`done`:
/// the bytes done so far), whichever comes first; `tasks` must not be empty.
async fn wait_slot<T: 'static>(
    tasks: &mut JoinSet<T>,
    watch: &CutWatch,
    done: &AtomicU64,
) -> Waited<T> {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            Some(j) = tasks.join_next() => return Waited::Done(j),
            _ = watch.deadline() => return Waited::Cut(Cut::Duration),
            _ = tick.tick() => {
                if let Some(cut) = watch.reached(done.load(Ordering::Relaxed)) {
                    return Waited::Cut(cut);
                }
            }
        }
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
    pub fn new(slots: usize, cutoff: &Cutoff) -> Transfers<T> {
        Transfers {
            tasks: JoinSet::new(),
            slots: slots.max(1),
            watch: cutoff.watch(),
            cut: None,
            links_open: false,
        }
    }

    /// Wait for a free slot, handing each transfer that ends to `record` (`done`: the bytes
    /// done so far). False once a limit is reached: start nothing more.
    pub async fn room(
        &mut self,
        done: &AtomicU64,
        mut record: impl FnMut(Result<T, JoinError>),
    ) -> bool {
        while self.tasks.len() >= self.slots && self.cut.is_none() {
            match wait_slot(&mut self.tasks, &self.watch, done).await {
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

    /// Start a transfer of `size` bytes (`done`: the bytes done so far), unless a limit
    /// forbids it. False then: start nothing more.
    pub fn start(
        &mut self,
        size: u64,
        done: &AtomicU64,
        transfer: impl Future<Output = T> + Send + 'static,
    ) -> bool {
        match self.watch.admit(size, done.load(Ordering::Relaxed)) {
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
    pub async fn finish(mut self, record: impl FnMut(Result<T, JoinError>)) -> Option<Cut> {
        let stop = self.cut.is_some() && self.watch.hard();
        drain(&mut self.tasks, stop, record).await;
        if let Some(c) = self.cut {
            stopped(c, &self.watch.cutoff);
        }
        self.cut
    }
}
