//! Timeouts under every S3 request, so that no server can hang a run: a connect timeout
//! (`--contimeout`) and an idle timeout (`--timeout`) that fires when no byte has moved in
//! either direction on a connection for that long, whatever the request is doing (sending a
//! part, waiting for an answer, streaming a body). Both have rclone's names and defaults.
//!
//! The idle timeout lives on the TCP stream, below TLS and HTTP, because that is the only
//! place that sees every byte of every request, streamed bodies included; a timer per request
//! would have to guess how long a healthy transfer takes. The whole-request ceiling that
//! catches a server dripping one byte at a time is set per request by the S3 layer
//! ([`ceiling`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::dns::Dns;
use crate::s3::bwlimit::{Limiter, Way};
use std::sync::Arc;

/// rclone's defaults: `--contimeout 1m`, `--timeout 5m`.
pub const DEFAULT_CONNECT: Duration = Duration::from_secs(60);
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// The slowest transfer rate the whole-request ceiling allows for, per request.
pub const FLOOR_BYTES_PER_SEC: u64 = 16 * 1024;

/// How messages name the ceiling.
pub const CEILING: &str = "the request's ceiling (2 × --timeout + its size at 16 KiB/s)";

/// The longest one request attempt may take, sending `bytes` (body out or in): twice the idle
/// timeout, plus the body at [`FLOOR_BYTES_PER_SEC`]. Healthy transfers finish far sooner;
/// this ends a server that keeps a connection barely alive. `None` when timeouts are off.
pub fn ceiling(idle: Option<Duration>, bytes: u64) -> Option<Duration> {
    idle.map(|t| t * 2 + Duration::from_secs(bytes / FLOOR_BYTES_PER_SEC))
}

/// Which timeout fired, and where: the message names the endpoint and the flag.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TimedOut {
    #[error("could not connect to {endpoint} within {} (--contimeout)", show(*after))]
    Connect { endpoint: String, after: Duration },
    #[error("no data from or to {endpoint} for {} (--timeout): the server stalled", show(*after))]
    Idle { endpoint: String, after: Duration },
}

pub fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The TCP connector with both timeouts. `None` turns one off (rclone: `0`).
#[derive(Clone, Debug)]
pub struct TimeoutConnector {
    inner: HttpConnector<Dns>,
    connect: Option<Duration>,
    idle: Option<Duration>,
    /// `--bwlimit`, shared by every connection.
    limit: Option<Arc<Limiter>>,
}

impl TimeoutConnector {
    pub fn new(
        inner: HttpConnector<Dns>,
        connect: Option<Duration>,
        idle: Option<Duration>,
        limit: Option<Arc<Limiter>>,
    ) -> Self {
        TimeoutConnector {
            inner,
            connect,
            idle,
            limit,
        }
    }
}

/// `host:port` of a request, for messages.
pub fn endpoint_of(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("?");
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    format!("{host}:{port}")
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for TimeoutConnector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let endpoint = endpoint_of(&uri);
        let connecting = tower_service::Service::<Uri>::call(&mut self.inner, uri);
        let (connect, idle, limit) = (self.connect, self.idle, self.limit.clone());
        Box::pin(async move {
            let io = match connect {
                Some(after) => match tokio::time::timeout(after, connecting).await {
                    Ok(r) => r?,
                    Err(_) => return Err(Box::new(TimedOut::Connect { endpoint, after }) as _),
                },
                None => connecting.await?,
            };
            let mut stream = Idle::new(io.into_inner(), idle, endpoint);
            stream.limit = limit;
            Ok(Conn(TokioIo::new(stream)))
        })
    }
}

