use model::{InvalidValue, Rejection};
use store::StoreError;
use thiserror::Error;

/// Why a use case refused or failed. The API layer maps each variant to one SCF error code.
#[derive(Debug, Error)]
pub enum ControlError {
    /// A parameter value SCF would refuse (`InvalidParameterValue.<field>`).
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("function {name} does not exist in namespace {namespace}")]
    FunctionNotFound { namespace: String, name: String },
    #[error("namespace {0} does not exist")]
    NamespaceNotFound(String),
    #[error("version {version} of function {name} does not exist")]
    VersionNotFound { name: String, version: String },
    #[error("qualifier {qualifier} of function {name} does not exist")]
    QualifierNotFound { name: String, qualifier: String },
    #[error("alias {alias} of function {name} does not exist")]
    AliasNotFound { name: String, alias: String },
    #[error("layer {0} does not exist")]
    LayerNotFound(String),
    #[error("version {version} of layer {name} does not exist")]
    LayerVersionNotFound { name: String, version: i64 },
    #[error("function {0} already exists")]
    FunctionExists(String),
    #[error("namespace {0} already exists")]
    NamespaceExists(String),
    #[error("alias {0} already exists")]
    AliasExists(String),
    #[error("{0}")]
    TriggerNotFound(String),
    #[error("function {function} already has a {trigger_type} trigger named {name}")]
    TriggerExists {
        function: String,
        trigger_type: String,
        name: String,
    },
    /// A trigger write refused in the function's status (SCF: `FailedOperation.CreateTrigger` for every trigger
    /// action).
    #[error("Function status {status} is not allowed to do {action}.")]
    TriggerRejected {
        status: model::FunctionStatus,
        action: &'static str,
    },
    /// UpdateTriggerStatus to the state the trigger is already in.
    #[error("{0}")]
    TriggerUnchanged(String),
    /// A trigger type Stratus does not serve (`UnsupportedOperation.Trigger`).
    #[error("{0}")]
    UnsupportedTrigger(String),
    /// The call is not accepted in the record's status.
    #[error("{}", .0.message())]
    Rejected(Rejection),
    #[error("version {version} is still routed to by alias {alias}: unbind it first")]
    AliasBound { version: String, alias: String },
    #[error("layer version {name}/{version} is {status}: try again when it is no longer changing")]
    LayerBusy {
        name: String,
        version: i64,
        status: model::LayerStatus,
    },
    /// A quota would be exceeded (`LimitExceeded.<what>`).
    #[error("{message}")]
    LimitExceeded { what: &'static str, message: String },
    #[error("{0}")]
    DeleteNamespace(String),
    /// A reservation that would leave less of its namespace's total unreserved than required.
    #[error("{0}")]
    ReservedExceedTotal(String),
    /// Too many concurrent invocations (SCF runtime status 432).
    #[error("ResourceLimitReached: {scope} allows {limit} concurrent invocations")]
    Throttled { scope: &'static str, limit: u32 },
    /// The execution plane could not run the invocation.
    #[error("the function could not be run: {0}")]
    Execution(String),
    /// An asynchronous event over 128 KB (`InvalidParameter.RequestTooLarge`).
    #[error("the event is {0} bytes; an asynchronous invocation takes at most 128 KB")]
    EventTooLarge(usize),
    #[error("asynchronous event {0} does not exist")]
    AsyncEventNotFound(String),
    /// TerminateAsyncEvent of an event that already ended (`FailedOperation.AsyncEventStatus`).
    #[error("asynchronous event {id} is {status}: only a RUNNING event can be terminated")]
    AsyncEventEnded { id: String, status: String },
    /// A custom domain the caller does not have (`FailedOperation.Domain.UnExist`).
    #[error("{0}")]
    DomainNotFound(String),
    /// A custom domain some account has already (`ResourceInUse`).
    #[error("{0}")]
    DomainExists(String),
    /// A feature Stratus does not offer (yet).
    #[error("{0}")]
    Unsupported(String),
    #[error("internal error: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = ControlError> = std::result::Result<T, E>;
