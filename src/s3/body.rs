//! Request bodies counted as the connection takes them.
//!
//! Progress and `--max-transfer` are about bytes sent, not requests finished: a 200 MiB
//! PUT at `--bwlimit 5M` is 40 seconds of progress, and a hard cutoff must be able to stop
//! it halfway. So the body of a PUT or a part is handed to the HTTP client in slices of
//! [`SLICE`] bytes (views of the same buffer: no copy), each counted into a [`Tally`] as the
//! client takes it. A request that fails takes its bytes back, and so does every SDK retry
//! before it sends the body again, so what the tally holds at the end is what arrived.
//!
//! A request abandoned before its answer (its task stopped by a hard cutoff) must stop
//! sending too: the HTTP connection, not the request, owns the body and would otherwise go on
//! sending it to the end, and the server would store an object the run never counted. So the
//! body ends in an error at its next slice once its request is dropped, and the connection is
//! closed short of the promised length.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Bytes handed to the connection at a time.
pub const SLICE: usize = 64 << 10;

/// Where sent bytes are counted.
pub trait Tally: Send + Sync {
    /// `n` more bytes were sent.
    fn sent(&self, n: u64);
    /// `n` bytes counted as sent did not arrive (the request failed, or is sent again).
    fn unsent(&self, n: u64);
}

/// A run's counters take what every request sends: the progress line and `--max-transfer`
/// count bytes as the server takes them.
impl Tally for crate::report::Stats {
    fn sent(&self, n: u64) {
        self.moved(n);
    }
    fn unsent(&self, n: u64) {
        self.unmoved(n);
    }
}

/// One request's body, counted into `tally`.
pub struct Counted {
    tally: Arc<dyn Tally>,
    /// This request's bytes counted so far, across the SDK's attempts.
    counted: Arc<AtomicU64>,
    len: u64,
    /// Set when this is dropped before the request ended: its body stops at the next slice.
    abandoned: Arc<AtomicBool>,
    settled: AtomicBool,
}

impl Counted {
    /// The body `data` for one request, whose bytes go to `tally` as they are sent.
    pub fn new(data: Bytes, tally: Arc<dyn Tally>) -> (Counted, ByteStream) {
        let counted = Arc::new(AtomicU64::new(0));
        let abandoned = Arc::new(AtomicBool::new(false));
        let len = data.len() as u64;
        let (t, c, a) = (tally.clone(), counted.clone(), abandoned.clone());
        let body = SdkBody::retryable(move || {
            // A new attempt: what the last one sent did not arrive.
            t.unsent(c.swap(0, Ordering::Relaxed));
            SdkBody::from_body_1_x(Slices {
                data: data.clone(),
                tally: t.clone(),
                counted: c.clone(),
                abandoned: a.clone(),
            })
        });
        (
            Counted {
                tally,
                counted,
                len,
                abandoned,
                settled: AtomicBool::new(false),
            },
            ByteStream::new(body),
        )
    }

    /// The body `data` counted only when the request succeeded: for signed payloads, whose
    /// hash the SDK computes over the whole buffer before sending.
    pub fn at_end(data: Bytes, tally: Arc<dyn Tally>) -> (Counted, ByteStream) {
        let c = Counted {
            tally,
            counted: Arc::new(AtomicU64::new(0)),
            len: data.len() as u64,
            abandoned: Arc::new(AtomicBool::new(false)),
            settled: AtomicBool::new(false),
        };
        (c, ByteStream::from(data))
    }

    /// Count the request's bytes as it ended: all of them once if it succeeded, else none.
    pub fn settle(&self, ok: bool) {
        self.settled.store(true, Ordering::Relaxed);
        if ok { self.arrived() } else { self.failed() }
    }

    /// The request succeeded: every byte counts, once.
    pub fn arrived(&self) {
        let before = self.counted.swap(self.len, Ordering::Relaxed);
        if before < self.len {
            self.tally.sent(self.len - before);
        } else if before > self.len {
            self.tally.unsent(before - self.len);
        }
    }

    /// The request failed: none of it counts.
    pub fn failed(&self) {
        self.tally.unsent(self.counted.swap(0, Ordering::Relaxed));
    }
}

