//! `SubscriberEmail`: an address an SMTP envelope will accept.

use std::fmt;

use email_address::EmailAddress;

/// A trimmed, syntactically valid mailbox address: ASCII local part without
/// quotes or whitespace, a domain with at least one dot, no domain literals,
/// at most 254 octets. The domain is lower-cased; the local part is kept as
/// given (uniqueness in the store is case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberEmail(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email address is empty")]
    Empty,
    #[error("email address contains a control character or line break")]
    ControlCharacter,
    #[error("email address contains whitespace")]
    Whitespace,
    #[error("email address is longer than 254 characters")]
    TooLong,
    #[error("email address local part must be plain ASCII without quotes")]
    LocalPart,
    #[error("`{0}` is not a valid email address")]
    Syntax(String),
}

impl SubscriberEmail {
    pub fn parse(input: &str) -> Result<SubscriberEmail, EmailError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        if s.len() > 254 {
            return Err(EmailError::TooLong);
        }
        // The crate validates each side; splitting at the last `@` here
        // (no display text, no quoted local part can contain one after the
        // checks below) skips its display-name parsing, which was most of
        // the cost of a 1M-row import.
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| EmailError::Syntax(s.to_string()))?;
        if !local.is_ascii() || local.contains('"') || local.contains('\\') {
            return Err(EmailError::LocalPart);
        }
        if domain.starts_with('[')
            || !domain.contains('.')
            || !EmailAddress::is_valid_local_part(local)
            || !EmailAddress::is_valid_domain(domain)
        {
            return Err(EmailError::Syntax(s.to_string()));
        }
        let domain = domain.to_lowercase();
        if domain.starts_with('-') || domain.ends_with('.') || domain.contains("..") {
            return Err(EmailError::Syntax(s.to_string()));
        }
        Ok(SubscriberEmail(format!("{local}@{domain}")))
    }

    /// The part right of the `@`, lower-case.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl AsRef<str> for SubscriberEmail {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriberEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_domain() {
        let e = SubscriberEmail::parse("  Ana.Silva+news@Example.ORG ").unwrap();
        assert_eq!(e.as_ref(), "Ana.Silva+news@example.org");
        assert_eq!(e.domain(), "example.org");
    }

    #[test]
    fn rejects_what_an_smtp_envelope_would_refuse() {
        for bad in [
            "",
            "   ",
            "plainaddress",
            "@example.org",
            "ana@",
            "ana@localhost",
            "ana@[127.0.0.1]",
            "Ana <ana@example.org>",
            "\"ana smith\"@example.org",
            "ana smith@example.org",
            "ana@example.org\r\nBcc: victim@example.org",
            "ana@exa\nmple.org",
            "ana\u{0}@example.org",
            "ana..b@example.org",
            "ana@example..org",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn rejects_overlong_addresses() {
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(SubscriberEmail::parse(&long), Err(EmailError::TooLong));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = SubscriberEmail::parse(&s);
        }

        #[test]
        // Surrounding whitespace (a trailing newline from a file) is trimmed;
        // a CR or LF anywhere inside the address is always refused.
        fn parse_rejects_any_cr_or_lf(
            a in "[a-z0-9.]{1,12}",
            b in "[a-z0-9.@]{1,12}",
            brk in prop::sample::select(vec!["\r", "\n", "\r\n"]),
        ) {
            let input = format!("{a}{brk}{b}@example.org");
            prop_assert!(SubscriberEmail::parse(&input).is_err());
        }

        #[test]
        fn parsed_addresses_round_trip(local in "[a-zA-Z0-9][a-zA-Z0-9._+-]{0,20}", dom in "[a-z][a-z0-9]{0,10}\\.(org|net|com)") {
            prop_assume!(!local.contains("..") && !local.ends_with('.'));
            let input = format!("{local}@{dom}");
            let parsed = SubscriberEmail::parse(&input).unwrap();
            prop_assert_eq!(parsed.as_ref(), input.as_str());
            prop_assert!(!parsed.as_ref().contains(['\r', '\n', ' ']));
        }
    }
}