/// A connection as hyper sees it.
#[derive(Debug)]
pub struct Conn(TokioIo<Idle>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.0.inner().stream.connected()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

/// A TCP stream that fails with [`TimedOut::Idle`] once a read or write has been pending with
/// no byte moving in either direction for `after`. The timer is armed by the first operation
/// that has to wait and pushed back by every byte that moves, either way; it only ends an
/// operation that is waiting when it runs out.
#[derive(Debug)]
pub struct Idle {
    stream: TcpStream,
    after: Option<Duration>,
    endpoint: String,
    /// Armed when an operation first has to wait; pushed back on progress.
    timer: Option<Pin<Box<Sleep>>>,
    /// `--bwlimit`, and the wait for its tokens.
    limit: Option<Arc<Limiter>>,
    throttle: Option<Pin<Box<Sleep>>>,
}

impl Idle {
    fn new(stream: TcpStream, after: Option<Duration>, endpoint: String) -> Idle {
        Idle {
            stream,
            after,
            endpoint,
            timer: None,
            limit: None,
            throttle: None,
        }
    }

    /// How many of `want` bytes the bandwidth limit lets move now; `Pending` (woken when
    /// tokens are due) when none.
    fn allowance(&mut self, way: Way, want: usize, cx: &mut Context<'_>) -> Poll<usize> {
        let Some(limit) = &self.limit else {
            return Poll::Ready(want);
        };
        if want == 0 {
            return Poll::Ready(0);
        }
        loop {
            if let Some(t) = self.throttle.as_mut() {
                if t.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.throttle = None;
            }
            match limit.take(way, want) {
                Ok(n) => return Poll::Ready(n),
                Err(wait) => {
                    self.throttle = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
        }
    }

    fn unused(&self, way: Way, n: usize) {
        if let Some(l) = &self.limit {
            l.give_back(way, n);
        }
    }

    /// After the inner operation returned `Pending`: arm the timer if it is off, and fail if
    /// it has run out.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let Some(after) = self.after else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + after)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.timer = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    TimedOut::Idle {
                        endpoint: self.endpoint.clone(),
                        after,
                    },
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Bytes moved: push the deadline back. The timer is kept, not dropped, so that an
    /// operation pending in the other direction (waiting for an answer while the body goes
    /// out) stays woken by it.
    fn progress(&mut self) {
        if let (Some(timer), Some(after)) = (self.timer.as_mut(), self.after) {
            timer.as_mut().reset(Instant::now() + after);
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = match this.allowance(Way::Down, buf.remaining(), cx) {
            Poll::Ready(n) => n,
            Poll::Pending => return Poll::Pending,
        };
        let mut part = buf.take(n);
        let r = Pin::new(&mut this.stream).poll_read(cx, &mut part);
        let got = part.filled().len();
        this.unused(Way::Down, n - got);
        match r {
            Poll::Pending => this.pending(cx),
            ready => {
                // SAFETY: the inner stream initialised and filled `got` bytes of `part`,
                // which is the start of `buf`'s unfilled space.
                unsafe { buf.assume_init(got) };
                buf.advance(got);
                this.progress();
                ready
            }
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = match this.allowance(Way::Up, buf.len(), cx) {
            Poll::Ready(n) => n,
            Poll::Pending => return Poll::Pending,
        };
        match Pin::new(&mut this.stream).poll_write(cx, &buf[..n]) {
            Poll::Pending => {
                this.unused(Way::Up, n);
                this.pending(cx)
            }
            ready => {
                if let Poll::Ready(Ok(wrote)) = &ready {
                    this.unused(Way::Up, n - wrote);
                } else {
                    this.unused(Way::Up, n);
                }
                this.progress();
                ready
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.limit.is_some() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.pending(cx),
            ready => {
                this.progress();
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.limit.is_none() && self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.pending(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(after: Duration) -> (Idle, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        (
            Idle::new(c.unwrap(), Some(after), addr.to_string()),
            s.unwrap().0,
        )
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_naming_the_endpoint() {
        let (mut idle, _peer) = pair(Duration::from_millis(200)).await;
        let start = std::time::Instant::now();
        let e = idle.read(&mut [0u8; 8]).await.unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let msg = e.to_string();
        assert!(
            msg.contains("127.0.0.1:") && msg.contains("--timeout"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn data_trickling_in_keeps_the_connection_alive() {
        let (mut idle, mut peer) = pair(Duration::from_millis(300)).await;
        let writer = tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                peer.write_all(b"x").await.unwrap();
            }
            peer
        });
        let mut got = 0;
        while got < 6 {
            got += idle.read(&mut [0u8; 8]).await.unwrap();
        }
        // 600 ms in all, past the 300 ms timeout, but never 300 ms without a byte.
        let _peer = writer.await.unwrap();
        assert!(
            idle.read(&mut [0u8; 8]).await.is_err(),
            "then silence times out"
        );
    }

    #[test]
    fn ceilings_grow_with_the_body() {
        let t = Some(Duration::from_secs(300));
        assert_eq!(ceiling(t, 0), Some(Duration::from_secs(600)));
        assert_eq!(ceiling(t, 16 << 20), Some(Duration::from_secs(600 + 1024)));
        assert_eq!(ceiling(None, 1 << 30), None);
    }
}
