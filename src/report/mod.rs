//! Stage output: counters the stages bump, the progress line, log formatting and the final
//! summary. Stages never print; they update [`Stats`] and log through `tracing`, and this module
//! decides how that looks: rclone-style log lines (`2006/01/02 15:04:05 NOTICE: …`) so existing
//! greps keep working, JSON lines with `--use-json-log`, a live line on a terminal, and one
//! plain line per interval when the output is a log (`kubectl logs`).

pub mod class;
pub mod exit;
pub mod metrics;
pub mod redact;
pub mod requests;
pub mod termination;

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use humansize::{BINARY, format_size};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Live counters, shared by all stages.
#[derive(Debug)]
pub struct Stats {
    pub started: Instant,
    /// Files and bytes this run has to transfer (known after planning).
    pub files_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub files_done: AtomicU64,
    /// Bytes done, for progress: moved, reused from an interrupted transfer, or found
    /// unchanged after the plan counted them.
    pub bytes_done: AtomicU64,
    /// Bytes of parts reused from an interrupted multipart upload.
    pub bytes_reused: AtomicU64,
    /// Bytes that went over the network (sent, or received by a restore): what
    /// `--max-transfer` caps. Counted as they go ([`Stats::moved`]).
    pub bytes_moved: AtomicU64,
    /// `--max-transfer`, once set; [`Stats::cap_reached`] wakes when `bytes_moved` gets there.
    cap: std::sync::OnceLock<u64>,
    reached: tokio::sync::Notify,
    pub checks_total: AtomicU64,
    pub checks_done: AtomicU64,
    pub in_flight: AtomicI64,
    pub errors: AtomicU64,
    /// Files or parts sent again after an integrity failure.
    pub retries: AtomicU64,
    pub deletes: AtomicU64,
    /// The S3 request counters, for the SDK's own retries.
    pub requests: Option<Arc<crate::report::requests::RequestCounts>>,
    /// What proved each file moved or checked, counted as it happens (the summary keeps the
    /// totals; these are for the metrics endpoint while the run goes).
    pub proofs: Proofs,
    /// The memory budget's use, where the run has one: (bytes in use, bytes in all).
    budget: std::sync::OnceLock<BudgetGauge>,
}

/// Files proven, by what proved them.
#[derive(Debug, Default)]
pub struct Proofs {
    /// Our MD5s (or composite ETag) equal the server's ETag.
    pub etag: AtomicU64,
    /// The server's stored checksum equals ours.
    pub checksum: AtomicU64,
    /// Downloaded and hashed (`check` only).
    pub download: AtomicU64,
    /// Written, but nothing the server said could prove it.
    pub not_comparable: AtomicU64,
}

/// Reads the memory budget's use without this module knowing the budget's type (it lives in
/// a layer above).
pub struct BudgetGauge(Box<dyn Fn() -> (u64, u64) + Send + Sync>);

