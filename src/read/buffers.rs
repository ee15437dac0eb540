//! The memory budget and the buffers it pays for.
//!
//! A stage takes a [`Buffer`] for the bytes it is about to read *before* reading, so reading can
//! never run ahead of uploading by more than the budget. The buffer's share of the budget is
//! released when the last [`Bytes`] made from it is dropped (after the request that sent it),
//! not when the code that took it returns.
//!
//! Buffers of 1 MiB and more are kept for reuse instead of being freed. A fresh large
//! allocation is fresh pages: the allocator maps them, the kernel faults and zeroes each one
//! on first touch, and frees them again after the upload. Parts of large files and
//! blob-sized files are exactly that case, so the pool keeps a bounded set of them: idle
//! buffers count against the budget (reuse never lets memory grow past it), and a buffer idle
//! for `IDLE_FOR` is freed, so memory follows what the transfers need now. Pooled buffers
//! are anonymous mappings of their own rather than heap allocations, so freeing one returns
//! its memory to the system at once instead of leaving it in the allocator's arenas.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use memmap2::MmapMut;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::read::etag::{KIB, MIB};

/// Below this a buffer is an ordinary allocation, freed after use.
const POOLED_FROM: usize = MIB as usize;
/// An idle buffer unused for this long is freed.
const IDLE_FOR: Duration = Duration::from_secs(1);

/// The memory budget for file data: a semaphore counted in KiB, plus the pool of reusable
/// buffers it has paid for.
#[derive(Debug, Clone)]
pub struct Budget {
    sem: Arc<Semaphore>,
    total_kib: u32,
    pool: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    /// Idle buffers by capacity, each with when it became idle; the most recent at the back.
    idle: HashMap<usize, VecDeque<(MmapMut, Instant)>>,
    last_trim: Instant,
    /// Bytes held by pooled buffers, idle or in use.
    held: u64,
    /// Most bytes the pool may hold: the budget.
    limit: u64,
}

/// The capacity a buffer for `len` bytes gets: 1 MiB steps up to 8 MiB, then eight steps per
/// doubling (so at most 12.5% of a buffer is unused) - few enough sizes that buffers are
/// reused, fine enough that little of the budget goes to waste.
fn capacity_for(len: usize) -> usize {
    if len < POOLED_FROM {
        return len;
    }
    if len <= 8 * POOLED_FROM {
        return len.div_ceil(POOLED_FROM) * POOLED_FROM;
    }
    let step = (1usize << (usize::BITS - 1 - len.leading_zeros())) / 8;
    len.div_ceil(step) * step
}

/// A share of the budget in the semaphore's KiB units: at least one, so that 0-byte files
/// still take a slot.
fn kib_of(bytes: u64) -> u32 {
    bytes.div_ceil(KIB).clamp(1, u32::MAX as u64) as u32
}

impl Budget {
    pub fn new(bytes: u64) -> Budget {
        let total_kib = bytes.div_ceil(KIB).clamp(1, u32::MAX as u64) as u32;
        Budget {
            sem: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            pool: Arc::new(Pool {
                state: Mutex::new(PoolState {
                    idle: HashMap::new(),
                    last_trim: Instant::now(),
                    held: 0,
                    limit: bytes,
                }),
            }),
        }
    }

    /// Wait until `bytes` of the budget are free and take them; released when the permit drops.
    async fn acquire(&self, bytes: u64) -> OwnedSemaphorePermit {
        // Never more than the total.
        let kib = kib_of(bytes).min(self.total_kib);
        self.sem
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("budget semaphore is never closed")
    }

    /// A buffer for `len` bytes, once the budget allows it. Its contents are unspecified (the
    /// reader overwrites all of them).
    pub async fn buffer(&self, len: u64) -> Buffer {
        let len = usize::try_from(len).expect("a read fits in memory");
        let cap = capacity_for(len);
        let permit = self.acquire(cap as u64).await;
        self.make(len, cap, permit)
    }

