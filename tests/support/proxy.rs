//! A fault-injecting TCP proxy for HTTP/1.1 on 127.0.0.1: forwards to the test server and flips
//! one byte in the body of every other PUT request (the 1st, 3rd, 5th, …), `budget` times. moto stores whatever arrives (it does
//! not check Content-MD5), so this shows that s3ferry's own ETag checks catch corruption.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread;

pub struct Proxy {
    pub port: u16,
    /// How many requests were corrupted or dropped.
    pub corrupted: Arc<AtomicI64>,
}

/// What to do to a targeted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Flip one body byte and forward it.
    Corrupt,
    /// Close the connection instead of forwarding (a reset mid-request).
    Drop,
    /// Answer `500 Internal Server Error` with an empty body instead of forwarding.
    Status500,
}

/// Start a proxy to `upstream` that corrupts up to `budget` PUT bodies (-1 = no limit);
/// `every_other` corrupts only odd-numbered PUTs, otherwise every PUT.
pub fn corrupting_proxy(upstream: u16, budget: i64, every_other: bool) -> Proxy {
    faulty_proxy(upstream, budget, every_other, Fault::Corrupt)
}

/// Start a proxy that applies `fault` to up to `budget` PUT requests.
pub fn faulty_proxy(upstream: u16, budget: i64, every_other: bool, fault: Fault) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let left = Arc::new(AtomicI64::new(budget));
    let corrupted = Arc::new(AtomicI64::new(0));
    let seen = Arc::new(AtomicI64::new(0));
    let c2 = corrupted.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (left, corrupted, seen) = (left.clone(), c2.clone(), seen.clone());
            let (c_read, s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let step = if every_other { 2 } else { 1 };
            thread::spawn(move || requests(c_read, s_write, &left, &corrupted, &seen, step, fault));
            thread::spawn(move || pump(server, client));
        }
    });
    Proxy { port, corrupted }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Forward requests one by one: headers, then exactly Content-Length body bytes.
fn requests(
    mut from: TcpStream,
    mut to: TcpStream,
    left: &AtomicI64,
    corrupted: &AtomicI64,
    seen: &AtomicI64,
    step: i64,
    fault: Fault,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Read until the end of the headers.
        let header_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = to.write_all(&pending);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..header_end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        while pending.len() < header_end + len {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        let mut request: Vec<u8> = pending.drain(..header_end + len).collect();
        if head.starts_with("put ") && len > 0 && seen.fetch_add(1, Ordering::SeqCst) % step == 0 {
            let take = left.fetch_sub(1, Ordering::SeqCst);
            if take != 0 {
                corrupted.fetch_add(1, Ordering::SeqCst);
                match fault {
                    Fault::Drop => {
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    Fault::Status500 => {
                        // The client sends one request at a time, so this answer cannot
                        // interleave with a forwarded one.
                        let answer =
                            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";
                        if from.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                        continue;
                    }
                    Fault::Corrupt => {}
                }
                request[header_end + len / 2] ^= 0x55;
            } else {
                left.store(0, Ordering::SeqCst);
            }
        }
        if to.write_all(&request).is_err() {
            return;
        }
    }
}

/// A proxy that records every request's head and answers as a bucket whose ETags are not
/// MD5s (SSE-KMS on AWS, MinIO with KES, several gateways): every ETag the server returns, in
/// headers and in XML, keeps its length but has each hex digit moved to `g`–`v`, so no client
/// can read an MD5 in it. Checksums and bodies pass unchanged.
pub struct Recorder {
    pub port: u16,
    /// Each request's head (request line and headers), in the order they arrived.
    pub heads: Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn opaque_etag_proxy(upstream: u16) -> Recorder {
    etag_proxy(upstream, false)
}

/// [`opaque_etag_proxy`] for multipart objects only (ETags `…-N`): a gateway whose multipart
/// ETags are not composite MD5s, while its part ETags (which a client names back in
/// CompleteMultipartUpload) stay the parts' MD5s.
pub fn opaque_multipart_etag_proxy(upstream: u16) -> Recorder {
    etag_proxy(upstream, true)
}

/// A proxy that only records each request's head.
pub fn recording_proxy(upstream: u16) -> Recorder {
    etag_proxy_as(upstream, None)
}

fn etag_proxy(upstream: u16, multipart_only: bool) -> Recorder {
    etag_proxy_as(upstream, Some(multipart_only))
}

/// `disguise`: `None` passes answers unchanged; `Some(multipart_only)` makes ETags opaque.
fn etag_proxy_as(upstream: u16, disguise_etags: Option<bool>) -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = heads.clone();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (c_read, s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let heads = h2.clone();
            thread::spawn(move || record(c_read, s_write, &heads));
            match disguise_etags {
                Some(multipart_only) => {
                    thread::spawn(move || disguise(server, client, multipart_only));
                }
                None => {
                    thread::spawn(move || pump(server, client));
                }
            }
        }
    });
    Recorder { port, heads }
}

/// Forward requests unchanged, keeping each head.
fn record(mut from: TcpStream, mut to: TcpStream, heads: &std::sync::Mutex<Vec<String>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let header_end = loop {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..header_end]).to_string();
        let len: usize = head
            .to_ascii_lowercase()
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
            .unwrap_or(0);
        heads.lock().unwrap().push(head);
        while pending.len() < header_end + len {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        let request: Vec<u8> = pending.drain(..header_end + len).collect();
        if to.write_all(&request).is_err() {
            return;
        }
    }
}

/// Pass answers back with every quoted 32-digit hex run (an ETag) made opaque. A tail that
/// may hold the start of one waits for the next read, or 20 ms of quiet.
fn disguise(mut from: TcpStream, mut to: TcpStream, multipart_only: bool) {
    let _ = from.set_read_timeout(Some(std::time::Duration::from_millis(20)));
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                make_opaque(&mut pending, multipart_only);
                let keep = pending
                    .iter()
                    .rev()
                    .take(40)
                    .position(|&b| b == b'"' || b == b'&')
                    .map_or(0, |p| p + 1);
                let send = pending.len() - keep;
                if to.write_all(&pending[..send]).is_err() {
                    return;
                }
                pending.drain(..send);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !pending.is_empty() && to.write_all(&pending).is_err() {
                    return;
                }
                pending.clear();
            }
            Err(_) => break,
        }
    }
    let _ = to.write_all(&pending);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Rewrite, in place, each `"` or `&quot;` followed by 32 hex digits (and `-`, with
/// `multipart_only`): the digits become `g`–`v` (same length, so framing is untouched).
pub fn make_opaque(buf: &mut [u8], multipart_only: bool) {
    let mut i = 0;
    while i < buf.len() {
        let start = if buf[i] == b'"' {
            Some(i + 1)
        } else if buf[i..].starts_with(b"&quot;") {
            Some(i + 6)
        } else {
            None
        };
        if let Some(s) = start
            && s + 32 <= buf.len()
            && buf[s..s + 32].iter().all(u8::is_ascii_hexdigit)
            && (!multipart_only || buf.get(s + 32) == Some(&b'-'))
        {
            for b in &mut buf[s..s + 32] {
                let v = (*b as char).to_digit(16).unwrap() as u8;
                *b = b'g' + v;
            }
            i = s + 32;
            continue;
        }
        i += 1;
    }
}
