//! The Tencent Cloud API 3.0 protocol for SCF: TC3 signature verification, action dispatch, the wire models
//! generated from the official API definition, and the `{"Response":…}` envelope. No business rule lives here:
//! each action turns its wire request into a typed call on the control plane and its result back into wire form.

mod actions;
pub mod download;
pub mod error;
mod serve;
mod server;
pub mod stream;
pub mod tc3;
mod views;
pub mod wire;

pub use error::ApiError;
pub use serve::serve;
pub use server::{ApiConfig, router};
pub use stream::StreamConfig;

/// The actions Stratus serves; every other action of the API answers `UnsupportedOperation`.
pub use actions::SERVED;
