//! GetAsyncEventStatus and ListAsyncEvents, over the stored asynchronous events (always the caller's account), and
//! a function's retry settings (Get/UpdateFunctionEventInvokeConfig).

use control::{EventQuery, EventRow, ListEvents};
use model::time::{format_ms, parse_ms};

use super::{Cx, namespace, paging, required_str};
use crate::error::ApiError;
use crate::wire;

type R<T> = Result<T, ApiError>;

/// SCF's event time, `%Y-%m-%d %H:%M:%S.%f` (UTC, microseconds).
fn event_time(ms: i64) -> String {
    format!("{}.{:06}", format_ms(ms), ms.rem_euclid(1000) * 1000)
}

/// `%Y-%m-%d %H:%M:%S`, optionally with a fraction of a second.
fn parse_time(s: &str, field: &str) -> R<i64> {
    let bad = || {
        ApiError::invalid_value(
            field,
            format!("{field} `{s}` is not of the form YYYY-MM-DD HH:MM:SS."),
        )
    };
    let (whole, frac) = match s.trim().split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s.trim(), None),
    };
    let ms = parse_ms(whole).ok_or_else(bad)?;
    let extra = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut digits = f.to_string();
            digits.truncate(3);
            while digits.len() < 3 {
                digits.push('0');
            }
            digits.parse::<i64>().map_err(|_| bad())?
        }
        Some(_) => return Err(bad()),
    };
    Ok(ms + extra)
}

fn interval(v: Option<wire::TimeInterval>, field: &str) -> R<Option<(i64, i64)>> {
    let Some(v) = v else {
        return Ok(None);
    };
    let start = required_str(v.start, &format!("{field}.Start"))?;
    let end = required_str(v.end, &format!("{field}.End"))?;
    Ok(Some((parse_time(&start, field)?, parse_time(&end, field)?)))
}

fn one_of(values: Option<Vec<String>>, allowed: &[&str], field: &str) -> R<Vec<String>> {
    let values = values.unwrap_or_default();
    for v in &values {
        if !allowed.contains(&v.as_str()) {
            return Err(ApiError::invalid_value(
                field,
                format!("{field} `{v}` is not one of {}.", allowed.join(", ")),
            ));
        }
    }
    Ok(values)
}

pub(crate) async fn get_status(
    cx: &Cx,
    r: wire::GetAsyncEventStatusRequest,
) -> R<wire::GetAsyncEventStatusResponse> {
    let id = required_str(r.invoke_request_id, "InvokeRequestId")?;
    let e = cx.ctl.async_event(&cx.caller, &id).await?;
    Ok(wire::GetAsyncEventStatusResponse {
        result: Some(wire::AsyncEventStatus {
            status: Some(e.status),
            status_code: Some(e.status_code),
            invoke_request_id: Some(e.id),
        }),
        request_id: None,
    })
}

fn item(e: EventRow) -> wire::AsyncEvent {
    wire::AsyncEvent {
        invoke_request_id: Some(e.id),
        invoke_type: Some(e.invoke_type),
        qualifier: Some(e.qualifier),
        status: Some(e.status),
        start_time: Some(event_time(e.start_ms)),
        end_time: Some(e.end_ms.map(event_time).unwrap_or_default()),
    }
}

pub(crate) async fn list(
    cx: &Cx,
    r: wire::ListAsyncEventsRequest,
) -> R<wire::ListAsyncEventsResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let (offset, limit) = paging(r.offset, r.limit, 100)?;
    let descending = match r.order.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("") | Some("DESC") => true,
        Some("ASC") => false,
        Some(_) => {
            return Err(ApiError::invalid_value(
                "Order",
                "Order must be ASC or DESC.",
            ));
        }
    };
    let by_end = match r.orderby.as_deref() {
        None | Some("") | Some("StartTime") => false,
        Some("EndTime") => true,
        Some(_) => {
            return Err(ApiError::invalid_value(
                "Orderby",
                "Orderby must be StartTime or EndTime.",
            ));
        }
    };
    let query = EventQuery {
        qualifier: r.qualifier.filter(|q| !q.is_empty()),
        invoke_types: one_of(
            r.invoke_type,
            &[
                "Event",
                "Timer",
                control::timers::TIMER_INVOKE_TYPE,
                control::events::DEAD_LETTER,
            ],
            "InvokeType",
        )?,
        statuses: one_of(
            r.status,
            &["RUNNING", "FINISHED", "ABORTED", "FAILED"],
            "Status",
        )?,
        start_interval: interval(r.start_time_interval, "StartTimeInterval")?,
        end_interval: interval(r.end_time_interval, "EndTimeInterval")?,
        request_id: r.invoke_request_id.filter(|q| !q.is_empty()),
        by_end,
        descending,
        offset,
        limit,
        ..EventQuery::default()
    };
    let (events, total) = cx
        .ctl
        .async_events(
            &cx.caller,
            ListEvents {
                namespace: namespace(r.namespace),
                function_name: name,
                query,
            },
        )
        .await?;
    Ok(wire::ListAsyncEventsResponse {
        total_count: Some(total),
        event_list: Some(events.into_iter().map(item).collect()),
        request_id: None,
    })
}

