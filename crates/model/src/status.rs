//! Statuses of functions, versions and layer versions, and which call each status accepts.

use std::fmt;
use std::str::FromStr;

/// The status of one function record (`$LATEST` or a published version), exactly SCF's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FunctionStatus {
    Creating,
    CreateFailed,
    Active,
    Updating,
    UpdateFailed,
    Publishing,
    PublishFailed,
    Deleting,
    DeleteFailed,
}

impl FunctionStatus {
    pub const ALL: [FunctionStatus; 9] = [
        Self::Creating,
        Self::CreateFailed,
        Self::Active,
        Self::Updating,
        Self::UpdateFailed,
        Self::Publishing,
        Self::PublishFailed,
        Self::Deleting,
        Self::DeleteFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::CreateFailed => "CreateFailed",
            Self::Active => "Active",
            Self::Updating => "Updating",
            Self::UpdateFailed => "UpdateFailed",
            Self::Publishing => "Publishing",
            Self::PublishFailed => "PublishFailed",
            Self::Deleting => "Deleting",
            Self::DeleteFailed => "DeleteFailed",
        }
    }

    /// A transitional status is one an operation is still driving; every other status is terminal.
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Updating | Self::Publishing | Self::Deleting
        )
    }

    /// A short human description shown as `StatusDesc`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Creating => "the function is being created",
            Self::CreateFailed => "the function failed to be created",
            Self::Active => "",
            Self::Updating => "the function is being updated",
            Self::UpdateFailed => "the function failed to be updated",
            Self::Publishing => "the function version is being published",
            Self::PublishFailed => "the function version failed to be published",
            Self::Deleting => "the function is being deleted",
            Self::DeleteFailed => "the function failed to be deleted",
        }
    }
}

impl fmt::Display for FunctionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

impl FromStr for FunctionStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// A mutating call on a function record, as far as the status rules are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionAction {
    UpdateFunctionCode,
    UpdateFunctionConfiguration,
    PublishVersion,
    DeleteFunction,
    DeleteFunctionVersion,
    Invoke,
}

impl FunctionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UpdateFunctionCode => "UpdateFunctionCode",
            Self::UpdateFunctionConfiguration => "UpdateFunctionConfiguration",
            Self::PublishVersion => "PublishVersion",
            Self::DeleteFunction => "DeleteFunction",
            Self::DeleteFunctionVersion => "DeleteFunctionVersion",
            Self::Invoke => "Invoke",
        }
    }
}

/// Why a call was refused in the record's current status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The record is in a transitional status: `FailedOperation.FunctionStatusError`.
    Transitional {
        status: FunctionStatus,
        action: FunctionAction,
    },
    /// The record is in a terminal status that does not accept the call: the action's own failure code.
    NotAllowed {
        status: FunctionStatus,
        action: FunctionAction,
    },
}

impl Rejection {
    pub fn message(&self) -> String {
        let (Self::Transitional { status, action } | Self::NotAllowed { status, action }) = self;
        format!(
            "Function status {status} is not allowed to do {}.",
            action.as_str()
        )
    }
}

/// What deleting a record in its current status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Start a delete operation.
    Start,
    /// A delete is already running: accepting again changes nothing.
    AlreadyDeleting,
}

/// The acceptance table of the lifecycle: may `action` start on a record in `status`?
pub fn check(status: FunctionStatus, action: FunctionAction) -> Result<(), Rejection> {
    use FunctionAction as A;
    use FunctionStatus as S;
    let allowed = match action {
        A::UpdateFunctionCode | A::UpdateFunctionConfiguration => {
            matches!(status, S::Active | S::UpdateFailed)
        }
        A::PublishVersion => status == S::Active,
        A::DeleteFunction | A::DeleteFunctionVersion => matches!(
            status,
            S::Active | S::CreateFailed | S::UpdateFailed | S::DeleteFailed | S::PublishFailed
        ),
        // `$LATEST` runs its serving snapshot while an update is applied or after one failed; a version runs
        // only when Active (see `check_invoke`).
        A::Invoke => matches!(status, S::Active | S::Updating | S::UpdateFailed),
    };
    if allowed {
        Ok(())
    } else if status.is_transitional() {
        Err(Rejection::Transitional { status, action })
    } else {
        Err(Rejection::NotAllowed { status, action })
    }
}

/// May a record be invoked? `$LATEST` runs its serving snapshot when Active, Updating or UpdateFailed; a published
/// version only when Active. A refusal is SCF's runtime status 438.
pub fn check_invoke(status: FunctionStatus, latest: bool) -> Result<(), Rejection> {
    let action = FunctionAction::Invoke;
    if latest {
        return check(status, action);
    }
    if status == FunctionStatus::Active {
        Ok(())
    } else if status.is_transitional() {
        Err(Rejection::Transitional { status, action })
    } else {
        Err(Rejection::NotAllowed { status, action })
    }
}

