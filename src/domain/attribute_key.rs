//! Subscriber attribute keys: what a key may be. Audience filters,
//! placeholders and templates all name attributes by such keys.

/// The longest attribute key.
pub const MAX_ATTR_KEY: usize = 64;

/// Whether `key` can name a subscriber attribute: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn is_attr_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_ATTR_KEY
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
