//! The one integration-test binary: each module drives herald through its
//! public boundary (the built binary, the library API) against a real SQLite
//! file in a fresh temporary directory.

mod abort;
mod archive;
mod audience;
mod bounces;
mod config;
mod db_copy;
mod delivery;
mod demo;
mod design;
mod dkim;
mod engine_clock;
mod guards;
mod helpers;
mod http;
mod installation;
mod interop;
mod overview;
mod personalise;
mod recorder;
mod render;
mod scale_out;
mod schedule;
mod security;
mod smtp_server;
mod stalls;
mod subscribers;
mod test_copy;
mod unsubscribe_mailto;
