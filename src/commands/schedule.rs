//! When a run stops early: rclone's `--max-transfer`, `--max-duration` and `--cutoff-mode`.
//! The driver ([`super::drive`]) asks [`CutWatch`] before it starts each transfer and waits
//! on it beside the transfers: none starts once a limit is reached, and with
//! `--cutoff-mode hard` those in flight stop, left for the rerun to resume.

use std::sync::Arc;
use std::time::Duration;

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
