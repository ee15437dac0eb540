//! The Prometheus endpoint (`--metrics-addr`): a long migration watched from outside the pod,
//! without reading its log. Every scrape reads the running command's [`Stats`], the same
//! counters the progress line shows, so the two never disagree and nothing is counted twice.
//!
//! Names follow rclone's (`rclone_bytes_transferred_total`, `rclone_checked_files_total`, …)
//! wherever rclone has one, so that dashboards built for the rclone Job keep working; what
//! rclone does not have is named `s3ferry_…`. The text is OpenMetrics, encoded by the
//! Prometheus project's own client library; the HTTP is hyper's.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::report::Stats;

/// The running command's counters (none before it starts).
static CURRENT: Mutex<Option<Arc<Stats>>> = Mutex::new(None);

/// Connections served at once; more are closed at once (a scraper needs one).
const CONNECTIONS: usize = 8;
/// A connection is closed after this long, whatever it is doing: every wait has a bound.
const CONNECTION_FOR: Duration = Duration::from_secs(30);

/// Make `stats` what the endpoint shows.
pub fn publish(stats: &Arc<Stats>) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats.clone());
}

fn current() -> Option<Arc<Stats>> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The collector that turns [`Stats`] into metrics at each scrape.
#[derive(Debug)]
struct RunCollector;

/// One metric's value at a scrape.
enum Value<'a> {
    Counter(u64),
    Gauge(f64),
    /// A counter per value of one label: `name{label="…"} n`.
    Labelled(&'a str, Vec<(&'a str, u64)>),
}

impl Value<'_> {
    fn encode(&self, enc: &mut DescriptorEncoder, name: &str, help: &str) -> std::fmt::Result {
        match self {
            Value::Counter(n) => {
                let c = ConstCounter::new(*n);
                c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
            }
            Value::Gauge(v) => {
                let g = ConstGauge::new(*v);
                g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
            }
            Value::Labelled(label, values) => {
                let kind = ConstCounter::new(0u64).metric_type();
                let mut family = enc.encode_descriptor(name, help, None, kind)?;
                for &(v, n) in values {
                    let labels = vec![(*label, v)];
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
                Ok(())
            }
        }
    }
}

/// Every metric of a run, read from its counters: rclone's names first, then ours.
fn metrics(s: &Stats) -> Vec<(&'static str, &'static str, Value<'static>)> {
    use Value::{Counter, Gauge, Labelled};
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let elapsed = s.started.elapsed().as_secs_f64();
    let r = s
        .requests
        .as_ref()
        .map(|r| r.snapshot())
        .unwrap_or_default();
    let mut all = vec![
        ("s3ferry_running", "1 once a command runs", Gauge(1.0)),
        (
            "rclone_bytes_transferred",
            "Bytes sent or received over the network",
            Counter(get(&s.bytes_moved)),
        ),
        (
            "rclone_files_transferred",
            "Files uploaded, restored or copied",
            Counter(get(&s.files_done)),
        ),
        (
            "rclone_checked_files",
            "Files checked (check)",
            Counter(get(&s.checks_done)),
        ),
        (
            "rclone_errors",
            "Files or operations that failed",
            Counter(get(&s.errors)),
        ),
        (
            "rclone_files_deleted",
            "Objects or files deleted",
            Counter(get(&s.deletes)),
        ),
        (
            "rclone_speed",
            "Average bytes per second since the start",
            Gauge(get(&s.bytes_done) as f64 / elapsed.max(0.001)),
        ),
        (
            "s3ferry_transfers_in_flight",
            "Files being transferred or checked now",
            Gauge(s.in_flight.load(Ordering::Relaxed).max(0) as f64),
        ),
        (
            "s3ferry_planned_files",
            "Files the run has found to transfer or check so far",
            Gauge((get(&s.files_total) + get(&s.checks_total)) as f64),
        ),
        (
            "s3ferry_planned_bytes",
            "Bytes the run has found to transfer or check so far",
            Gauge(get(&s.bytes_total) as f64),
        ),
        (
            "s3ferry_done_bytes",
            "Bytes done: moved, reused from an interrupted transfer, or found unchanged",
            Counter(get(&s.bytes_done)),
        ),
        (
            "s3ferry_reused_bytes",
            "Bytes of parts reused from interrupted transfers",
            Counter(get(&s.bytes_reused)),
        ),
        (
            "s3ferry_proofs",
            "Files proven, by what proved them",
            Labelled(
                "kind",
                vec![
                    ("etag", get(&s.proofs.etag)),
                    ("checksum", get(&s.proofs.checksum)),
                    ("download", get(&s.proofs.download)),
                    ("not_comparable", get(&s.proofs.not_comparable)),
                ],
            ),
        ),
        (
            "s3ferry_retries",
            "Attempts after the first: files or parts resent after an integrity failure, and requests retried",
            Labelled(
                "kind",
                vec![("integrity", get(&s.retries)), ("request", r.retries)],
            ),
        ),
        (
            "s3ferry_requests",
            "S3 requests sent, by operation",
            Labelled(
                "op",
                vec![
                    ("list", r.list),
                    ("head", r.head),
                    ("get", r.get),
                    ("put", r.put),
                    ("create_multipart", r.create_multipart),
                    ("upload_part", r.upload_part),
                    ("copy", r.copy),
                    ("complete", r.complete),
                    ("abort", r.abort),
                    ("list_uploads", r.list_uploads),
                    ("list_parts", r.list_parts),
                    ("delete", r.delete),
                ],
            ),
        ),
    ];
    if let Some((used, total)) = s.budget_use() {
        all.push((
            "s3ferry_budget_used_bytes",
            "Bytes of the memory budget held by reads and uploads now",
            Gauge(used as f64),
        ));
        all.push((
            "s3ferry_budget_bytes",
            "The memory budget for file data (--max-buffer-memory)",
            Gauge(total as f64),
        ));
    }
    all.push((
        "s3ferry_elapsed_seconds",
        "Seconds since the command started",
        Gauge(elapsed),
    ));
    all
}

