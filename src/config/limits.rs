//! Every concurrency and memory knob in one value, built once from flags and the remote's
//! settings and passed down. Stages take what they need from here; nothing else invents a limit.
//!
//! The memory budget itself, and the buffers it pays for, live in `read::buffers`.

use crate::read::etag::MIB;

/// Concurrency and memory limits (see docs/design.md, "Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Files uploaded at once (`--transfers`).
    pub transfers: usize,
    /// Files checked or hashed at once (`--checkers`).
    pub checkers: usize,
    /// Parts of one file uploaded at once (`--s3-upload-concurrency`).
    pub parts_per_file: usize,
    /// Files at or above this size are uploaded in parts (`--s3-upload-cutoff`).
    pub upload_cutoff: u64,
    /// Part size before growing to fit `max_parts` (`--s3-chunk-size`).
    pub chunk_size: u64,
    /// Most parts per upload (`max_upload_parts`; Swift's S3 API allows 1,000).
    pub max_parts: u64,
    /// Bytes of file data held in memory at once (`--max-buffer-memory`).
    pub buffer_memory: u64,
    /// Threads walking the source tree.
    pub walk_threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            transfers: 64,
            checkers: 16,
            parts_per_file: 4,
            upload_cutoff: 64 * MIB,
            chunk_size: 16 * MIB,
            max_parts: 10_000,
            buffer_memory: 1024 * MIB,
            walk_threads: 4,
        }
    }
}

impl Limits {
    /// Connections worth keeping open: everything that can be in flight at once.
    pub fn connections(&self) -> usize {
        (self.transfers * self.parts_per_file)
            .max(self.checkers)
            .max(1)
    }

    /// Make the values consistent: a single-request upload must fit the budget, and so must
    /// one part.
    pub fn normalised(mut self) -> Limits {
        self.transfers = self.transfers.max(1);
        self.checkers = self.checkers.max(1);
        self.parts_per_file = self.parts_per_file.max(1);
        self.max_parts = self.max_parts.clamp(1, crate::read::etag::MAX_PARTS);
        self.chunk_size = self.chunk_size.max(crate::read::etag::MIN_PART_SIZE);
        self.buffer_memory = self.buffer_memory.max(self.chunk_size).max(8 * MIB);
        self.upload_cutoff = self
            .upload_cutoff
            .min(self.buffer_memory)
            .min(5 * crate::read::etag::GIB);
        self
    }
}

/// The container's memory limit: cgroup v2 `memory.max`, else cgroup v1
/// `memory.limit_in_bytes`, as the container sees them. `None` when unlimited or unknown.
pub fn cgroup_memory_limit() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let v2 = read("/proc/self/cgroup").and_then(|c| {
        c.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|path| format!("/sys/fs/cgroup{}/memory.max", path.trim_end_matches('/')))
    });
    let candidates = [
        v2,
        Some("/sys/fs/cgroup/memory.max".to_string()),
        Some("/sys/fs/cgroup/memory/memory.limit_in_bytes".to_string()),
    ];
    candidates
        .into_iter()
        .flatten()
        .find_map(|p| read(&p))
        .and_then(|v| v.trim().parse::<u64>().ok())
        // cgroup v1 writes "no limit" as a huge page-aligned number.
        .filter(|&v| v < (1 << 60))
}

/// The default buffer budget for a memory limit: half of it less 64 MiB for everything else
/// (at least 32 MiB), at most 2 GiB; 1 GiB when there is no limit.
pub fn budget_for(limit: Option<u64>) -> u64 {
    match limit {
        None => 1024 * MIB,
        Some(l) => (l / 2).saturating_sub(64 * MIB).clamp(32 * MIB, 2048 * MIB),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_the_container_limit() {
        assert_eq!(budget_for(None), 1024 * MIB);
        assert_eq!(
            budget_for(Some(4096 * MIB)),
            1984 * MIB,
            "the seed Job's 4 GiB"
        );
        assert_eq!(budget_for(Some(64 * 1024 * MIB)), 2048 * MIB);
        assert_eq!(budget_for(Some(128 * MIB)), 32 * MIB);
    }

    #[test]
    fn normalise_keeps_cutoff_within_budget() {
        let l = Limits {
            buffer_memory: 32 * MIB,
            upload_cutoff: 200 * MIB,
            chunk_size: 1,
            transfers: 0,
            ..Limits::default()
        }
        .normalised();
        assert_eq!(l.chunk_size, 5 * MIB);
        assert_eq!(l.upload_cutoff, 32 * MIB);
        assert_eq!(l.transfers, 1);
    }
}
