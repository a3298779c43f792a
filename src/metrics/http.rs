//! The HTTP side of `--metrics-listen`: a plain `std::net::TcpListener` on
//! a thread of its own, answering `GET /metrics`, `/health` and
//! `/sessions`, `Connection: close`, each connection on a short-lived
//! thread of its own, at most [`MAX_CONCURRENT`] at once.
//!
//! This is deliberately tiny: Prometheus scrapes one URL every few
//! seconds, and nothing here may cost the shards anything (no async
//! runtime). Each connection has [`IO_TIMEOUT`] in all to send its request
//! (not per read: a client that sent a byte a second used to hold the one
//! responder for as long as its 8 KiB head lasted, and `/health` with it)
//! and as long to take the answer, and a request head larger than
//! `MAX_HEAD` (8 KiB) is refused; so [`MAX_CONCURRENT`] stalled clients
//! delay a scrape by a second at most, and a flood of them by a second per
//! [`MAX_CONCURRENT`] ahead of it in the accept queue.
//! Serve it on a loopback or management address: it has no
//! authentication.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::Monitor;

/// Largest request head read (request line and headers).
const MAX_HEAD: usize = 8 << 10;

/// How long a client may take to send its whole request, and then to take
/// the whole answer.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// Most connections answered at once (each on its own thread).
const MAX_CONCURRENT: usize = 8;

/// Counts the connections being answered; [`Slots::take`] waits while
/// [`MAX_CONCURRENT`] are.
#[derive(Default)]
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
}

/// One connection's place among [`MAX_CONCURRENT`], given back on drop.
struct Slot(Arc<Slots>);

impl Slots {
    fn take(self: &Arc<Self>) -> Slot {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= MAX_CONCURRENT {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Slot(self.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// How long `/sessions` waits for the shards' answers.
const SESSIONS_WAIT: Duration = Duration::from_secs(1);

/// Starts the responder thread on `listener` (already bound, so a bad
/// `--metrics-listen` fails at start-up).
pub(crate) fn spawn(listener: TcpListener, monitor: Arc<Monitor>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ringftp-metrics".into())
        .spawn(move || {
            let slots = Arc::new(Slots::default());
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        let slot = slots.take();
                        let monitor = monitor.clone();
                        let spawned = std::thread::Builder::new()
                            .name("ringftp-metrics-req".into())
                            .spawn(move || {
                                let _slot = slot;
                                if let Err(e) = serve(stream, &monitor) {
                                    tracing::debug!("metrics request: {e}");
                                }
                            });
                        if let Err(e) = spawned {
                            // The stream went with the closure: that
                            // client sees its connection closed.
                            tracing::warn!("--metrics-listen: no thread for a request: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                    Err(e) => {
                        tracing::warn!("--metrics-listen: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })?;
    Ok(())
}

/// A response: status, content type, body.
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn serve(mut stream: TcpStream, monitor: &Arc<Monitor>) -> io::Result<()> {
    let head = match read_head(&mut stream, Instant::now() + IO_TIMEOUT)? {
        Some(h) => h,
        None => {
            return write(
                &mut stream,
                false,
                Response::text(431, "request too large\n"),
            )
        }
    };
    let (method, target) = match parse_request_line(&head) {
        Some(x) => x,
        None => return write(&mut stream, false, Response::text(400, "bad request\n")),
    };
    let head_only = method == "HEAD";
    let response = if method != "GET" && !head_only {
        Response::text(405, "only GET and HEAD\n")
    } else {
        route(target, monitor)
    };
    write(&mut stream, head_only, response)
}

/// What `target` (a request path, query ignored) answers.
fn route(target: &str, monitor: &Arc<Monitor>) -> Response {
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => Response {
            status: 200,
            content_type: prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            body: super::exposition::render(monitor).into_bytes(),
        },
        "/health" => {
            let h = monitor.health();
            Response::text(h.status(), h.text())
        }
        "/sessions" => {
            let report = monitor.sessions(SESSIONS_WAIT);
            let mut body = serde_json::to_vec_pretty(&report).unwrap_or_default();
            body.push(b'\n');
            Response {
                status: 200,
                content_type: "application/json",
                body,
            }
        }
        _ => Response::text(404, "not found: try /metrics, /health or /sessions\n"),
    }
}

/// The time left until `deadline`; TimedOut once it has passed.
fn left(deadline: Instant) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Reads up to the blank line that ends the request head, by `deadline`
/// (TimedOut after it); `None` if it is longer than [`MAX_HEAD`].
fn read_head(stream: &mut TcpStream, deadline: Instant) -> io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_end(&buf) {
            buf.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            // The client closed early: answer what it sent, if anything.
            return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// `METHOD TARGET HTTP/x.y` -> (method, target).
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split_ascii_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") || parts.next().is_some() || !target.starts_with('/') {
        return None;
    }
    Some((method, target))
}

/// Sends the response, all of it within [`IO_TIMEOUT`] (TimedOut after).
fn write(stream: &mut TcpStream, head_only: bool, r: Response) -> io::Result<()> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    write_by(stream, head.as_bytes(), deadline)?;
    if !head_only {
        write_by(stream, &r.body, deadline)?;
    }
    Ok(())
}

/// Writes all of `buf` by `deadline`: each write gets only the time left,
/// so a client that takes its answer a byte at a time is cut off there.
fn write_by(stream: &mut TcpStream, mut buf: &[u8], deadline: Instant) -> io::Result<()> {
    while !buf.is_empty() {
        stream.set_write_timeout(Some(left(deadline)?))?;
        match stream.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `GET path` against a `--metrics-listen` address: the status and body.
/// What `ringftp who` and the tests use.
pub(crate) fn get(addr: &str, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    use std::net::ToSocketAddrs;
    let target = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{addr}: no address")))?;
    let mut s = TcpStream::connect_timeout(&target, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    // `timeout` bounds the whole answer, not each read: a peer that
    // trickles bytes is cut off at it too.
    let deadline = std::time::Instant::now() + timeout;
    let too_late = |got: &[u8]| {
        let what = if got.is_empty() { "no" } else { "no whole" };
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} HTTP response within {} s", timeout.as_secs()),
        )
    };
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(too_late(&raw));
        }
        s.set_read_timeout(Some(left))?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(too_late(&raw))
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        // Something else listens there: an FTP port greets first ("220
        // ...") and waits for a command, which would hold us until the
        // timeout. Said at once, with what it sent.
        if raw.len() >= 5 && !raw.starts_with(b"HTTP/") {
            let first = String::from_utf8_lossy(&raw);
            let first = first.lines().next().unwrap_or_default();
            return Err(io::Error::other(format!(
                "not an HTTP server (it said {first:?}); give the server's --metrics-listen address, not its FTP port"
            )));
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::other("no HTTP response"))?;
    let status = head
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line: {head:?}")))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request_line("GET /metrics HTTP/1.1\r\nHost: x"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line("HEAD /health?x=1 HTTP/1.0"),
            Some(("HEAD", "/health?x=1"))
        );
        assert_eq!(parse_request_line("GET /metrics"), None);
        assert_eq!(parse_request_line("GET metrics HTTP/1.1"), None);
        assert_eq!(parse_request_line("GET /a b HTTP/1.1"), None);
        assert_eq!(parse_request_line(""), None);
    }

    #[test]
    fn head_ends_at_the_blank_line() {
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest"), Some(20));
        assert_eq!(find_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
