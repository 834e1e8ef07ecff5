//! The one integration-test binary: each module drives herald through its
//! public boundary (the built binary, the library API) against a real SQLite
//! file in a fresh temporary directory.

mod archive;
mod audience;
mod config;
mod delivery;
mod demo;
mod dkim;
mod helpers;
mod http;
mod interop;
mod personalise;
mod render;
mod schedule;
mod security;
mod smtp_server;
mod subscribers;
mod unsubscribe_mailto;
