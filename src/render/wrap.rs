//! Word wrapping for the plain-text twin: greedy, on spaces only, never
//! breaking a word (so a long URL stays whole on a line of its own).

/// Text lines are wrapped at this many characters.
pub const WIDTH: usize = 72;

/// Append `text` wrapped at `width` characters, each line ending in `\n`.
/// The first line starts with `first`, the others with `rest`. A `\n` in
/// `text` forces a line break; runs of spaces collapse.
pub fn wrap_into(out: &mut String, text: &str, width: usize, first: &str, rest: &str) {
    let mut prefix = first;
    for segment in text.split('\n') {
        let mut col = 0;
        let mut line_has_word = false;
        out.push_str(prefix);
        col += prefix.chars().count();
        for word in segment.split([' ', '\t']).filter(|w| !w.is_empty()) {
            let len = word.chars().count();
            if line_has_word && col + 1 + len > width {
                out.push('\n');
                out.push_str(rest);
                col = rest.chars().count();
                line_has_word = false;
            }
            if line_has_word {
                out.push(' ');
                col += 1;
            }
            out.push_str(word);
            col += len;
            line_has_word = true;
        }
        // No trailing spaces from an empty prefix-only line.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
        prefix = rest;
    }
}

/// `wrap_into` to a new string without the final newline.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    wrap_into(&mut out, text, width, first, rest);
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_on_spaces_with_prefixes() {
        assert_eq!(wrap("aa bb cc dd", 5, "", ""), "aa bb\ncc dd");
        assert_eq!(wrap("aa bb cc", 6, "- ", "  "), "- aa\n  bb\n  cc");
        assert_eq!(wrap("one\ntwo", 72, "", ""), "one\ntwo");
    }

    proptest! {
        #[test]
        fn never_breaks_or_loses_a_word(words in proptest::collection::vec("[a-z:/.]{1,120}", 0..30), width in 10usize..100) {
            let text = words.join(" ");
            let wrapped = wrap(&text, width, "", "");
            let back: Vec<&str> = wrapped.split_whitespace().collect();
            prop_assert_eq!(back, words.iter().map(String::as_str).collect::<Vec<_>>());
            for line in wrapped.lines() {
                prop_assert!(line.chars().count() <= width || !line.contains(' '));
            }
        }
    }
}
