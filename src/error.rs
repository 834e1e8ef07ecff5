//! Error classification for exit codes: [`BadInput`] marks errors the operator
//! fixes by changing input or configuration (exit 2); everything else is a
//! runtime failure (exit 1).

use std::fmt;

/// Bad input or configuration. The message names the file, line or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(String);

impl BadInput {
    pub fn new(message: impl Into<String>) -> BadInput {
        BadInput(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Build an `anyhow::Error` carrying [`BadInput`].
#[macro_export]
macro_rules! bad_input {
    ($($arg:tt)*) => {
        ::anyhow::Error::new($crate::error::BadInput::new(format!($($arg)*)))
    };
}

/// Process exit codes, as documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
}

/// Is any cause in the chain [`BadInput`]?
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<BadInput>().is_some())
}

/// Exit code for an error: 2 when any cause in the chain is [`BadInput`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if is_bad_input(err) {
        exit::BAD_INPUT
    } else {
        exit::FAILURE
    }
}