    /// Buffers for several reads, paid for in one step: a caller never holds part of what it
    /// needs while waiting for the rest, so callers waiting on each other cannot deadlock.
    /// Together they should fit the budget ([`Budget::fits`]); more is capped at all of it.
    pub async fn buffers(&self, lens: &[u64]) -> Vec<Buffer> {
        let caps: Vec<usize> = lens
            .iter()
            .map(|&l| capacity_for(usize::try_from(l).expect("a read fits in memory")))
            .collect();
        let kibs: Vec<u32> = caps.iter().map(|&c| kib_of(c as u64)).collect();
        let total: u64 = kibs.iter().map(|&k| k as u64).sum();
        let mut permit = self.acquire(total * KIB).await;
        let last = lens.len().saturating_sub(1);
        let mut out = Vec::with_capacity(lens.len());
        for (i, (&len, &cap)) in lens.iter().zip(&caps).enumerate() {
            // Each buffer takes its share; the last takes what is left (all of it when the
            // group was capped at the budget).
            let share = if i == last {
                permit.num_permits()
            } else {
                (kibs[i] as usize).min(permit.num_permits().saturating_sub(1))
            };
            let own = permit
                .split(share)
                .expect("a share is never more than what is left");
            out.push(self.make(len as usize, cap, own));
        }
        out
    }

    /// Parts of `part` bytes per group, for a file of `count` parts read a group at a time
    /// with `out` groups held at once: `most` (the parts that transfer at once), fewer when
    /// `out` such groups would not fit the budget, down to one part.
    pub fn group_of(&self, part: u64, most: usize, count: u64, out: usize) -> u64 {
        let mut g = (most.max(1) as u64).min(count.max(1));
        while g > 1 && !self.fits(&vec![part; out * g as usize]) {
            g -= 1;
        }
        g
    }

    /// Whether buffers for all of `lens` can be held at once.
    pub fn fits(&self, lens: &[u64]) -> bool {
        let total: u64 = lens
            .iter()
            .map(|&l| kib_of(capacity_for(l as usize) as u64) as u64)
            .sum();
        total <= self.total_kib as u64
    }

    fn make(&self, len: usize, cap: usize, permit: OwnedSemaphorePermit) -> Buffer {
        if cap < POOLED_FROM {
            return Buffer {
                data: Mem::Heap(vec![0; len]),
                len,
                home: None,
                _permit: permit,
            };
        }
        Buffer {
            data: Mem::Mapped(self.pool.take(cap)),
            len,
            home: Some(self.pool.clone()),
            _permit: permit,
        }
    }

    /// Bytes of the budget taken now, and bytes in all: what the metrics endpoint shows.
    pub fn usage(&self) -> (u64, u64) {
        let total = self.total_kib as u64;
        let free = (self.sem.available_permits() as u64).min(total);
        ((total - free) * KIB, total * KIB)
    }

    /// Report this budget's use in `stats` (the metrics endpoint reads it at each scrape).
    pub fn watched_by(self, stats: &crate::report::Stats) -> Budget {
        let b = self.clone();
        stats.watch_budget(move || b.usage());
        self
    }

    #[cfg(test)]
    pub fn available_bytes(&self) -> u64 {
        self.sem.available_permits() as u64 * KIB
    }

    #[cfg(test)]
    fn pooled(&self) -> (u64, usize) {
        let s = self.pool.state.lock().unwrap();
        (s.held, s.idle.values().map(VecDeque::len).sum())
    }
}

impl Pool {
    fn take(&self, cap: usize) -> MmapMut {
        {
            let mut s = self.state.lock().expect("buffer pool");
            if let Some((v, _)) = s.idle.get_mut(&cap).and_then(VecDeque::pop_back) {
                return v;
            }
            // Make room: free idle buffers of other sizes until this one fits the limit.
            s.held += cap as u64;
            while s.held > s.limit {
                let Some(&size) = s
                    .idle
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, _)| k)
                    .max()
                else {
                    break;
                };
                s.idle.get_mut(&size).and_then(VecDeque::pop_front);
                s.held -= size as u64;
            }
        }
        // Only a full address space (or RLIMIT_AS) makes this fail: nothing sensible remains.
        MmapMut::map_anon(cap).unwrap_or_else(|e| panic!("mapping a {cap}-byte read buffer: {e}"))
    }

    fn put_back(&self, v: MmapMut) {
        let mut s = self.state.lock().expect("buffer pool");
        if s.held > s.limit {
            s.held -= v.len() as u64;
            return;
        }
        let now = Instant::now();
        s.idle.entry(v.len()).or_default().push_back((v, now));
        if now.duration_since(s.last_trim) >= IDLE_FOR / 4 {
            s.last_trim = now;
            s.trim(now);
        }
    }
}

