//! GetFunctionLogs and GetRequestStatus, over the stored invocation records.

use control::{InvocationOrder, InvocationQuery, InvocationRecord};
use model::time::{format_ms, parse_ms};

use super::{Cx, descending, namespace, required_str};
use crate::error::ApiError;
use crate::wire;

type R<T> = Result<T, ApiError>;

fn time(v: Option<String>, field: &str) -> R<Option<i64>> {
    match v.filter(|t| !t.trim().is_empty()) {
        None => Ok(None),
        Some(t) => parse_ms(&t).map(Some).ok_or_else(|| {
            ApiError::invalid_value(
                field,
                format!("{field} `{t}` is not of the form YYYY-MM-DD HH:MM:SS."),
            )
        }),
    }
}

/// SCF's `RetCode`: 0 for success, else the runtime status code.
fn ret_code(r: &InvocationRecord) -> i64 {
    if r.status_code == 200 {
        0
    } else {
        r.status_code
    }
}

pub(crate) async fn get_logs(
    cx: &Cx,
    r: wire::GetFunctionLogsRequest,
) -> R<wire::GetFunctionLogsResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let (succeeded, status_code) = match r.filter.as_ref().and_then(|f| f.ret_code.as_deref()) {
        None | Some("") => (None, None),
        Some("is0") => (Some(true), None),
        Some("not0") => (Some(false), None),
        Some("TimeLimitExceeded") => (None, Some(433)),
        Some("ResourceLimitExceeded") => (None, Some(434)),
        Some("UserCodeException") => (None, Some(430)),
        Some(other) => {
            return Err(ApiError::invalid_value(
                "RetCode",
                format!(
                    "Filter.RetCode `{other}` is not one of is0, not0, TimeLimitExceeded, ResourceLimitExceeded, UserCodeException."
                ),
            ));
        }
    };
    let order_by = match r.order_by.as_deref() {
        None | Some("") | Some("start_time") => InvocationOrder::StartTime,
        Some("duration") => InvocationOrder::Duration,
        Some("mem_usage") => InvocationOrder::MemUsage,
        Some("function_name") => InvocationOrder::FunctionName,
        Some(o) => {
            return Err(ApiError::invalid_value(
                "OrderBy",
                format!(
                    "OrderBy `{o}` is not one of function_name, duration, mem_usage, start_time."
                ),
            ));
        }
    };
    let descending = descending(r.order.as_deref(), true)?;
    let q = InvocationQuery {
        app_id: 0, // the control plane scopes the query to the caller
        namespace: namespace(r.namespace),
        function_name: name,
        qualifier: r.qualifier.filter(|q| !q.is_empty()),
        request_id: r.function_request_id.filter(|q| !q.is_empty()),
        start_ms: time(r.start_time, "StartTime")?,
        end_ms: time(r.end_time, "EndTime")?,
        succeeded,
        status_code,
        order_by,
        descending,
        offset: r.offset.unwrap_or(0),
        limit: r.limit.unwrap_or(10),
        with_log: true,
        max_bytes: 0, // the control plane sets the reply's budget
    };
    let (records, total) = cx.ctl.invocation_records(&cx.caller, q).await?;
    Ok(wire::GetFunctionLogsResponse {
        total_count: Some(total),
        data: Some(
            records
                .iter()
                .map(|rec| wire::FunctionLog {
                    function_name: Some(rec.function_name.clone()),
                    ret_msg: Some(rec.ret_msg.clone()),
                    request_id: Some(rec.request_id.clone()),
                    start_time: Some(format_ms(rec.start_ms)),
                    ret_code: Some(ret_code(rec)),
                    invoke_finished: Some(1),
                    duration: Some(rec.duration_us as f64 / 1000.0),
                    bill_duration: Some(rec.bill_ms),
                    mem_usage: Some(rec.mem_bytes),
                    log: Some(rec.log.clone()),
                    level: Some(String::new()),
                    source: Some(String::new()),
                    retry_num: Some(u64::try_from(rec.retry_num).unwrap_or(0)),
                })
                .collect(),
        ),
        search_context: None,
        request_id: None,
    })
}

pub(crate) async fn get_request_status(
    cx: &Cx,
    r: wire::GetRequestStatusRequest,
) -> R<wire::GetRequestStatusResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let request_id = required_str(r.function_request_id, "FunctionRequestId")?;
    let q = InvocationQuery {
        namespace: namespace(r.namespace),
        function_name: name,
        request_id: Some(request_id),
        start_ms: time(r.start_time, "StartTime")?,
        end_ms: time(r.end_time, "EndTime")?,
        order_by: InvocationOrder::StartTime,
        descending: true,
        limit: 10,
        ..InvocationQuery::default()
    };
    let (records, total) = cx.ctl.invocation_records(&cx.caller, q).await?;
    Ok(wire::GetRequestStatusResponse {
        total_count: Some(total),
        data: Some(
            records
                .iter()
                .map(|rec| wire::RequestStatus {
                    function_name: Some(rec.function_name.clone()),
                    ret_msg: Some(rec.ret_msg.clone()),
                    request_id: Some(rec.request_id.clone()),
                    start_time: Some(format_ms(rec.start_ms)),
                    ret_code: Some(ret_code(rec)),
                    duration: Some(rec.duration_us as f64 / 1000.0),
                    mem_usage: Some(rec.mem_bytes as f64),
                    retry_num: Some(rec.retry_num),
                })
                .collect(),
        ),
        request_id: None,
    })
}