/// A request dropped before it ended (a hard cutoff): none of it counts, and its body stops.
impl Drop for Counted {
    fn drop(&mut self) {
        if !self.settled.load(Ordering::Relaxed) {
            self.abandoned.store(true, Ordering::Relaxed);
            self.failed();
        }
    }
}

/// The bytes of one attempt, a slice at a time.
struct Slices {
    data: Bytes,
    tally: Arc<dyn Tally>,
    counted: Arc<AtomicU64>,
    abandoned: Arc<AtomicBool>,
}

impl Body for Slices {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.data.is_empty() {
            return Poll::Ready(None);
        }
        if this.abandoned.load(Ordering::Relaxed) {
            this.data = Bytes::new();
            return Poll::Ready(Some(Err(std::io::Error::other(
                "the request was abandoned: its body stops here",
            ))));
        }
        let slice = this.data.split_to(this.data.len().min(SLICE));
        let n = slice.len() as u64;
        this.counted.fetch_add(n, Ordering::Relaxed);
        this.tally.sent(n);
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Sum(AtomicU64);

    impl Tally for Sum {
        fn sent(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
        fn unsent(&self, n: u64) {
            self.0.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Bytes count as the body is read, a slice at a time; an attempt sent again takes back
    /// what the one before it counted; success counts each byte once, failure none.
    #[tokio::test]
    async fn bytes_count_as_they_are_taken_and_once() {
        let sum = Arc::new(Sum::default());
        let data = Bytes::from(vec![7u8; 3 * SLICE + 5]);
        let (c, stream) = Counted::new(data.clone(), sum.clone());
        let mut body = stream.into_inner();
        assert_eq!(body.content_length(), Some(data.len() as u64));
        let retry = body.try_clone().expect("retryable");
        let first = futures::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let n = first.unwrap().unwrap().into_data().unwrap().len();
        assert_eq!(n, SLICE);
        assert_eq!(sum.0.load(Ordering::Relaxed), SLICE as u64);
        drop(retry);
        // The SDK sends it again: the first attempt's slice no longer counts.
        let again = body.try_clone().expect("retryable");
        assert_eq!(sum.0.load(Ordering::Relaxed), 0);
        let all = ByteStream::new(again).collect().await.unwrap().into_bytes();
        assert_eq!(all, data);
        assert_eq!(sum.0.load(Ordering::Relaxed), data.len() as u64);
        c.arrived();
        assert_eq!(sum.0.load(Ordering::Relaxed), data.len() as u64);
        c.failed();
        assert_eq!(sum.0.load(Ordering::Relaxed), 0);
    }

    /// A request dropped mid-body (a hard cutoff stops its task) takes its bytes back, and
    /// its body, which the connection owns, ends in an error at the next slice instead of
    /// going on to the end.
    #[tokio::test]
    async fn an_abandoned_request_stops_its_body() {
        let sum = Arc::new(Sum::default());
        let data = Bytes::from(vec![7u8; 4 * SLICE]);
        let (c, stream) = Counted::new(data, sum.clone());
        let mut body = stream.into_inner();
        async fn next(
            b: &mut SdkBody,
        ) -> Option<Result<Frame<Bytes>, aws_smithy_types::body::Error>> {
            futures::future::poll_fn(|cx| Pin::new(&mut *b).poll_frame(cx)).await
        }
        assert!(next(&mut body).await.unwrap().is_ok());
        assert_eq!(sum.0.load(Ordering::Relaxed), SLICE as u64);
        drop(c);
        assert_eq!(sum.0.load(Ordering::Relaxed), 0, "none of it counts");
        assert!(next(&mut body).await.unwrap().is_err(), "the body stops");
        assert!(next(&mut body).await.is_none());
        assert_eq!(sum.0.load(Ordering::Relaxed), 0);
        // A request that ended is not abandoned when dropped.
        let (c, stream) = Counted::new(Bytes::from(vec![1u8; 10]), sum.clone());
        c.settle(true);
        drop(c);
        let all = stream.collect().await.unwrap().into_bytes();
        assert_eq!(all.len(), 10);
    }
}
