//! Reserved concurrency of a function and a namespace's total concurrency (GetAccount shows both).

use super::{Cx, namespace, required, required_str};
use crate::error::ApiError;
use crate::wire;

type R<T> = Result<T, ApiError>;

/// A memory amount in MB as the control plane counts it.
fn mb(v: u64, field: &str) -> R<i64> {
    i64::try_from(v).map_err(|_| ApiError::invalid_value(field, format!("{field} is too large.")))
}

pub(crate) async fn put_reserved(
    cx: &Cx,
    r: wire::PutReservedConcurrencyConfigRequest,
) -> R<wire::PutReservedConcurrencyConfigResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let mem = mb(
        required(r.reserved_concurrency_mem, "ReservedConcurrencyMem")?,
        "ReservedConcurrencyMem",
    )?;
    cx.ctl
        .put_reserved_concurrency(&cx.caller, &namespace(r.namespace), &name, mem)
        .await?;
    Ok(wire::PutReservedConcurrencyConfigResponse::default())
}

pub(crate) async fn get_reserved(
    cx: &Cx,
    r: wire::GetReservedConcurrencyConfigRequest,
) -> R<wire::GetReservedConcurrencyConfigResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    let reserved = cx
        .ctl
        .reserved_concurrency(&cx.caller, &namespace(r.namespace), &name)
        .await?;
    Ok(wire::GetReservedConcurrencyConfigResponse {
        reserved_mem: reserved.map(|m| m.max(0) as u64),
        request_id: None,
    })
}

pub(crate) async fn delete_reserved(
    cx: &Cx,
    r: wire::DeleteReservedConcurrencyConfigRequest,
) -> R<wire::DeleteReservedConcurrencyConfigResponse> {
    let name = required_str(r.function_name, "FunctionName")?;
    cx.ctl
        .delete_reserved_concurrency(&cx.caller, &namespace(r.namespace), &name)
        .await?;
    Ok(wire::DeleteReservedConcurrencyConfigResponse::default())
}

pub(crate) async fn put_total(
    cx: &Cx,
    r: wire::PutTotalConcurrencyConfigRequest,
) -> R<wire::PutTotalConcurrencyConfigResponse> {
    let total = mb(
        required(r.total_concurrency_mem, "TotalConcurrencyMem")?,
        "TotalConcurrencyMem",
    )?;
    cx.ctl
        .put_total_concurrency(&cx.caller, &namespace(r.namespace), total)
        .await?;
    Ok(wire::PutTotalConcurrencyConfigResponse::default())
}
