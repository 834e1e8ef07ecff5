//! herald: self-hosted email newsletter dispatch. See ARCHITECTURE.md for the
//! map of modules and the invariants they keep.

pub mod bounce;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod holder;
pub mod home;
pub mod http;
pub mod import;
pub mod mailer;
pub mod private_fs;
pub mod render;
pub mod safe_text;
pub mod schedule;
pub mod secrets;
pub mod sigbus;
pub mod store;
pub mod telemetry;
pub mod test_copy;
pub mod token;