impl fmt::Debug for BudgetGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (used, total) = (self.0)();
        write!(f, "BudgetGauge({used}/{total})")
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Instant::now(),
            files_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            bytes_reused: AtomicU64::new(0),
            bytes_moved: AtomicU64::new(0),
            cap: std::sync::OnceLock::new(),
            reached: tokio::sync::Notify::new(),
            checks_total: AtomicU64::new(0),
            checks_done: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            requests: None,
            proofs: Proofs::default(),
            budget: std::sync::OnceLock::new(),
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Decrements `in_flight` when dropped.
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    pub fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    /// Stats whose `retries` also count the store's request retries.
    pub fn for_requests(requests: Arc<crate::report::requests::RequestCounts>) -> Stats {
        Stats {
            requests: Some(requests),
            ..Stats::default()
        }
    }

    /// The stats of a command's run: counting its requests' retries, and published to the
    /// metrics endpoint ([`metrics`]) while it goes.
    pub fn of_run(requests: Arc<crate::report::requests::RequestCounts>) -> Arc<Stats> {
        let stats = Arc::new(Stats::for_requests(requests));
        metrics::publish(&stats);
        stats
    }

    /// Report the memory budget's use through `gauge` (bytes in use, bytes in all).
    pub fn watch_budget(&self, gauge: impl Fn() -> (u64, u64) + Send + Sync + 'static) {
        let _ = self.budget.set(BudgetGauge(Box::new(gauge)));
    }

    /// The memory budget's use, where one is watched.
    pub fn budget_use(&self) -> Option<(u64, u64)> {
        self.budget.get().map(|g| (g.0)())
    }

    /// `n` bytes went over the network.
    pub fn moved(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
        let before = self.bytes_moved.fetch_add(n, Ordering::Relaxed);
        if let Some(&cap) = self.cap.get()
            && before <= cap
            && before + n > cap
        {
            self.reached.notify_one();
        }
    }

    /// `n` bytes counted as moved did not arrive (a failed request, or one sent again).
    pub fn unmoved(&self, n: u64) {
        self.bytes_done.fetch_sub(n, Ordering::Relaxed);
        self.bytes_moved.fetch_sub(n, Ordering::Relaxed);
    }

    /// `n` bytes an interrupted transfer had already moved: done, not moved again.
    pub fn reused(&self, n: u64) {
        Stats::add(&self.bytes_done, n);
        Stats::add(&self.bytes_reused, n);
    }

    /// `n` bytes the plan counted are done without moving (unchanged after all, copied by
    /// the server, or checked).
    pub fn skipped(&self, n: u64) {
        Stats::add(&self.bytes_done, n);
    }

    /// Set `--max-transfer` (once, before any byte moves).
    pub fn set_cap(&self, max: Option<u64>) {
        if let Some(max) = max {
            let _ = self.cap.set(max);
        }
    }

    /// Whether `--max-transfer` is reached: more bytes moved than it allows.
    pub fn over_cap(&self) -> bool {
        self.cap
            .get()
            .is_some_and(|&cap| get(&self.bytes_moved) > cap)
    }

    /// Wait until `--max-transfer` is reached (for ever without one).
    pub async fn cap_reached(&self) {
        if self.cap.get().is_none() {
            return std::future::pending().await;
        }
        while !self.over_cap() {
            self.reached.notified().await;
        }
    }

    /// Integrity resends plus request retries.
    pub fn all_retries(&self) -> u64 {
        get(&self.retries) + self.requests.as_ref().map_or(0, |r| get(&r.retries))
    }

    pub fn start_one(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// One progress line: bytes, percent, rate, ETA, files, checks, in flight, errors, retries.
    pub fn line(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let (done, total) = (get(&self.bytes_done), get(&self.bytes_total));
        let rate = done as f64 / elapsed;
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        let eta = if done >= total {
            "-".to_string()
        } else if rate > 0.0 {
            humantime::format_duration(Duration::from_secs(((total - done) as f64 / rate) as u64))
                .to_string()
        } else {
            "-".to_string()
        };
        let mut s = format!(
            "Transferred: {} / {}, {pct}%, {}/s, ETA {eta} | files {}/{}",
            format_size(done, BINARY),
            format_size(total, BINARY),
            format_size(rate as u64, BINARY),
            get(&self.files_done),
            get(&self.files_total),
        );
        if get(&self.checks_total) > 0 {
            s.push_str(&format!(
                " | checks {}/{}",
                get(&self.checks_done),
                get(&self.checks_total)
            ));
        }
        if STATS_STYLE.get().is_some_and(|st| st.one_line) {
            return s;
        }
        s.push_str(&format!(
            " | in flight {} | errors {} | retries {} | elapsed {}",
            self.in_flight.load(Ordering::Relaxed).max(0),
            get(&self.errors),
            self.all_retries(),
            humantime::format_duration(Duration::from_secs(self.started.elapsed().as_secs())),
        ));
        s
    }
}

/// How progress lines look: `--stats-log-level` and `--stats-one-line`.
#[derive(Debug, Clone, Copy)]
pub struct StatsStyle {
    pub level: Level,
    pub one_line: bool,
}

static STATS_STYLE: std::sync::OnceLock<StatsStyle> = std::sync::OnceLock::new();

/// Set how progress lines look, once, before any is printed.
pub fn set_stats_style(style: StatsStyle) {
    let _ = STATS_STYLE.set(style);
}

