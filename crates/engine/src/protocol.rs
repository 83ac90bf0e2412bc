//! The private frame protocol between the engine and the built-in runtimes (Python, Node.js).
//!
//! The built-in bootstraps do not speak the HTTP runtime API: an HTTP round trip costs several times a pipe round
//! trip (`performance.md`). Instead every built-in instance is started with two pipes at fixed descriptors:
//!
//! | fd | direction | carries |
//! |---|---|---|
//! | 0 | — | `/dev/null` |
//! | 1, 2 | runtime → engine | one pipe: the user's stdout and stderr, i.e. the invocation log (raw bytes) |
//! | 3 | engine → runtime | frames |
//! | 4 | runtime → engine | frames |
//!
//! A frame is `len: u32 big-endian`, `kind: u8` (an ASCII letter), then `len` bytes of payload:
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | `C` config | engine → runtime, once, first | JSON `{function_name, function_version, namespace, memory_limit_in_mb, time_limit_in_ms, tencentcloud_region, tencentcloud_appid, tencentcloud_uin, environment}` (`environment` is the JSON *string* SCF puts in `context`) |
//! | `R` ready | runtime → engine, once | the handler load time in ms, ASCII decimal; the instance is warm from now on |
//! | `F` init failed | runtime → engine, once, then the runtime exits | error JSON (below), `statusCode` 437 (handler not found) or 430 (the module raised) |
//! | `I` invoke | engine → runtime | `request_id` `\n` deadline (Unix ms, ASCII) `\n` the event (JSON bytes, may be empty) |
//! | `O` result | runtime → engine | the JSON-serialised return value |
//! | `E` error | runtime → engine | error JSON `{errorCode, errorMessage, errorType, stackTrace, statusCode: 430}` |
//!
//! One invocation at a time: the engine sends `I` only after the previous `O`/`E`. Log boundaries need no frames:
//! a runtime flushes the user's stdout/stderr (the Node bootstrap makes them synchronous) *before* it writes `O`/`E`,
//! so when the engine has read the result frame every byte of the invocation's output is already in the log pipe,
//! and a non-blocking drain of that pipe up to `EAGAIN` collects exactly the invocation's output. End of file on
//! fd 4 means the runtime process is gone (SCF 439).
//!
//! Both sides keep the cost per invocation at one `write` and (usually) one `read` each way.

/// Frame kinds.
pub mod kind {
    pub const CONFIG: u8 = b'C';
    pub const READY: u8 = b'R';
    pub const INIT_FAILED: u8 = b'F';
    pub const INVOKE: u8 = b'I';
    pub const RESULT: u8 = b'O';
    pub const ERROR: u8 = b'E';
}

/// Frame header size: length (4) and kind (1).
pub const HEADER: usize = 5;

/// The largest result of a synchronous invocation (SCF's 6 MB); control turns a larger one into the function's
/// error (430).
pub const MAX_RESULT: usize = 6 * 1024 * 1024;

/// Largest payload accepted from a runtime: a 6 MB result plus a margin for framing and an error's stack. The
/// engine buffers at most this per frame (or per posted body of a custom runtime); a runtime that announces a
/// larger frame is stopped, and the invocation fails with a 430 naming the size.
pub const MAX_PAYLOAD: usize = MAX_RESULT + 64 * 1024;

// The margin stays small: the bound is what a runtime can make the server hold per instance.
const _: () = assert!(MAX_PAYLOAD > MAX_RESULT && MAX_PAYLOAD - MAX_RESULT <= 256 * 1024);

/// Encodes one frame.
pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    encode_into(&mut out, kind, &[payload]);
    out
}

/// Appends one frame whose payload is the concatenation of `parts`.
pub fn encode_into(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.push(kind);
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// The `I` frame for one invocation.
pub fn invoke_frame(request_id: &str, deadline_unix_ms: u64, event: &[u8]) -> Vec<u8> {
    let deadline = deadline_unix_ms.to_string();
    let mut out = Vec::with_capacity(HEADER + request_id.len() + deadline.len() + 2 + event.len());
    encode_into(
        &mut out,
        kind::INVOKE,
        &[
            request_id.as_bytes(),
            b"\n",
            deadline.as_bytes(),
            b"\n",
            event,
        ],
    );
    out
}

/// Incremental decoder for the frames a runtime sends.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
}

/// A frame announced a payload over [`MAX_PAYLOAD`]: the stream cannot go on (the decoder stops there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge {
    pub kind: u8,
    pub len: usize,
}

impl Decoder {
    /// Appends bytes read from the pipe. The buffer holds at most one incomplete frame and what came with it:
    /// frames already taken are dropped first.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > 1024 * 1024 {
            // Do not keep a large frame's allocation for the life of the instance.
            self.buf = Vec::new();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Takes the next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, FrameTooLarge> {
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameTooLarge {
                kind: avail[4],
                len,
            });
        }
        if avail.len() < HEADER + len {
            return Ok(None);
        }
        let kind = avail[4];
        let payload = avail[HEADER..HEADER + len].to_vec();
        self.start += HEADER + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_split_anywhere() {
        let mut wire = encode(kind::READY, b"1.5");
        wire.extend(invoke_frame("rid", 42, br#"{"a":1}"#));
        for cut in 0..wire.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                d.push(part);
                while let Some(f) = d.next_frame().expect("frame") {
                    got.push(f);
                }
            }
            assert_eq!(
                got,
                vec![
                    (kind::READY, b"1.5".to_vec()),
                    (kind::INVOKE, b"rid\n42\n{\"a\":1}".to_vec())
                ]
            );
        }
    }

    #[test]
    fn oversized_frame_is_refused_from_its_header() {
        let mut d = Decoder::default();
        d.push(&(u32::MAX).to_be_bytes());
        d.push(b"O");
        assert_eq!(
            d.next_frame(),
            Err(FrameTooLarge {
                kind: kind::RESULT,
                len: u32::MAX as usize
            })
        );
        // One byte over the bound is refused before any of the payload is buffered; the bound itself passes.
        let mut d = Decoder::default();
        d.push(&((MAX_PAYLOAD + 1) as u32).to_be_bytes());
        d.push(b"E");
        assert_eq!(
            d.next_frame(),
            Err(FrameTooLarge {
                kind: kind::ERROR,
                len: MAX_PAYLOAD + 1
            })
        );
        let payload = vec![b'x'; MAX_PAYLOAD];
        let mut d = Decoder::default();
        for chunk in encode(kind::RESULT, &payload).chunks(64 * 1024) {
            d.push(chunk);
        }
        assert_eq!(d.next_frame(), Ok(Some((kind::RESULT, payload))));
    }

    #[test]
    fn the_buffer_holds_only_the_incomplete_frame() {
        let mut d = Decoder::default();
        let big = encode(kind::RESULT, &vec![b'a'; 3 * 1024 * 1024]);
        let mut wire = big.clone();
        wire.extend(encode(kind::READY, b"1"));
        wire.extend_from_slice(&big[..100]);
        d.push(&wire);
        assert_eq!(d.next_frame().expect("ok").map(|f| f.0), Some(kind::RESULT));
        assert_eq!(d.next_frame().expect("ok").map(|f| f.0), Some(kind::READY));
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&big[100..200]);
        assert_eq!(d.buf.len(), 200, "the frames taken are gone");
        d.push(&big[200..]);
        assert_eq!(
            d.next_frame().expect("ok").map(|f| f.1.len()),
            Some(3 * 1024 * 1024)
        );
        d.push(b"");
        assert!(
            d.buf.capacity() <= 1024 * 1024,
            "a big frame's buffer is let go"
        );
    }
}
