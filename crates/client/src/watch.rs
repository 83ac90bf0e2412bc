//! Waiting for a function (or version) to settle. A [`StatusSource`] yields the next observation; [`Poller`]
//! polls GetFunction, and a status stream from the server can take its place without changing [`wait_settled`]
//! or its callers.

use std::time::{Duration, Instant};

use crate::actions::FunctionState;
use crate::{Client, Error};

/// Where status observations come from.
pub trait StatusSource {
    /// Blocks until the next observation (at most until `deadline`, after which it may return the last one).
    /// `None`: the function (or qualifier) does not exist.
    fn next_state(&mut self, deadline: Instant) -> Result<Option<FunctionState>, Error>;
}

/// Polls GetFunction: at once, then every `interval`, starting faster (a few ms) while an operation is short.
pub struct Poller<'a> {
    client: &'a Client,
    namespace: String,
    name: String,
    qualifier: Option<String>,
    interval: Duration,
    polls: u32,
}

impl<'a> Poller<'a> {
    pub fn new(
        client: &'a Client,
        namespace: &str,
        name: &str,
        qualifier: Option<&str>,
        interval: Duration,
    ) -> Poller<'a> {
        Poller {
            client,
            namespace: namespace.into(),
            name: name.into(),
            qualifier: qualifier.map(str::to_string),
            interval,
            polls: 0,
        }
    }
}

impl StatusSource for Poller<'_> {
    fn next_state(&mut self, deadline: Instant) -> Result<Option<FunctionState>, Error> {
        if self.polls > 0 {
            // 5 ms, 10 ms, 20 ms, … up to the interval: most operations end within a few dozen milliseconds.
            let step = Duration::from_millis(5u64 << self.polls.min(8)).min(self.interval);
            let now = Instant::now();
            std::thread::sleep(step.min(deadline.saturating_duration_since(now)));
        }
        self.polls += 1;
        self.client
            .function_state(&self.namespace, &self.name, self.qualifier.as_deref())
    }
}

/// Reads `source` until the status settles, calling `on_change` with each new status (the first included).
/// Fails with [`Error::Timeout`] after `timeout`, and with the not-found error when the function goes away.
pub fn wait_settled(
    source: &mut dyn StatusSource,
    timeout: Duration,
    what: &str,
    on_change: &mut dyn FnMut(&FunctionState),
) -> Result<FunctionState, Error> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<String> = None;
    loop {
        let Some(state) = source.next_state(deadline)? else {
            return Err(Error::Api {
                code: "ResourceNotFound.Function".into(),
                message: format!("{what} does not exist (any more)"),
                request_id: String::new(),
            });
        };
        if last.as_deref() != Some(state.status.as_str()) {
            on_change(&state);
            last = Some(state.status.clone());
        }
        if state.is_settled() {
            return Ok(state);
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(timeout, format!("{what} to settle")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A scripted source: the statuses a stream would deliver.
    struct Script(Vec<Option<&'static str>>);

    impl StatusSource for Script {
        fn next_state(&mut self, _: Instant) -> Result<Option<FunctionState>, Error> {
            let s = if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0[0]
            };
            Ok(s.map(|s| FunctionState::from_reply(json!({ "Status": s }))))
        }
    }

    #[test]
    fn reports_each_change_once_and_stops_when_settled() {
        let mut src = Script(vec![
            Some("Creating"),
            Some("Creating"),
            Some("Creating"),
            Some("Active"),
        ]);
        let mut seen = Vec::new();
        let s = wait_settled(&mut src, Duration::from_secs(5), "f", &mut |s| {
            seen.push(s.status.clone())
        })
        .expect("settles");
        assert_eq!(s.status, "Active");
        assert_eq!(seen, ["Creating", "Active"]);
    }

    #[test]
    fn times_out_and_notices_deletion() {
        let mut src = Script(vec![Some("Updating")]);
        let e = wait_settled(&mut src, Duration::from_millis(20), "f", &mut |_| {});
        assert!(matches!(e, Err(Error::Timeout(..))), "{e:?}");
        let mut src = Script(vec![Some("Deleting"), None]);
        let e = wait_settled(&mut src, Duration::from_secs(5), "f", &mut |_| {});
        assert_eq!(
            e.err().and_then(|e| e.code().map(str::to_string)),
            Some("ResourceNotFound.Function".into())
        );
    }
}
