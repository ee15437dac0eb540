//! The one driver of `sync` and `copy`, whatever the direction (directory → bucket, bucket →
//! directory, bucket → bucket). It pulls keys from the march, hands each to the direction's
//! decision, runs the comparisons that decision asks for and the transfers it plans, at most
//! `--transfers` at once, and stops at `--max-transfer` or `--max-duration`
//! ([`super::schedule`]). A direction brings only what is its own: how one key is decided
//! ([`Direction::step`]), how one item is sent ([`Direction::send`]) and what its outcome
//! counts for ([`Direction::record`]); the summary, the deletion tail and the log lines stay
//! with it.
//!
//! In registry mode no link goes before the blob it names: either each link waits for its
//! own blob ([`LinkOrder::AfterTheirBlob`], uploads, which read the link and know its blob),
//! or the first link waits for every transfer started before it ([`LinkOrder::AfterEveryBlob`],
//! restores and bucket copies, which see the link's bytes only as they move). Blobs sort
//! before links in key order, so either way every blob a link may need comes first.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use crate::commands::schedule::{Cut, CutWatch, Cutoff};
use crate::config::registry::{BlobSet, Kind, Layout};
use crate::march::{March, Marched, Side};
use crate::report::Stats;
use crate::s3::S3Error;

/// One item a direction sends: a file to upload, an object to restore or to copy.
pub trait Planned: Send + 'static {
    /// Its key, relative to the prefix (or its path, relative to the directory).
    fn rel(&self) -> &str;
    /// Its bytes, for `--max-transfer`'s cautious mode.
    fn size(&self) -> u64;
}

/// What a direction makes of one key of the march.
pub enum Next<I, C> {
    /// Nothing to send: kept, noted for the deletion tail, refused, or a dry run.
    Nothing,
    /// Send it.
    Send(I),
    /// Decide once this comparison (a HEAD, hashing the file) has run, in a task of its own.
    Compare(C),
}

/// A direction of `sync` and `copy`: its decisions, and its transfer of one item.
pub trait Direction {
    /// The entries of the march's two sides.
    type Src;
    type Dst;
    type Item: Planned;
    /// A comparison the decision asked for, and what it finds.
    type Compare: Future<Output = Self::Compared> + Send + 'static;
    type Compared: Send + 'static;
    /// What one transfer gives back.
    type Done: Send + 'static;

    /// Decide one key. An error stops the run (nothing more starts; what is in flight ends).
    fn step(
        &mut self,
        marched: Marched<Self::Src, Self::Dst>,
    ) -> impl Future<Output = Result<Next<Self::Item, Self::Compare>, S3Error>>;

    /// Decide a key once its comparison has run: the item to send, if any. A direction
    /// whose decisions ask for no comparison keeps this default.
    fn compared(
        &mut self,
        compared: Self::Compared,
    ) -> impl Future<Output = Result<Option<Self::Item>, S3Error>> {
        let _ = compared;
        async { Ok(None) }
    }

    /// The transfer of one item, run as a task of its own.
    fn send(&self, item: Self::Item) -> impl Future<Output = Self::Done> + Send + 'static;

    /// Count what one transfer did; whether it succeeded.
    fn record(&mut self, done: Self::Done) -> bool;
}

/// In registry mode, when a link may go.
#[derive(Debug, Clone)]
pub enum LinkOrder {
    /// Not a registry: in key order.
    Any,
    /// A link waits for the blob it names: at once if the destination holds it (`known`,
    /// listed or sent by this run), after that blob's transfer if this run sends it, and last
    /// otherwise (tag links, which name no digest, and links to blobs neither listed nor
    /// sent: another shard's, or missing), when they are checked against the destination.
    /// Links and blobs are interleaved so that neither the request rate (small links) nor
    /// the bandwidth (blobs) idles.
    AfterTheirBlob {
        layout: Layout,
        known: Arc<Mutex<BlobSet>>,
    },
    /// The first link is decided only once every transfer started before it has ended.
    AfterEveryBlob,
}

/// How the transfers of one run are scheduled.
pub struct Schedule {
    /// `--transfers`.
    pub slots: usize,
    /// Comparisons in flight at once.
    pub compare_slots: usize,
    /// Items planned ahead of the transfers, so that planning never keeps a slot waiting; 0
    /// pulls the march only for a free slot.
    pub ahead: usize,
    pub links: LinkOrder,
    pub cutoff: Cutoff,
    /// Counts the run's bytes, for `--max-transfer`.
    pub stats: Arc<Stats>,
}

/// How the march and the transfers ended.
pub struct Driven {
    /// The error that stopped the run (a listing's, or a decision's), if any: the transfers
    /// already started were finished first, and nothing more was started.
    pub failed: Option<S3Error>,
    /// The limit that stopped the run, if any.
    pub cut: Option<Cut>,
}

