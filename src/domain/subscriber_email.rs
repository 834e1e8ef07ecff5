//! `SubscriberEmail`: an address an SMTP envelope will accept.

use std::fmt;

use email_address::EmailAddress;

/// A trimmed, syntactically valid mailbox address: ASCII local part without
/// quotes or whitespace, a domain with at least one dot, no domain literals,
/// at most 254 octets. The domain is normalised to lower-case ASCII: an
/// internationalised domain becomes its IDNA (UTS-46) A-label form, so
/// `a@bücher.de` and `a@xn--bcher-kva.de` are one subscriber and the SMTP
/// envelope stays ASCII. A non-ASCII local part would need SMTPUTF8, which
/// herald does not send, so it is refused. The local part is kept as given
/// (uniqueness in the store is case-insensitive) but may not start with a
/// character a spreadsheet reads as a formula (`=`, `+`, `-`, `@`).
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
    #[error(
        "email address `{0}` has a non-ASCII local part, which needs SMTPUTF8; herald sends ASCII envelopes only"
    )]
    NonAsciiLocalPart(String),
    #[error(
        "email address `{0}` starts with `{1}`, which spreadsheets run as a formula; such addresses are refused"
    )]
    FormulaPrefix(String, char),
    #[error("email address `{0}` has an invalid internationalised domain")]
    Idna(String),
    #[error("`{0}` is not a valid email address")]
    Syntax(String),
}

/// First characters a spreadsheet treats as the start of a formula (the
/// OWASP CSV-injection list, less tab and CR, which never reach here).
pub const FORMULA_PREFIXES: [char; 4] = ['=', '+', '-', '@'];

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
        if !local.is_ascii() {
            return Err(EmailError::NonAsciiLocalPart(s.to_string()));
        }
        if local.contains('"') || local.contains('\\') {
            return Err(EmailError::LocalPart);
        }
        if let Some(c) = local
            .chars()
            .next()
            .filter(|c| FORMULA_PREFIXES.contains(c))
        {
            return Err(EmailError::FormulaPrefix(s.to_string(), c));
        }
        // UTS-46 maps Unicode (and fullwidth) domains to their ASCII
        // A-label form; plain ASCII domains skip it (most of an import).
        let ascii_domain;
        let domain = if domain.is_ascii() {
            domain
        } else {
            ascii_domain = idna::domain_to_ascii_strict(domain)
                .map_err(|_| EmailError::Idna(s.to_string()))?;
            ascii_domain.as_str()
        };
        if domain.starts_with('[')
            || !domain.contains('.')
            || !EmailAddress::is_valid_local_part(local)
            || !EmailAddress::is_valid_domain(domain)
        {
            return Err(EmailError::Syntax(s.to_string()));
        }
        let domain = domain.to_ascii_lowercase();
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

impl serde::Serialize for SubscriberEmail {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
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
    fn internationalised_domains_are_stored_as_a_labels() {
        let u = SubscriberEmail::parse("a@bücher.de").unwrap();
        let a = SubscriberEmail::parse("a@xn--bcher-kva.de").unwrap();
        assert_eq!(u, a);
        assert_eq!(u.as_ref(), "a@xn--bcher-kva.de");
        // Fullwidth letters map to their ASCII forms (UTS-46).
        let f = SubscriberEmail::parse("a@\u{ff45}xample.org").unwrap();
        assert_eq!(f.as_ref(), "a@example.org");
        assert!(SubscriberEmail::parse("a@b\u{fc}cher.de")
            .unwrap()
            .as_ref()
            .is_ascii());
    }

    #[test]
    fn refuses_non_ascii_local_parts_and_formula_prefixes() {
        assert!(matches!(
            SubscriberEmail::parse("j\u{f6}rg@example.org"),
            Err(EmailError::NonAsciiLocalPart(_))
        ));
        for bad in [
            "=cmd@example.org",
            "+a@example.org",
            "-a@example.org",
            "@a@example.org",
        ] {
            assert!(SubscriberEmail::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(SubscriberEmail::parse("a=b@example.org").is_ok());
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

        #[test]
        fn parsed_addresses_are_always_ascii(s in "\\PC{0,8}@\\PC{1,12}\\.[a-z]{2,4}") {
            if let Ok(parsed) = SubscriberEmail::parse(&s) {
                prop_assert!(parsed.as_ref().is_ascii());
            }
        }
    }
}
