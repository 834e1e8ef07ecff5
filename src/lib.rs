//! herald: self-hosted email newsletter dispatch. See ARCHITECTURE.md for the
//! map of modules and the invariants they keep.

pub mod cli;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod home;
pub mod http;
pub mod import;
pub mod mailer;
pub mod render;
pub mod schedule;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod test_copy;
pub mod token;
