//! Web functions (`Type=HTTP`) behind their function URL: the URL's qualifier resolved like Invoke, the request
//! proxied to an instance through the engine, and an invocation record for each request once its response has
//! been streamed (the bootstrap's output since the previous request is its log).

use engine::{EngineError, WebReply, WebRequest};

use crate::invoke::Target;
use crate::triggers::FunctionUrl;
use crate::{Control, ControlError, Result};

/// A function URL's qualifier resolved to the record that runs.
pub struct ResolvedUrl(pub(crate) Target);

impl ResolvedUrl {
    /// Whether the function behind the URL is a web function (`Type=HTTP`).
    pub fn is_web(&self) -> bool {
        self.0.snap.config.function_type == "HTTP"
    }

    /// `InstanceConcurrencyConfig.MaxConcurrency` (1–100), 1 when unset (SCF: one request per instance).
    pub fn max_concurrency(&self) -> u32 {
        self.0
            .snap
            .config
            .stored
            .get("InstanceConcurrencyConfig")
            .and_then(|c| c.get("MaxConcurrency"))
            .and_then(|m| m.as_u64())
            .map(|m| m.clamp(1, 100) as u32)
            .unwrap_or(1)
    }

    /// The version the URL's qualifier routed to.
    pub fn version(&self) -> &str {
        &self.0.version
    }

    pub fn memory_mb(&self) -> i64 {
        self.0.snap.config.memory_size
    }

    pub fn timeout_s(&self) -> i64 {
        self.0.snap.config.timeout
    }
}

/// The message of `Invoke` on a web function.
pub(crate) fn not_invocable(name: &str) -> ControlError {
    ControlError::Unsupported(format!(
        "function {name} is a web function (Type=HTTP): it is called through its function URL (an http \
         trigger), not through Invoke"
    ))
}

impl Control {
    /// Resolves the qualifier a function URL is bound to (an alias follows its weights).
    pub async fn resolve_function_url(&self, url: &FunctionUrl) -> Result<ResolvedUrl> {
        self.engine()?;
        let inv = crate::Invocation {
            namespace: url.trigger.key.namespace.clone(),
            name: url.trigger.key.name.clone(),
            qualifier: Some(url.trigger.qualifier.clone()),
            default_qualifier: model::Qualifier::LATEST,
            routing_key: Default::default(),
            event: Vec::new(),
            region: url.region.clone(),
        };
        Ok(ResolvedUrl(self.resolve(&url.owner, &inv).await?))
    }

    /// Proxies one request to the web function behind a URL. The invocation record is written once the exchange
    /// is over (in the background: the response streams meanwhile).
    pub async fn serve_web(
        &self,
        url: &FunctionUrl,
        target: &ResolvedUrl,
        req: WebRequest,
    ) -> Result<WebReply> {
        let engine = self.engine()?;
        let t = &target.0;
        let spec = self
            .function_spec(&url.owner, &t.key, &t.row, &t.snap, &url.region)
            .await?;
        // Held until the exchange ends: each request counts its function's memory against the concurrency limits
        // (exact for `MaxConcurrency` 1; with more requests per instance it counts each request, stricter than
        // SCF's instances × memory).
        let permit = self.admit(&t.key, t.snap.config.memory_size).await?;
        let start_ms = store::now_ms();
        let mut reply = engine.web_request(&spec, req).await.map_err(|e| match e {
            EngineError::Throttled { scope, limit } => {
                self.metrics.observe(432, 0.0, false);
                ControlError::Throttled { scope, limit }
            }
            other => ControlError::Execution(other.to_string()),
        })?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = std::mem::replace(&mut reply.done, rx);
        let me = self.clone();
        let (app_id, key, qualifier, memory_mb) = (
            url.owner.app_id,
            t.key.clone(),
            t.row.qualifier.clone(),
            t.snap.config.memory_size,
        );
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(d) = done.await else { return };
            me.metrics
                .observe(d.status_code, d.duration_ms, d.cold_start);
            let ret = d.error.as_ref().map(|e| e.to_json()).unwrap_or_default();
            me.queue_record(store::InvocationRecord {
                request_id: d.request_id.clone(),
                app_id,
                namespace: key.namespace.clone(),
                function_name: key.name.clone(),
                qualifier,
                start_ms,
                duration_us: (d.duration_ms * 1000.0) as i64,
                bill_ms: d.duration_ms.ceil().max(1.0) as i64,
                memory_mb,
                mem_bytes: d.mem_usage_bytes as i64,
                status_code: i64::from(d.status_code),
                ret_msg: crate::records::stored_result(&ret, crate::records::RECORD_RESULT_BYTES),
                log: crate::records::stored_log(&d.log, crate::records::RECORD_LOG_BYTES),
                cold_start: d.cold_start,
                retry_num: 0,
            });
            let _ = tx.send(d);
        });
        Ok(reply)
    }
}

impl Control {
    /// Runs the event function behind a URL (already resolved) with the API-gateway event under `request_id`.
    pub async fn run_function_url(
        &self,
        url: &FunctionUrl,
        target: &ResolvedUrl,
        event: Vec<u8>,
        request_id: String,
    ) -> Result<engine::InvokeOutcome> {
        if target.is_web() {
            return Err(not_invocable(&url.trigger.key.name));
        }
        self.run(
            &url.owner,
            &target.0,
            &url.region,
            event,
            Some(request_id),
            0,
            None,
        )
        .await
    }
}