/// Log one progress line at the chosen level (NOTICE unless `--stats-log-level`).
fn log_stats(line: &str) {
    match STATS_STYLE.get().map_or(Level::WARN, |s| s.level) {
        Level::ERROR => tracing::error!("{line}"),
        Level::INFO => tracing::info!("{line}"),
        Level::DEBUG | Level::TRACE => tracing::debug!("{line}"),
        _ => tracing::warn!("{line}"),
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// One line redrawn in place (stderr is a terminal and `--progress` was given).
    Live,
    /// One plain log line per interval.
    Lines,
    Off,
}

impl ProgressMode {
    pub fn choose(progress: bool, quiet: bool) -> ProgressMode {
        if quiet {
            ProgressMode::Off
        } else if progress && std::io::stderr().is_terminal() {
            ProgressMode::Live
        } else {
            ProgressMode::Lines
        }
    }
}

/// Prints progress until dropped.
pub struct Progress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub fn start(stats: Arc<Stats>, mode: ProgressMode, interval: Duration) -> Progress {
        if mode == ProgressMode::Off || interval.is_zero() {
            return Progress {
                stop: None,
                task: None,
            };
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let period = if mode == ProgressMode::Live {
                Duration::from_millis(500)
            } else {
                interval
            };
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tick.tick() => {
                        if mode == ProgressMode::Live {
                            eprint!("\r\x1b[2K{}", stats.line());
                        } else {
                            log_stats(&stats.line());
                        }
                    }
                }
            }
            if mode == ProgressMode::Live {
                eprint!("\r\x1b[2K");
            }
        });
        Progress {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stop and clear the live line.
    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Log line format: rclone's text layout, or JSON.
#[derive(Debug, Clone, Copy)]
pub struct LogFormat {
    pub json: bool,
}

/// rclone's level names: WARN is shown as NOTICE, rclone's default level.
fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "ERROR",
        Level::WARN => "NOTICE",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: Vec<(String, String)>,
}

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }
}

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut v = MessageVisitor::default();
        event.record(&mut v);
        let now = chrono::Local::now();
        let level = level_name(event.metadata().level());
        // Every record goes through the same gate: secrets hidden, and (text) control
        // characters escaped, so one record is always one line.
        if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("time".into(), now.to_rfc3339().into());
            obj.insert("level".into(), level.to_ascii_lowercase().into());
            obj.insert(
                "msg".into(),
                crate::report::redact::scrub(&v.message).into_owned().into(),
            );
            for (k, val) in v.fields {
                obj.insert(k, crate::report::redact::scrub(&val).into_owned().into());
            }
            writeln!(w, "{}", serde_json::Value::Object(obj))
        } else {
            let mut line = format!(
                "{} {:<6}: {}",
                now.format("%Y/%m/%d %H:%M:%S"),
                level,
                v.message
            );
            for (k, val) in v.fields {
                line.push_str(&format!(" {k}={val}"));
            }
            writeln!(w, "{}", crate::report::redact::safe(&line))
        }
    }
}

/// Install the global logger. `level` is the most verbose level shown.
///
/// Libraries (the SDK, hyper) log at most NOTICE unless `all` asks for everything (`-vvv`).
/// With `file` (`--log-file`), records are appended there instead of stderr.
pub fn init_logging(level: Level, all: bool, json: bool, file: Option<std::fs::File>) {
    let lib = if all { level } else { level.min(Level::WARN) };
    // The credential chain warns for every provider that has nothing (IMDS, SSO, …); when
    // none has credentials, the request's error says so, with the fix.
    let chain = if all { "" } else { ",aws_config=error" };
    let filter = tracing_subscriber::EnvFilter::new(format!(
        "{lib},s3ferry={level}{chain}",
        lib = lib.as_str().to_ascii_lowercase(),
        level = level.as_str().to_ascii_lowercase()
    ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(LogFormat { json });
    let _ = match file {
        Some(f) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// Human-readable bytes for messages.
pub fn bytes(n: u64) -> String {
    format_size(n, BINARY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_has_the_fields_operators_grep() {
        let s = Stats::default();
        Stats::add(&s.bytes_total, 4 << 20);
        Stats::add(&s.bytes_done, 1 << 20);
        Stats::add(&s.files_total, 4);
        Stats::add(&s.files_done, 1);
        let _f = s.start_one();
        let line = s.line();
        for part in [
            "Transferred: 1 MiB / 4 MiB, 25%",
            "files 1/4",
            "in flight 1",
            "errors 0",
            "retries 0",
            "ETA",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
    }

    #[test]
    fn levels_map_to_rclone_names() {
        assert_eq!(level_name(&Level::WARN), "NOTICE");
        assert_eq!(level_name(&Level::ERROR), "ERROR");
    }
}
