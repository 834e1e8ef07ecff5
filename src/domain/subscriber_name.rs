//! `SubscriberName`: a display name safe to put in headers and pages.

use std::fmt;

/// A trimmed, non-empty name of at most 200 characters with no control
/// characters (so no header injection through CR/LF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name contains a control character or line break")]
    ControlCharacter,
    #[error("name is longer than 200 characters")]
    TooLong,
}

impl SubscriberName {
    pub fn parse(input: &str) -> Result<SubscriberName, NameError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        if s.chars().count() > 200 {
            return Err(NameError::TooLong);
        }
        Ok(SubscriberName(s.to_string()))
    }

    /// `None` for a blank input, an error for a bad one.
    pub fn parse_optional(input: &str) -> Result<Option<SubscriberName>, NameError> {
        if input.trim().is_empty() {
            Ok(None)
        } else {
            SubscriberName::parse(input).map(Some)
        }
    }
}

impl AsRef<str> for SubscriberName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_unicode_names_and_trims() {
        assert_eq!(
            SubscriberName::parse("  Zoë Ångström ").unwrap().as_ref(),
            "Zoë Ångström"
        );
        assert_eq!(SubscriberName::parse_optional("   ").unwrap(), None);
    }

    proptest! {
        #[test]
        fn never_accepts_control_characters(a in ".{0,10}", b in ".{0,10}", c in "[\\x00-\\x1f\\x7f]") {
            let input = format!("{a}x{c}x{b}");
            prop_assert!(SubscriberName::parse(&input).is_err());
        }
    }
}
