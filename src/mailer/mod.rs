//! The only module that knows lettre: MIME building, headers, DKIM, and the
//! transports (SMTP connections, outbox files).

pub mod dkim;
pub mod dkim_keys;
pub mod message;
pub mod qp;
pub mod transport;

pub use message::{MessageSpec, OutgoingMessage};
