//! The one place where failures become SCF error codes.

use control::ControlError;
use model::{FunctionAction, Rejection};

/// An error as the envelope carries it: `{"Error":{"Code","Message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        ApiError::new(
            "MissingParameter",
            format!("The parameter `{field}` is required."),
        )
    }

    pub fn invalid_value(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(format!("InvalidParameterValue.{field}"), message)
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        let code: String = match &e {
            ControlError::Invalid(v) => format!("InvalidParameterValue.{}", v.field),
            ControlError::FunctionNotFound { .. } => "ResourceNotFound.Function".into(),
            ControlError::NamespaceNotFound(_) => "ResourceNotFound.Namespace".into(),
            ControlError::VersionNotFound { .. } => "ResourceNotFound.Version".into(),
            ControlError::QualifierNotFound { .. } => "ResourceNotFound.Qualifier".into(),
            ControlError::AliasNotFound { .. } => "ResourceNotFound.Alias".into(),
            ControlError::LayerNotFound(_) => "ResourceNotFound.Layer".into(),
            ControlError::LayerVersionNotFound { .. } => "ResourceNotFound.LayerVersion".into(),
            ControlError::FunctionExists(_) => "ResourceInUse.Function".into(),
            ControlError::NamespaceExists(_) => "ResourceInUse.Namespace".into(),
            ControlError::AliasExists(_) => "ResourceInUse.Alias".into(),
            ControlError::TriggerNotFound(_) => "ResourceNotFound.Trigger".into(),
            ControlError::TriggerExists { .. } => "ResourceInUse.Trigger".into(),
            ControlError::TriggerRejected { .. } => "FailedOperation.CreateTrigger".into(),
            ControlError::TriggerUnchanged(_) => "FailedOperation.UpdateTriggerStatus".into(),
            ControlError::UnsupportedTrigger(_) => "UnsupportedOperation.Trigger".into(),
            ControlError::Rejected(Rejection::Transitional { .. }) => {
                "FailedOperation.FunctionStatusError".into()
            }
            ControlError::Rejected(Rejection::NotAllowed { action, .. }) => match action {
                FunctionAction::UpdateFunctionCode => "FailedOperation.UpdateFunctionCode",
                FunctionAction::UpdateFunctionConfiguration => {
                    "FailedOperation.UpdateFunctionConfiguration"
                }
                FunctionAction::PublishVersion => "FailedOperation.PublishVersion",
                FunctionAction::DeleteFunction | FunctionAction::DeleteFunctionVersion => {
                    "FailedOperation.DeleteFunction"
                }
                FunctionAction::Invoke => "FailedOperation.FunctionStatusError",
            }
            .into(),
            ControlError::AliasBound { .. } => "UnsupportedOperation.AliasBind".into(),
            ControlError::LayerBusy { .. } => "FailedOperation.OperationConflict".into(),
            ControlError::LimitExceeded { what, .. } => format!("LimitExceeded.{what}"),
            ControlError::DeleteNamespace(_) => "FailedOperation.DeleteNamespace".into(),
            ControlError::ReservedExceedTotal(_) => "FailedOperation.ReservedExceedTotal".into(),
            ControlError::Unsupported(_) => "UnsupportedOperation".into(),
            ControlError::DomainNotFound(_) => "FailedOperation.Domain.UnExist".into(),
            ControlError::DomainExists(_) => "ResourceInUse".into(),
            ControlError::EventTooLarge(_) => "InvalidParameter.RequestTooLarge".into(),
            ControlError::AsyncEventNotFound(_) => "ResourceNotFound.AsyncEvent".into(),
            ControlError::AsyncEventEnded { .. } => "FailedOperation.AsyncEventStatus".into(),
            ControlError::Throttled { .. } => "ResourceUnavailable.ConcurrencyLimit".into(),
            ControlError::Execution(_) => "FailedOperation.InvokeFunction".into(),
            ControlError::Store(_) | ControlError::Internal(_) => {
                tracing::error!(error = %e, "internal error");
                return ApiError::new(
                    "InternalError",
                    "An internal error occurred; the request may be retried.",
                );
            }
        };
        ApiError { code, message }
    }
}