/// Run `dir` over `march` until the march ends and every planned item is sent, or a limit
/// or an error stops it.
pub async fn drive<S, T, D>(march: &mut March<S, T>, dir: &mut D, schedule: Schedule) -> Driven
where
    S: Side,
    T: Side,
    D: Direction<Src = S::Entry, Dst = T::Entry>,
{
    let mut run = Running::<D>::new(&schedule);
    let compare_slots = schedule.compare_slots.max(1);
    let mut merging = true;
    // A link held back until every transfer before it has ended (AfterEveryBlob).
    let mut held: Option<Marched<S::Entry, T::Entry>> = None;
    loop {
        run.start_ready(dir);
        if run.cut.is_some() {
            merging = false;
            run.stop_if_hard();
        }
        if held.is_some() && run.idle() {
            run.queue.links_open = true;
            let marched = held.take().expect("a held link");
            if let Err(e) = take(dir, marched, &mut run.queue, &mut run.compares).await {
                merging = false;
                run.failed = Some(e);
            }
            continue;
        }
        let room = if schedule.ahead == 0 {
            run.queue.ahead() == 0 && run.transfers.len() < run.slots
        } else {
            run.queue.ahead() < schedule.ahead
        };
        let want = merging && held.is_none() && room && run.compares.len() < compare_slots;
        let busy = !run.transfers.is_empty() || !run.compares.is_empty() || merging;
        let watching = busy && run.cut.is_none() && run.watch.any();
        tokio::select! {
            Some(r) = run.transfers.join_next(), if !run.transfers.is_empty() => match r {
                Ok((rel, link, done)) => {
                    run.links_in_flight -= usize::from(link);
                    let ok = dir.record(done);
                    run.queue.finished(&rel, ok);
                }
                // Stopped by a hard cutoff: not done, not an error; a rerun resumes it.
                Err(e) if e.is_cancelled() => {}
                Err(e) => panic!("transfer task: {e}"),
            },
            Some(r) = run.compares.join_next(), if !run.compares.is_empty() => {
                let compared = match r {
                    Ok(c) => c,
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => panic!("compare task: {e}"),
                };
                match dir.compared(compared).await {
                    Ok(Some(item)) => run.queue.push(item),
                    Ok(None) => {}
                    Err(e) => run.failed = Some(e),
                }
            }
            step = march.next(), if want => match step {
                None => merging = false,
                Some(Err(e)) => {
                    merging = false;
                    run.failed = Some(e);
                }
                Some(Ok(marched)) if run.queue.holds(&marched) => held = Some(marched),
                Some(Ok(marched)) => {
                    if let Err(e) = take(dir, marched, &mut run.queue, &mut run.compares).await {
                        merging = false;
                        run.failed = Some(e);
                    }
                }
            },
            c = run.watch.next(), if watching => run.cut = Some(c),
            else => {
                if run.failed.is_none() && run.cut.is_none() && run.queue.release_last() {
                    continue;
                }
                break;
            }
        }
    }
    if run.cut.is_none() && run.failed.is_none() {
        run.cut = run.watch.reached_at_end();
    }
    Driven {
        failed: run.failed,
        cut: run.cut,
    }
}

/// What is in flight while the driver runs.
struct Running<D: Direction> {
    slots: usize,
    queue: Queue<D::Item>,
    transfers: JoinSet<(String, bool, D::Done)>,
    compares: JoinSet<D::Compared>,
    links_in_flight: usize,
    watch: CutWatch,
    failed: Option<S3Error>,
    cut: Option<Cut>,
}

impl<D: Direction> Running<D> {
    fn new(schedule: &Schedule) -> Running<D> {
        Running {
            slots: schedule.slots.max(1),
            queue: Queue::new(schedule.links.clone()),
            transfers: JoinSet::new(),
            compares: JoinSet::new(),
            links_in_flight: 0,
            watch: schedule.cutoff.watch(schedule.stats.clone()),
            failed: None,
            cut: None,
        }
    }

    /// Start queued items while a slot is free and no limit or error forbids it.
    fn start_ready(&mut self, dir: &D) {
        while self.transfers.len() < self.slots && self.failed.is_none() && self.cut.is_none() {
            let Some(item) = self.queue.next(self.links_in_flight, self.slots) else {
                break;
            };
            if let Err(c) = self.watch.admit(item.size()) {
                self.cut = Some(c);
                break;
            }
            let link = self.queue.is_link(item.rel());
            self.links_in_flight += usize::from(link);
            let rel = item.rel().to_string();
            let transfer = dir.send(item);
            self.transfers
                .spawn(async move { (rel, link, transfer.await) });
        }
    }

    /// With `--cutoff-mode hard`, stop what is in flight (a rerun resumes it).
    fn stop_if_hard(&mut self) {
        if self.watch.hard() {
            self.transfers.abort_all();
            self.compares.abort_all();
        }
    }