/// Deleting is idempotent while a delete runs; otherwise it follows [`check`].
pub fn check_delete(
    status: FunctionStatus,
    action: FunctionAction,
) -> Result<DeleteOutcome, Rejection> {
    if status == FunctionStatus::Deleting {
        return Ok(DeleteOutcome::AlreadyDeleting);
    }
    check(status, action).map(|()| DeleteOutcome::Start)
}

/// The status of one layer version, exactly SCF's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerStatus {
    Publishing,
    PublishFailed,
    Active,
    Deleting,
    DeleteFailed,
    Deleted,
}

impl LayerStatus {
    pub const ALL: [LayerStatus; 6] = [
        Self::Publishing,
        Self::PublishFailed,
        Self::Active,
        Self::Deleting,
        Self::DeleteFailed,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publishing => "Publishing",
            Self::PublishFailed => "PublishFailed",
            Self::Active => "Active",
            Self::Deleting => "Deleting",
            Self::DeleteFailed => "DeleteFailed",
            Self::Deleted => "Deleted",
        }
    }

    pub fn is_transitional(self) -> bool {
        matches!(self, Self::Publishing | Self::Deleting)
    }

    /// DeleteLayerVersion is accepted in these statuses.
    pub fn accepts_delete(self) -> bool {
        matches!(
            self,
            Self::Active | Self::PublishFailed | Self::DeleteFailed
        )
    }
}

impl fmt::Display for LayerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LayerStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FunctionAction as A;
    use FunctionStatus as S;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
        }
        for s in LayerStatus::ALL {
            assert_eq!(s.as_str().parse::<LayerStatus>(), Ok(s));
        }
        assert!("active".parse::<S>().is_err());
    }

    /// The table of lifecycle.md, row by row.
    #[test]
    fn acceptance_table() {
        let update = [A::UpdateFunctionCode, A::UpdateFunctionConfiguration];
        for a in update {
            assert!(check(S::Active, a).is_ok());
            assert!(check(S::UpdateFailed, a).is_ok());
            assert!(matches!(
                check(S::Creating, a),
                Err(Rejection::Transitional { .. })
            ));
            assert!(matches!(
                check(S::Updating, a),
                Err(Rejection::Transitional { .. })
            ));
            assert!(matches!(
                check(S::Deleting, a),
                Err(Rejection::Transitional { .. })
            ));
            assert!(matches!(
                check(S::CreateFailed, a),
                Err(Rejection::NotAllowed { .. })
            ));
            assert!(matches!(
                check(S::DeleteFailed, a),
                Err(Rejection::NotAllowed { .. })
            ));
        }
        assert!(check(S::Active, A::PublishVersion).is_ok());
        for s in [S::CreateFailed, S::UpdateFailed, S::DeleteFailed] {
            assert!(matches!(
                check(s, A::PublishVersion),
                Err(Rejection::NotAllowed { .. })
            ));
        }
        for s in [S::Active, S::CreateFailed, S::UpdateFailed, S::DeleteFailed] {
            assert_eq!(check_delete(s, A::DeleteFunction), Ok(DeleteOutcome::Start));
        }
        assert_eq!(
            check_delete(S::Deleting, A::DeleteFunction),
            Ok(DeleteOutcome::AlreadyDeleting)
        );
        assert!(matches!(
            check_delete(S::Creating, A::DeleteFunction),
            Err(Rejection::Transitional { .. })
        ));
        assert!(matches!(
            check_delete(S::Updating, A::DeleteFunction),
            Err(Rejection::Transitional { .. })
        ));
        assert!(check_delete(S::PublishFailed, A::DeleteFunctionVersion).is_ok());
        assert!(matches!(
            check_delete(S::Publishing, A::DeleteFunctionVersion),
            Err(Rejection::Transitional { .. })
        ));
    }

    /// The Invoke row of lifecycle.md's table, and versions.
    #[test]
    fn invoke_rules() {
        for s in [S::Active, S::Updating, S::UpdateFailed] {
            assert!(check_invoke(s, true).is_ok(), "{s}");
        }
        for s in [S::Creating, S::CreateFailed, S::Deleting, S::DeleteFailed] {
            assert!(check_invoke(s, true).is_err(), "{s}");
        }
        assert!(check_invoke(S::Active, false).is_ok());
        for s in [
            S::Publishing,
            S::PublishFailed,
            S::Deleting,
            S::DeleteFailed,
        ] {
            assert!(check_invoke(s, false).is_err(), "{s}");
        }
    }

    #[test]
    fn rejection_message_is_scf_shaped() {
        let r = check(S::Updating, A::UpdateFunctionCode).expect_err("updating rejects");
        assert_eq!(
            r.message(),
            "Function status Updating is not allowed to do UpdateFunctionCode."
        );
    }

    #[test]
    fn layer_delete_rules() {
        assert!(LayerStatus::Active.accepts_delete());
        assert!(LayerStatus::PublishFailed.accepts_delete());
        assert!(LayerStatus::DeleteFailed.accepts_delete());
        assert!(!LayerStatus::Publishing.accepts_delete());
        assert!(!LayerStatus::Deleting.accepts_delete());
        assert!(!LayerStatus::Deleted.accepts_delete());
    }
}
