//! Layers.

use control::PublishLayer;

use super::Cx;
use super::{paging, required, required_str, zip_bytes};
use crate::error::ApiError;
use crate::views::layer_info;
use crate::wire;

type R<T> = Result<T, ApiError>;

pub(crate) async fn publish(
    cx: &Cx,
    r: wire::PublishLayerVersionRequest,
) -> R<wire::PublishLayerVersionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.layer_name, "LayerName")?;
    let runtimes = required(r.compatible_runtimes, "CompatibleRuntimes")?;
    let content = required(r.content, "Content")?;
    let zip = match content.zip_file.as_deref().filter(|z| !z.is_empty()) {
        Some(z) => zip_bytes(z, "ZipFile")?,
        None if content.cos_bucket_name.is_some() || content.cos_object_name.is_some() => {
            return Err(ApiError::new(
                "UnsupportedOperation",
                "layer content from COS is not supported by Stratus: give the zip inline in Content.ZipFile.",
            ));
        }
        None => return Err(ApiError::missing("Content.ZipFile")),
    };
    let version = ctl
        .publish_layer_version(
            caller,
            PublishLayer {
                name,
                compatible_runtimes: runtimes,
                zip,
                description: r.description.unwrap_or_default(),
                license: r.license_info.unwrap_or_default(),
            },
        )
        .await?;
    Ok(wire::PublishLayerVersionResponse {
        layer_version: Some(version),
        request_id: None,
    })
}

pub(crate) async fn get(
    cx: &Cx,
    r: wire::GetLayerVersionRequest,
) -> R<wire::GetLayerVersionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.layer_name, "LayerName")?;
    let version = required(r.layer_version, "LayerVersion")?;
    let l = ctl.get_layer_version(caller, &name, version).await?;
    let info = layer_info(&l);
    Ok(wire::GetLayerVersionResponse {
        compatible_runtimes: info.compatible_runtimes,
        code_sha256: Some(l.layer.content.sha256.clone()),
        location: Some(String::new()),
        add_time: info.add_time,
        description: info.description,
        license_info: info.license_info,
        layer_version: info.layer_version,
        layer_name: info.layer_name,
        status: info.status,
        request_id: None,
    })
}

pub(crate) async fn list(cx: &Cx, r: wire::ListLayersRequest) -> R<wire::ListLayersResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let (offset, limit) = paging(r.offset, r.limit, 1000)?;
    let all = ctl
        .list_layers(
            caller,
            r.compatible_runtime.as_deref().filter(|s| !s.is_empty()),
            r.search_key.as_deref().filter(|s| !s.is_empty()),
        )
        .await?;
    Ok(wire::ListLayersResponse {
        total_count: Some(all.len() as i64),
        layers: Some(
            all.iter()
                .skip(offset as usize)
                .take(limit as usize)
                .map(layer_info)
                .collect(),
        ),
        request_id: None,
    })
}

pub(crate) async fn list_versions(
    cx: &Cx,
    r: wire::ListLayerVersionsRequest,
) -> R<wire::ListLayerVersionsResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.layer_name, "LayerName")?;
    let runtimes = r.compatible_runtime.unwrap_or_default();
    let all = ctl.list_layer_versions(caller, &name, &runtimes).await?;
    Ok(wire::ListLayerVersionsResponse {
        layer_versions: Some(all.iter().map(layer_info).collect()),
        request_id: None,
    })
}

pub(crate) async fn delete(
    cx: &Cx,
    r: wire::DeleteLayerVersionRequest,
) -> R<wire::DeleteLayerVersionResponse> {
    let (ctl, caller) = (&cx.ctl, &cx.caller);
    let name = required_str(r.layer_name, "LayerName")?;
    let version = required(r.layer_version, "LayerVersion")?;
    ctl.delete_layer_version(caller, &name, version).await?;
    Ok(wire::DeleteLayerVersionResponse::default())
}
