//! The only module that knows lettre: MIME building, headers, DKIM, and the
//! transports (SMTP connections, outbox files).

pub(crate) mod dkim;
pub(crate) mod dkim_keys;
pub(crate) mod message;
pub(crate) mod qp;
pub(crate) mod transport;

pub use message::OutgoingMessage;