impl Collector for RunCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some(s) = current() else {
            return Value::Gauge(0.0).encode(&mut enc, "s3ferry_running", "1 once a command runs");
        };
        for (name, help, value) in metrics(&s) {
            value.encode(&mut enc, name, help)?;
        }
        Ok(())
    }
}

/// The metrics as served: OpenMetrics text.
pub fn render() -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(RunCollector));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// The endpoint could not be opened: the address is taken or not ours.
#[derive(Debug, thiserror::Error)]
#[error(
    "--metrics-addr {addr}: {source}: give a free host:port (e.g. 0.0.0.0:9090 in a pod, 127.0.0.1:0 for any free port)"
)]
pub struct BindError {
    addr: String,
    source: std::io::Error,
}

/// Listen on `addr` and serve `/metrics` until the process ends. Returns the address bound
/// (the port is chosen when `addr` asks for port 0).
pub async fn serve(addr: &str) -> Result<SocketAddr, BindError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| BindError {
        addr: addr.to_string(),
        source,
    })?;
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors, say: wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue; // dropped: closed
            };
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper::service::service_fn(answer),
                );
                let _ = tokio::time::timeout(CONNECTION_FOR, conn).await;
                drop(slot);
            });
        }
    });
    Ok(bound)
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/metrics") => Response::builder()
            .header(
                hyper::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(Full::new(Bytes::from(render()))),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"s3ferry serves /metrics\n"))),
    };
    Ok(response.expect("a response of constant parts"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_s_counters_are_rendered_with_rclone_s_names() {
        let stats = Arc::new(Stats::default());
        Stats::add(&stats.bytes_moved, 1234);
        Stats::add(&stats.files_done, 3);
        Stats::add(&stats.proofs.checksum, 2);
        stats.watch_budget(|| (1 << 20, 64 << 20));
        publish(&stats);
        let text = render();
        for line in [
            "rclone_bytes_transferred_total 1234",
            "rclone_files_transferred_total 3",
            "s3ferry_proofs_total{kind=\"checksum\"} 2",
            "s3ferry_budget_used_bytes 1048576",
            "s3ferry_budget_bytes 67108864",
            "# TYPE rclone_errors counter",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(line)),
                "{line:?} not in\n{text}"
            );
        }
    }
}
