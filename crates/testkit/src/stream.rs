//! A reader of the status stream (`GET /stratus/v1/stream`) for tests: signs the GET with TC3 as the SDKs would,
//! checks the reply is an event stream, and hands out its events one by one, with deadlines.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::server::Credentials;

/// One server-sent event (comments are not events; an `id:` carried by a comment-only block moves
/// [`StatusStream::last_id`] without producing one).
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: serde_json::Value,
}

/// An open stream.
pub struct StatusStream {
    reader: BufReader<TcpStream>,
    /// Decoded body bytes not yet parsed.
    pending: Vec<u8>,
    chunked: bool,
    /// The last id the server gave, as a browser would send it in `Last-Event-ID`.
    pub last_id: Option<i64>,
}

/// A refused stream: the HTTP status and the body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

/// The signed request head for `GET /stratus/v1/stream[?query]`.
pub fn signed_head(
    addr: SocketAddr,
    creds: &Credentials,
    query: &str,
    last_event_id: Option<i64>,
    timestamp: i64,
) -> String {
    let host = addr.to_string();
    let content_type = "application/x-www-form-urlencoded";
    let date = model::time::utc_date(timestamp);
    let hash = hex::encode(Sha256::digest(b""));
    let headers = [("content-type", content_type), ("host", host.as_str())];
    let req = api::tc3::SignedRequest {
        method: "GET",
        query,
        headers: &headers,
        payload_hash: &hash,
        timestamp,
    };
    let sig = api::tc3::signature(&creds.secret_key, &date, "scf", "content-type;host", &req);
    let path = if query.is_empty() {
        api::stream::PATH.to_string()
    } else {
        format!("{}?{query}", api::stream::PATH)
    };
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nAccept: text/event-stream\r\n\
         X-TC-Timestamp: {timestamp}\r\nAuthorization: TC3-HMAC-SHA256 Credential={}/{date}/scf/tc3_request, \
         SignedHeaders=content-type;host, Signature={sig}\r\n",
        creds.secret_id
    );
    if let Some(id) = last_event_id {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    head
}

impl StatusStream {
    /// Opens the stream as `creds`, resuming after `last_event_id` when given.
    pub fn open(
        addr: SocketAddr,
        creds: &Credentials,
        last_event_id: Option<i64>,
    ) -> io::Result<Result<StatusStream, Refused>> {
        Self::open_raw(
            addr,
            &signed_head(addr, creds, "", last_event_id, crate::unix_now()),
        )
    }

    /// Sends `head` as it is (a test that breaks the signature on purpose) and reads the reply's head.
    pub fn open_raw(addr: SocketAddr, head: &str) -> io::Result<Result<StatusStream, Refused>> {
        let mut tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.write_all(head.as_bytes())?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(tcp);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let (mut chunked, mut length, mut event_stream) = (false, None, false);
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim());
                match n.as_str() {
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "content-length" => length = v.parse::<usize>().ok(),
                    "content-type" => event_stream = v.starts_with("text/event-stream"),
                    _ => {}
                }
            }
        }
        if status != 200 || !event_stream {
            let mut body = vec![0; length.unwrap_or(0)];
            reader.read_exact(&mut body)?;
            return Ok(Err(Refused {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }));
        }
        Ok(Ok(StatusStream {
            reader,
            pending: Vec::new(),
            chunked,
            last_id: last_event_id_of(head),
        }))
    }

    /// The next event, or `None` when none came within `timeout` (a heartbeat does not count). Errors when the
    /// stream ends or breaks.
    pub fn next_event(&mut self, timeout: Duration) -> io::Result<Option<SseEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(block) = self.take_block() {
                if let Some(e) = self.parse(&block) {
                    return Ok(Some(e));
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            match self.fill() {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The events that arrive within `timeout`, until `until` says the last one was enough.
    pub fn events_until(
        &mut self,
        timeout: Duration,
        mut until: impl FnMut(&SseEvent) -> bool,
    ) -> io::Result<Vec<SseEvent>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(e) = self.next_event(deadline.saturating_duration_since(Instant::now()))? {
            let done = until(&e);
            out.push(e);
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// Reads more of the body into `pending`.
    fn fill(&mut self) -> io::Result<()> {
        if !self.chunked {
            let mut buf = [0u8; 4096];
            let n = self.reader.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended"));
            }
            self.pending.extend_from_slice(&buf[..n]);
            return Ok(());
        }
        let mut size = String::new();
        if self.reader.read_line(&mut size)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended"));
        }
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| io::Error::other(format!("bad chunk size {size:?}")))?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended"));
        }
        let mut chunk = vec![0; n + 2];
        self.reader.read_exact(&mut chunk)?;
        chunk.truncate(n);
        self.pending.extend_from_slice(&chunk);
        Ok(())
    }

    /// One block (up to a blank line) from `pending`.
    fn take_block(&mut self) -> Option<String> {
        let at = self.pending.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = self.pending.drain(..at + 2).collect();
        Some(String::from_utf8_lossy(&block).into_owned())
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
        for line in block.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line
                .split_once(':')
                .map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
            match field {
                "id" => id = value.parse::<i64>().ok(),
                "event" => event = value.to_string(),
                "data" => {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                _ => {}
            }
        }
        if id.is_some() {
            self.last_id = id;
        }
        if data.is_empty() {
            return None;
        }
        Some(SseEvent {
            id,
            event,
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data)),
        })
    }
}

fn last_event_id_of(head: &str) -> Option<i64> {
    head.lines()
        .find_map(|l| l.strip_prefix("Last-Event-ID: "))
        .and_then(|v| v.trim().parse().ok())
}
