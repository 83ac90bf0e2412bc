//! Invocation logs in SCF's shape:
//!
//! ```text
//! START RequestId:<id>
//! Init Report RequestId:<id> Coldstart:<ms>ms (InitRuntime:<ms>ms InitFunction:<ms>ms) Memory:<MB>MB MemUsage:<MB>MB
//! <the user's output>
//! Response RequestId:<id> RetMsg:<result>            (or: ERROR RequestId:<id> Result:<ErrMsg JSON>)
//! END RequestId:<id>
//! Report RequestId:<id> Duration:<ms>ms Memory:<MB>MB MemUsage:<MB>MB
//! ```
//!
//! The `Init Report` line appears only for the invocation that started its instance.

use std::fmt::Write;

/// Cold start figures for the `Init Report` line.
#[derive(Debug, Clone, Copy)]
pub struct InitReport {
    pub coldstart_ms: f64,
    pub init_function_ms: f64,
    pub mem_usage_bytes: u64,
}

pub(crate) struct LogParts<'a> {
    pub request_id: &'a str,
    pub init: Option<InitReport>,
    pub output: &'a [u8],
    pub output_dropped: usize,
    pub result: &'a Result<String, crate::FunctionError>,
    pub max_retmsg: usize,
    pub duration_ms: f64,
    pub memory_mb: u32,
    pub mem_usage_bytes: u64,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn render(p: &LogParts<'_>) -> String {
    let id = p.request_id;
    let mut out = String::with_capacity(256 + p.output.len());
    let _ = writeln!(out, "START RequestId:{id}");
    if let Some(i) = p.init {
        let _ = writeln!(
            out,
            "Init Report RequestId:{id} Coldstart:{:.0}ms (InitRuntime:{:.0}ms InitFunction:{:.0}ms) Memory:{}MB MemUsage:{:.2}MB",
            i.coldstart_ms,
            (i.coldstart_ms - i.init_function_ms).max(0.0),
            i.init_function_ms,
            p.memory_mb,
            mb(i.mem_usage_bytes)
        );
    }
    out.push_str(&String::from_utf8_lossy(p.output));
    if !p.output.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if p.output_dropped > 0 {
        let _ = writeln!(
            out,
            "[{} bytes of output dropped: the log is limited to {} bytes per invocation]",
            p.output_dropped,
            p.output.len()
        );
    }
    match p.result {
        Ok(ret) => {
            let shown = cut(ret, p.max_retmsg);
            let more = if shown.len() < ret.len() { "..." } else { "" };
            let _ = writeln!(out, "Response RequestId:{id} RetMsg:{shown}{more}");
        }
        Err(e) => {
            let _ = writeln!(out, "ERROR RequestId:{id} Result:{}", e.to_json());
        }
    }
    let _ = writeln!(out, "END RequestId:{id}");
    let _ = write!(
        out,
        "Report RequestId:{id} Duration:{:.2}ms Memory:{}MB MemUsage:{:.2}MB",
        p.duration_ms,
        p.memory_mb,
        mb(p.mem_usage_bytes)
    );
    out
}

/// How much of the log `LogType=Tail` returns.
pub const TAIL_BYTES: usize = 4096;

/// The last `max` bytes of a log (on a character boundary), as `LogType=Tail` returns (SCF: 4 KB).
pub fn tail(log: &str, max: usize) -> &str {
    if log.len() <= max {
        return log;
    }
    let mut start = log.len() - max;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let result = Ok("{\"a\":1}".to_string());
        let log = render(&LogParts {
            request_id: "r1",
            init: Some(InitReport {
                coldstart_ms: 30.4,
                init_function_ms: 2.0,
                mem_usage_bytes: 10 * 1024 * 1024,
            }),
            output: b"hello",
            output_dropped: 0,
            result: &result,
            max_retmsg: 1024,
            duration_ms: 1.234,
            memory_mb: 128,
            mem_usage_bytes: 11 * 1024 * 1024,
        });
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines[0], "START RequestId:r1");
        assert_eq!(
            lines[1],
            "Init Report RequestId:r1 Coldstart:30ms (InitRuntime:28ms InitFunction:2ms) Memory:128MB MemUsage:10.00MB"
        );
        assert_eq!(lines[2], "hello");
        assert_eq!(lines[3], "Response RequestId:r1 RetMsg:{\"a\":1}");
        assert_eq!(lines[4], "END RequestId:r1");
        assert_eq!(
            lines[5],
            "Report RequestId:r1 Duration:1.23ms Memory:128MB MemUsage:11.00MB"
        );
    }

    #[test]
    fn tail_keeps_char_boundaries() {
        let s = "ééé";
        assert_eq!(tail(s, 3), "é");
        assert_eq!(tail(s, 100), s);
    }
}