    /// Nothing queued, nothing in flight, nothing stopped the run.
    fn idle(&self) -> bool {
        self.transfers.is_empty()
            && self.compares.is_empty()
            && self.queue.ahead() == 0
            && self.failed.is_none()
            && self.cut.is_none()
    }
}

/// Decide one key and queue what the decision plans.
async fn take<D: Direction>(
    dir: &mut D,
    marched: Marched<D::Src, D::Dst>,
    queue: &mut Queue<D::Item>,
    compares: &mut JoinSet<D::Compared>,
) -> Result<(), S3Error> {
    match dir.step(marched).await? {
        Next::Nothing => {}
        Next::Send(item) => queue.push(item),
        Next::Compare(c) => {
            compares.spawn(c);
        }
    }
    Ok(())
}

/// The items planned and not yet started, in the order they start (see [`LinkOrder`]).
struct Queue<I> {
    order: LinkOrder,
    files: VecDeque<I>,
    ready_links: VecDeque<I>,
    /// Links waiting for a blob this run is sending, by its digest.
    waiting: HashMap<String, Vec<I>>,
    waiting_count: usize,
    /// Blobs queued or being sent.
    sending: HashSet<String>,
    last: Vec<I>,
    /// AfterEveryBlob: the first link has been let through.
    links_open: bool,
}

impl<I: Planned> Queue<I> {
    fn new(order: LinkOrder) -> Queue<I> {
        Queue {
            order,
            files: VecDeque::new(),
            ready_links: VecDeque::new(),
            waiting: HashMap::new(),
            waiting_count: 0,
            sending: HashSet::new(),
            last: Vec::new(),
            links_open: false,
        }
    }

    fn layout(&self) -> Option<&Layout> {
        match &self.order {
            LinkOrder::AfterTheirBlob { layout, .. } => Some(layout),
            _ => None,
        }
    }

    /// Whether this key is a link that must wait, undecided, for every transfer before it.
    fn holds<S, D>(&self, marched: &Marched<S, D>) -> bool {
        matches!(self.order, LinkOrder::AfterEveryBlob)
            && !self.links_open
            && matches!(marched.kind, Some(Kind::Link { .. }))
    }

    /// Items queued and not yet started, except those that go last.
    fn ahead(&self) -> usize {
        self.files.len() + self.ready_links.len() + self.waiting_count
    }

    fn push(&mut self, item: I) {
        let LinkOrder::AfterTheirBlob { layout, known } = &self.order else {
            self.files.push_back(item);
            return;
        };
        match layout.kind(item.rel()) {
            Kind::Link {
                path_digest: Some(d),
            } if known.lock().expect("known blobs").contains(&d) => {
                self.ready_links.push_back(item);
            }
            Kind::Link {
                path_digest: Some(d),
            } if self.sending.contains(&d) => {
                self.waiting_count += 1;
                self.waiting.entry(d).or_default().push(item);
            }
            Kind::Link { .. } => self.last.push(item),
            Kind::Blob { digest } => {
                self.sending.insert(digest);
                self.files.push_back(item);
            }
            _ => self.files.push_back(item),
        }
    }

    /// The next item to start, given how many links are in flight out of `slots`.
    fn next(&mut self, links_in_flight: usize, slots: usize) -> Option<I> {
        let links_first = links_in_flight < slots.div_ceil(2) || self.files.is_empty();
        if links_first && let Some(item) = self.ready_links.pop_front() {
            return Some(item);
        }
        self.files
            .pop_front()
            .or_else(|| self.ready_links.pop_front())
    }

    fn is_link(&self, rel: &str) -> bool {
        self.layout()
            .is_some_and(|l| matches!(l.kind(rel), Kind::Link { .. }))
    }

    /// An item's transfer ended: a blob's waiting links become ready (sent) or go last
    /// (failed).
    fn finished(&mut self, rel: &str, ok: bool) {
        let Some(Kind::Blob { digest }) = self.layout().map(|l| l.kind(rel)) else {
            return;
        };
        self.sending.remove(&digest);
        if let Some(links) = self.waiting.remove(&digest) {
            self.waiting_count -= links.len();
            if ok {
                self.ready_links.extend(links);
            } else {
                self.last.extend(links);
            }
        }
    }

    /// Nothing is running and nothing more will be queued: release what goes last. False
    /// when the queue is empty.
    fn release_last(&mut self) -> bool {
        // Links still waiting here wait on a blob that was never reported done.
        let waiting: Vec<_> = self.waiting.drain().flat_map(|(_, v)| v).collect();
        self.waiting_count = 0;
        self.last.extend(waiting);
        if self.last.is_empty() {
            return false;
        }
        self.ready_links.extend(self.last.drain(..));
        true
    }
}
