//! A misbehaving S3 server on 127.0.0.1, for the faults a real server cannot be made to show
//! on demand: it blackholes, stalls mid-body, answers errors with or without a body, loops
//! continuation tokens, truncates listings without a token and sends bodies that are not XML.
//! Each test scripts it with a closure from the request to the answer; it answers HTTP/1.1,
//! one request at a time per connection, and counts what it was asked.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A request as the script sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Request {
    /// A query parameter's (raw) value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    /// A ListObjectsV2 request (GET on the bucket with `list-type=2`).
    pub fn is_list(&self) -> bool {
        self.method == "GET" && self.param("list-type") == Some("2")
    }
}

/// What the server does with a request.
pub enum Reply {
    /// A complete answer.
    Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Never answer, and do not read the request's body; keep the connection open.
    Blackhole,
    /// Send the status line, headers promising `len` body bytes, then only `sent`, and stall.
    Stall {
        status: u16,
        len: usize,
        sent: Vec<u8>,
    },
    /// Send the status line and headers promising `len` bytes, then one byte every `every`:
    /// never idle, never done.
    Drip { len: usize, every: Duration },
    /// Send a 200 with these headers promising `len` body bytes, then only `sent`, and close
    /// the connection: a body cut short.
    Cut {
        headers: Vec<(String, String)>,
        len: usize,
        sent: Vec<u8>,
    },
}

impl Reply {
    pub fn status(status: u16, body: &str) -> Reply {
        Reply::Answer {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn xml(status: u16, body: String) -> Reply {
        Reply::Answer {
            status,
            headers: vec![("Content-Type".into(), "application/xml".into())],
            body: body.into_bytes(),
        }
    }

    /// An S3 error document.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::xml(
            status,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>r1</RequestId></Error>"
            ),
        )
    }

    /// A ListObjectsV2 page with these keys (1-byte objects), truncation flag and token.
    pub fn list_page(keys: &[&str], truncated: bool, token: Option<&str>) -> Reply {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix></Prefix>",
        );
        x.push_str(&format!(
            "<KeyCount>{}</KeyCount><MaxKeys>1000</MaxKeys>",
            keys.len()
        ));
        x.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
        if let Some(t) = token {
            x.push_str(&format!(
                "<NextContinuationToken>{t}</NextContinuationToken>"
            ));
        }
        for k in keys {
            x.push_str(&format!(
                "<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"0cc175b9c0f1b6a831c399e269772661\"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>"
            ));
        }
        x.push_str("</ListBucketResult>");
        Reply::xml(200, x)
    }

    /// An empty ListMultipartUploads answer.
    pub fn no_uploads() -> Reply {
        Reply::xml(
            200,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>".into(),
        )
    }

    /// A PUT's answer with the ETag the client's Content-MD5 asks for (so a verified upload
    /// succeeds).
    pub fn put_ok(req: &Request) -> Reply {
        use base64::Engine;
        let md5 = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-md5"))
            .and_then(|(_, v)| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(hex::encode)
            .unwrap_or_default();
        Reply::Answer {
            status: 200,
            headers: vec![("ETag".into(), format!("\"{md5}\""))],
            body: Vec::new(),
        }
    }
}

type Script = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A running misbehaving server. Its threads end with the test binary.
pub struct BadServer {
    pub port: u16,
    /// Every request, in order: `METHOD path?query`.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl BadServer {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn count(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| pred(r))
            .count()
    }

    pub fn total(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Start a server that answers the `n`th request (0-based, over all connections) with
/// `script(request, n)`.
pub fn bad_server(script: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> BadServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let seen = requests.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (script, seen) = (script.clone(), seen.clone());
            thread::spawn(move || serve(conn, &*script, &seen));
        }
    });
    BadServer { port, requests }
}

fn serve(conn: TcpStream, script: &Script, seen: &Mutex<Vec<String>>) {
    let mut out = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let body_len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let req = Request {
            method: method.clone(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body_len,
        };
        let n = {
            let mut s = seen.lock().unwrap();
            s.push(format!("{method} {target}"));
            s.len() - 1
        };
        let reply = script(&req, n);
        if matches!(reply, Reply::Blackhole) {
            // Not even the body is read: a client sending one stalls as well.
            loop {
                thread::sleep(Duration::from_secs(3600));
            }
        }
        let mut body = vec![0u8; body_len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        match reply {
            Reply::Answer {
                status,
                headers,
                body,
            } => {
                let mut head = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                if out.write_all(head.as_bytes()).is_err()
                    || (method != "HEAD" && out.write_all(&body).is_err())
                {
                    return;
                }
            }
            Reply::Blackhole => unreachable!("handled before the body"),
            Reply::Drip { len, every } => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {len}\r\n\r\n"
                );
                let _ = out.write_all(head.as_bytes());
                for _ in 0..len {
                    thread::sleep(every);
                    if out.write_all(b" ").is_err() {
                        return;
                    }
                }
                return;
            }
            Reply::Cut { headers, len, sent } => {
                let mut head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n");
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = out.write_all(head.as_bytes());
                let _ = out.write_all(&sent);
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
            Reply::Stall { status, len, sent } => {
                let head = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Type: application/xml\r\nContent-Length: {len}\r\n\r\n"
                );
                let _ = out.write_all(head.as_bytes());
                let _ = out.write_all(&sent);
                loop {
                    thread::sleep(Duration::from_secs(3600));
                }
            }
        }
    }
}

/// A server whose object listings (ListObjectsV2 without a delimiter) `pages` answers; its
/// directory discovery (delimited listings) finds nothing and it has no multipart uploads.
pub fn listing_server(pages: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> BadServer {
    bad_server(move |req, _| {
        if req.is_list() && !req.has("delimiter") {
            pages(req)
        } else if req.is_list() {
            Reply::list_page(&[], false, None)
        } else {
            Reply::no_uploads()
        }
    })
}

/// A TCP port that accepts no connection: a listener whose backlog is full, so a connect
/// waits for the SYN to be answered and never is (what a blackholed route looks like). The
/// socket lives as long as the test binary.
pub fn unanswered_port() -> u16 {
    use std::os::fd::FromRawFd;
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as u16;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        addr.sin_port = 0;
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        assert_eq!(
            libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let listener = std::net::TcpListener::from_raw_fd(fd);
        let port = listener.local_addr().unwrap().port();
        // Fill the accept queue; later SYNs are dropped.
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok(s) = std::net::TcpStream::connect_timeout(
                &listener.local_addr().unwrap(),
                Duration::from_millis(200),
            ) {
                held.push(s);
            }
        }
        std::mem::forget(held);
        std::mem::forget(listener);
        port
    }
}