pub(crate) async fn terminate(
    cx: &Cx,
    r: wire::TerminateAsyncEventRequest,
) -> R<wire::TerminateAsyncEventResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let id = required_str(r.invoke_request_id, "InvokeRequestId")?;
    cx.ctl
        .terminate_async_event(
            &cx.caller,
            &namespace(r.namespace),
            &name,
            &id,
            r.grace_shutdown.unwrap_or(false),
        )
        .await?;
    Ok(wire::TerminateAsyncEventResponse { request_id: None })
}

pub(crate) async fn get_config(
    cx: &Cx,
    r: wire::GetFunctionEventInvokeConfigRequest,
) -> R<wire::GetFunctionEventInvokeConfigResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let (retry_num, msg_ttl) = cx
        .ctl
        .event_invoke_config(
            &cx.caller,
            &namespace(r.namespace),
            &name,
            r.qualifier.as_deref().filter(|q| !q.is_empty()),
        )
        .await?;
    Ok(wire::GetFunctionEventInvokeConfigResponse {
        async_trigger_config: Some(wire::AsyncTriggerConfig {
            retry_config: Some(vec![wire::RetryConfig {
                retry_num: Some(retry_num),
            }]),
            msg_ttl: Some(msg_ttl),
        }),
        request_id: None,
    })
}

pub(crate) async fn update_config(
    cx: &Cx,
    r: wire::UpdateFunctionEventInvokeConfigRequest,
) -> R<wire::UpdateFunctionEventInvokeConfigResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let config = r
        .async_trigger_config
        .ok_or_else(|| ApiError::missing("AsyncTriggerConfig"))?;
    let msg_ttl = config
        .msg_ttl
        .ok_or_else(|| ApiError::missing("AsyncTriggerConfig.MsgTTL"))?;
    // The retries of function errors are the first entry (SCF shows one; a second, when sent, is ignored).
    let retry_num = config
        .retry_config
        .unwrap_or_default()
        .first()
        .and_then(|c| c.retry_num)
        .ok_or_else(|| ApiError::missing("AsyncTriggerConfig.RetryConfig.RetryNum"))?;
    cx.ctl
        .update_event_invoke_config(
            &cx.caller,
            &namespace(r.namespace),
            &name,
            retry_num,
            msg_ttl,
        )
        .await?;
    Ok(wire::UpdateFunctionEventInvokeConfigResponse { request_id: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_microseconds_and_parse_back() {
        assert_eq!(event_time(1_500), "1970-01-01 00:00:01.500000");
        assert_eq!(
            parse_time("1970-01-01 00:00:01", "T").expect("plain"),
            1_000
        );
        assert_eq!(
            parse_time("1970-01-01 00:00:01.500000", "T").expect("fraction"),
            1_500
        );
        assert_eq!(
            parse_time("1970-01-01 00:00:01.5", "T").expect("short"),
            1_500
        );
        assert!(parse_time("1970-01-01 00:00:01.x", "T").is_err());
        assert!(parse_time("yesterday", "T").is_err());
    }

    #[test]
    fn filter_values_are_checked() {
        assert!(one_of(Some(vec!["RUNNING".into()]), &["RUNNING"], "Status").is_ok());
        let e = one_of(Some(vec!["DONE".into()]), &["RUNNING"], "Status").expect_err("refused");
        assert_eq!(e.code, "InvalidParameterValue.Status");
    }
}
