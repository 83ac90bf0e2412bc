//! The status stream through the real binary: a create shows `Creating` then `Active` on the caller's stream, a
//! resumed stream continues after its last id, a wrong key is refused, and a graceful shutdown ends an open stream
//! instead of waiting for it.

use std::time::{Duration, Instant};

use testkit::{Backend, Credentials, StatusStream, on_both_backends};

use crate::{SETTLE, create_python, start};

fn function_statuses(events: &[testkit::SseEvent], name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.data["FunctionName"] == name)
        .map(|e| e.data["Status"].as_str().unwrap_or("").to_string())
        .collect()
}

fn status_stream_follows_the_lifecycle(b: Backend) {
    let mut srv = start(&b);
    let c = srv.client();
    let mut stream = StatusStream::open(srv.addr(), srv.credentials(), None)
        .expect("connect")
        .expect("stream accepted");
    create_python(&c, "streamed");
    let got = stream
        .events_until(SETTLE, |e| {
            e.data["FunctionName"] == "streamed" && e.data["Status"] == "Active"
        })
        .expect("read");
    assert_eq!(function_statuses(&got, "streamed"), ["Creating", "Active"]);
    assert!(got.iter().all(|e| e.event == "status" && e.id.is_some()));
    let last = stream.last_id;
    drop(stream);

    // Resumed after its last id: the next change, and nothing before it again.
    create_python(&c, "after");
    let mut resumed = StatusStream::open(srv.addr(), srv.credentials(), last)
        .expect("connect")
        .expect("stream accepted");
    let more = resumed
        .events_until(SETTLE, |e| {
            e.data["FunctionName"] == "after" && e.data["Status"] == "Active"
        })
        .expect("read");
    assert_eq!(function_statuses(&more, "after"), ["Creating", "Active"]);
    assert!(function_statuses(&more, "streamed").is_empty());

    // A wrong key is refused before anything is streamed.
    let wrong = Credentials {
        secret_key: "not-the-key".into(),
        ..srv.credentials().clone()
    };
    let refused = StatusStream::open(srv.addr(), &wrong, None)
        .expect("connect")
        .err()
        .expect("refused");
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("AuthFailure.SignatureFailure"),
        "{}",
        refused.body
    );

    // An open stream does not hold a graceful shutdown back: it ends.
    let t = Instant::now();
    srv.stop();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let ended = resumed.next_event(Duration::from_secs(5));
    assert!(
        ended.is_err(),
        "the stream ended with the server: {ended:?}"
    );
}

on_both_backends!(status_stream_follows_the_lifecycle);
