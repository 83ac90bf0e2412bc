//! Plain Stratus types: what a function, a version, an alias, a layer and a namespace are, their statuses and the
//! rules that say which call is accepted in which status, the limits, and the validation of names and settings.
//!
//! Nothing here does I/O: the control plane decides with these rules and the store records the outcome.

pub mod function;
pub mod layer;
pub mod limits;
pub mod status;
pub mod time;
pub mod validate;

pub use function::{
    Alias, CodeRef, ConfigPatch, EnvVar, Environment, FunctionConfig, FunctionKey, LayerRef,
    Qualifier, RoutingConfig, Snapshot, StatusReason, VersionMatch, VersionWeight,
};
pub use layer::LayerVersion;
pub use limits::Limits;
pub use status::{FunctionAction, FunctionStatus, LayerStatus, Rejection};
pub use validate::InvalidValue;
