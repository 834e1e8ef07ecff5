//! Small checks shared by issue files, their Markdown bodies and designs:
//! slugs and absolute URLs.

/// `[a-z0-9-]`, 1..=100 characters, no leading or trailing hyphen.
pub fn check_slug(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.len() > 100 {
        return Err("must be 1 to 100 characters");
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may only contain a-z, 0-9 and -");
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("may not start or end with -");
    }
    Ok(())
}

/// An absolute http(s) URL with a host, no spaces or control characters;
/// `mailto:` too where `mailto` is true.
pub fn check_url(s: &str, mailto: bool) -> Result<(), &'static str> {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters");
    }
    if s.contains(['"', '<', '>', '\\']) {
        return Err("contains a character not allowed in a URL (\" < > \\)");
    }
    if mailto {
        if let Some(rest) = s.strip_prefix("mailto:") {
            return if rest.is_empty() {
                Err("is an empty mailto: link")
            } else {
                Ok(())
            };
        }
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        None => Err(if mailto {
            "is not an absolute http(s):// or mailto: URL"
        } else {
            "is not an absolute http(s):// URL"
        }),
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            if host.is_empty() || host.starts_with('.') || host.starts_with(':') {
                Err("has no host")
            } else {
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http_or_mailto() {
        assert!(check_url("https://example.org/a.jpg", false).is_ok());
        assert!(check_url("http://example.org", false).is_ok());
        assert!(check_url("images/a.jpg", false).is_err());
        assert!(check_url("//example.org/a.jpg", false).is_err());
        assert!(check_url("javascript:alert(1)", true).is_err());
        assert!(check_url("mailto:editor@example.org", true).is_ok());
        assert!(check_url("mailto:editor@example.org", false).is_err());
        assert!(check_url("https:///path", false).is_err());
        assert!(check_url("https://example.org/a b", false).is_err());
    }

    #[test]
    fn slugs_are_lowercase_ascii_words() {
        assert!(check_slug("2018-12-14-migration-news").is_ok());
        assert!(check_slug("Migration").is_err());
        assert!(check_slug("-x").is_err());
        assert!(check_slug("").is_err());
        assert!(check_slug("a/b").is_err());
    }
}
