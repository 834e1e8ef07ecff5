//! herald: self-hosted email newsletter dispatch. See ARCHITECTURE.md for the
//! map of modules and the invariants they keep.

pub(crate) mod bounce;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub(crate) mod holder;
pub(crate) mod home;
pub mod http;
pub mod import;
pub(crate) mod mailer;
pub(crate) mod private_fs;
pub mod render;
pub(crate) mod safe_text;
pub(crate) mod schedule;
pub mod secrets;
pub mod sigbus;
pub mod store;
pub mod telemetry;
pub(crate) mod test_copy;
pub mod token;