impl PoolState {
    /// Free the buffers idle for [`IDLE_FOR`] or more.
    fn trim(&mut self, now: Instant) {
        let mut freed = 0;
        for list in self.idle.values_mut() {
            while list
                .front()
                .is_some_and(|(_, since)| now.duration_since(*since) >= IDLE_FOR)
            {
                if let Some((v, _)) = list.pop_front() {
                    freed += v.len() as u64;
                }
            }
        }
        self.held -= freed;
    }
}

/// Where a buffer's bytes live.
enum Mem {
    Heap(Vec<u8>),
    Mapped(MmapMut),
}

impl Mem {
    fn bytes(&self) -> &[u8] {
        match self {
            Mem::Heap(v) => v,
            Mem::Mapped(m) => m,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Mem::Heap(v) => v,
            Mem::Mapped(m) => m,
        }
    }
}

/// Memory for one read, paid for from the [`Budget`] until it (or the [`Bytes`] it becomes)
/// is dropped.
pub struct Buffer {
    data: Mem,
    len: usize,
    home: Option<Arc<Pool>>,
    _permit: OwnedSemaphorePermit,
}

impl Buffer {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes a reader fills.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data.bytes_mut()[..self.len]
    }

    /// The bytes a reader fills, extended into the buffer's spare room up to a multiple of
    /// `align` (a power of two): what a read past the page cache needs, its address and length
    /// aligned. `None` when this buffer cannot take such a read (small buffers are ordinary
    /// allocations; pooled ones are page-aligned mappings).
    pub fn aligned_mut(&mut self, align: usize) -> Option<&mut [u8]> {
        let Mem::Mapped(m) = &mut self.data else {
            return None;
        };
        let want = self.len.next_multiple_of(align);
        (want > 0 && (m.as_ptr() as usize).is_multiple_of(align) && want <= m.len())
            .then(|| &mut m[..want])
    }

    /// The filled buffer as [`Bytes`]; the memory returns to the pool and the budget when the
    /// last clone is dropped.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.data.bytes()[..self.len]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(pool) = self.home.take()
            && let Mem::Mapped(m) = std::mem::replace(&mut self.data, Mem::Heap(Vec::new()))
        {
            pool.put_back(m);
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Buffer({} of {} bytes)",
            self.len,
            self.data.bytes().len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_waste_at_most_an_eighth() {
        assert_eq!(capacity_for(71), 71);
        assert_eq!(capacity_for(MIB as usize), MIB as usize);
        assert_eq!(capacity_for(MIB as usize + 1), 2 * MIB as usize);
        assert_eq!(capacity_for(16 * MIB as usize), 16 * MIB as usize);
        assert_eq!(capacity_for(16 * MIB as usize + 1), 18 * MIB as usize);
        for len in (1..200).map(|i| i * 997 * KIB as usize) {
            let cap = capacity_for(len);
            assert!(cap >= len && (cap - len) * 8 <= len, "{len} -> {cap}");
        }
    }

    #[tokio::test]
    async fn budget_blocks_until_released() {
        let b = Budget::new(4 * KIB);
        let p1 = b.buffer(3 * KIB).await;
        assert_eq!(b.available_bytes(), KIB);
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.buffer(2 * KIB).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "must wait while the budget is used");
        // Frozen bytes keep their share until the last clone goes.
        let bytes = p1.freeze();
        let clone = bytes.clone();
        drop(bytes);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "a clone still holds the memory");
        drop(clone);
        let p2 = waiter.await.unwrap();
        assert_eq!(b.available_bytes(), 2 * KIB);
        drop(p2);
        // Oversized requests are clamped to the whole budget instead of deadlocking.
        let _all = b.buffer(64 * KIB).await;
        assert_eq!(b.available_bytes(), 0);
    }

    #[tokio::test]
    async fn a_group_is_paid_for_in_one_step_and_returned_buffer_by_buffer() {
        let b = Budget::new(40 * MIB);
        assert!(b.fits(&[16 * MIB, 16 * MIB]));
        assert!(!b.fits(&[16 * MIB, 16 * MIB, 16 * MIB]));
        let held = b.buffer(16 * MIB).await;
        // 24 MiB are free: a group of two 16 MiB buffers waits for all 32, as one request
        // (the semaphore is first come, first served: what a waiting group has gathered no
        // other request can take, so groups cannot each hold part of what they need).
        let b2 = b.clone();
        let group = tokio::spawn(async move { b2.buffers(&[16 * MIB, 16 * MIB - 1]).await });
        tokio::task::yield_now().await;
        assert!(!group.is_finished());
        drop(held);
        let got = group.await.unwrap();
        assert_eq!(
            got.iter().map(Buffer::len).collect::<Vec<_>>(),
            [16 * MIB as usize, 16 * MIB as usize - 1]
        );
        assert_eq!(b.available_bytes(), 8 * MIB);
        let mut got = got.into_iter();
        drop(got.next());
        assert_eq!(
            b.available_bytes(),
            24 * MIB,
            "each buffer returns its own share"
        );
        drop(got);
        assert_eq!(b.available_bytes(), 40 * MIB);
        // More than the budget is capped at all of it rather than waiting forever.
        let all = b.buffers(&[32 * MIB, 32 * MIB]).await;
        assert_eq!(b.available_bytes(), 0);
        drop(all);
        assert_eq!(b.available_bytes(), 40 * MIB);
    }

    #[tokio::test]
    async fn aligned_spans_exist_only_where_a_direct_read_can_land() {
        let b = Budget::new(40 * MIB);
        let mut small = b.buffer(1000).await;
        assert!(
            small.aligned_mut(4096).is_none(),
            "heap buffers are not aligned"
        );
        let mut tail = b.buffer(MIB + 10).await;
        let span = tail.aligned_mut(4096).unwrap();
        assert_eq!(span.len(), MIB as usize + 4096);
        assert!((span.as_ptr() as usize).is_multiple_of(4096));
        // A buffer filling its whole capacity has no room to round up into.
        let mut odd = b.buffer(2 * MIB - 1).await;
        assert_eq!(odd.aligned_mut(4096).unwrap().len(), 2 * MIB as usize);
        let mut exact = b.buffer(2 * MIB).await;
        assert_eq!(exact.aligned_mut(4096).unwrap().len(), 2 * MIB as usize);
        assert!(exact.aligned_mut(4 * MIB as usize).is_none());
    }

    #[tokio::test]
    async fn large_buffers_are_reused_within_the_budget() {
        let b = Budget::new(40 * MIB);
        let mut first = b.buffer(16 * MIB).await;
        first.as_mut_slice()[0] = 7;
        let addr = first.as_mut_slice().as_ptr();
        drop(first.freeze());
        assert_eq!(b.pooled(), (16 * MIB, 1));
        // The same size comes back as the same memory, not a new allocation.
        let mut again = b.buffer(16 * MIB - 100).await;
        assert_eq!(again.len(), 16 * MIB as usize - 100);
        assert_eq!(again.as_mut_slice().as_ptr(), addr);
        drop(again);
        // Two buffers of another size do not fit beside the idle one: it is freed for them.
        let x = b.buffer(20 * MIB).await;
        let y = b.buffer(20 * MIB).await;
        assert_eq!(b.pooled(), (40 * MIB, 0));
        drop((x, y));
        assert_eq!(b.pooled(), (40 * MIB, 2));
        assert_eq!(b.available_bytes(), 40 * MIB);

        // Buffers idle for a while are freed at the next return to the pool.
        std::thread::sleep(IDLE_FOR);
        drop(b.buffer(2 * MIB).await);
        assert_eq!(b.pooled(), (2 * MIB, 1));
    }
}
