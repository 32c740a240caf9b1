//! The Rhai host: the engine that runs backfill scripts and the primitives they call.
//!
//! The strategy of a backfill — batching, concurrency, retries, resume — is a script;
//! the mechanics are the primitives registered here. [`engine::build`] is the one
//! place that builds the engine; [`run_file`] runs a script file the way
//! `barsmith run` does; [`docs::primitives`] lists every primitive with its doc.

pub mod check;
pub mod docs;
pub mod engine;
pub mod error;
pub mod friendly;
pub mod host;
pub mod primitives;
mod runner;
pub mod suggest;
pub mod types;
mod value;

pub use error::ScriptError;
pub use host::{Host, HostConfig, Output};
pub use runner::run_file;
