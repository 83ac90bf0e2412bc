use std::io;

/// Everything that can go wrong while planning, starting or supervising a sandboxed instance.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The instance spec cannot be turned into a safe plan.
    #[error("invalid instance spec: {0}")]
    InvalidSpec(String),
    /// A system call failed while applying the plan.
    #[error("{op} {detail}: {source}")]
    Sys {
        op: &'static str,
        detail: String,
        #[source]
        source: io::Error,
    },
    /// The helper reported a failure while setting the instance up (the message is the helper's error).
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// Starting the helper process failed.
    #[error("starting the sandbox helper {helper}: {source}")]
    Spawn {
        helper: String,
        #[source]
        source: io::Error,
    },
    /// The helper broke the parent/helper protocol (or the plan could not be encoded or decoded).
    #[error("sandbox helper protocol: {0}")]
    Protocol(String),
    /// Reading or cleaning up the instance's cgroup failed.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl SandboxError {
    pub(crate) fn sys(op: &'static str, detail: impl Into<String>, source: io::Error) -> Self {
        SandboxError::Sys {
            op,
            detail: detail.into(),
            source,
        }
    }

    pub(crate) fn last_os(op: &'static str, detail: impl Into<String>) -> Self {
        Self::sys(op, detail, io::Error::last_os_error())
    }
}
