//! Quoted-printable bodies assembled from pre-encoded pieces.
//!
//! Encoding a 35 KB HTML part per recipient was the largest cost of a live
//! send (lettre's chooser, CRLF pass and quoted-printable encoder: about a
//! third of the CPU). Quoted-printable allows a soft line break (`=` CRLF)
//! anywhere, so every piece can be encoded on its own, starting at column 0
//! and ending with a soft break, and the pieces concatenated: the result
//! decodes to the concatenated text. Static pieces are encoded once per
//! issue; only the few per-recipient values are encoded per message.

use std::sync::OnceLock;

/// Encode one piece: CRLF line ends, quoted-printable (lines ≤ 76), then a
/// soft line break unless the piece ends a line. The output is ASCII.
pub fn encode_piece(text: &str, out: &mut String) {
    if text.is_empty() {
        return;
    }
    let crlf;
    let input: &str = if text.contains('\n') {
        crlf = normalise_line_ends(text);
        &crlf
    } else {
        text
    };
    let encoded = quoted_printable::encode_to_str(input.as_bytes());
    out.push_str(&encoded);
    if !encoded.ends_with("\r\n") {
        out.push_str("=\r\n");
    }
}

fn normalise_line_ends(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + text.len() / 32);
    let mut prev = '\0';
    for c in text.chars() {
        if c == '\n' && prev != '\r' {
            s.push('\r');
        }
        s.push(c);
        prev = c;
    }
    s
}

/// Append `text` dot-stuffed for SMTP DATA (RFC 5321 4.5.2: a line that
/// starts with `.` gets a second one), `text` starting a line. Returns the
/// number of dots added. Every encoded piece starts a line (the one before
/// it ends with a hard or soft line break), so stuffing piece by piece is
/// stuffing the whole body.
pub fn stuff_into(text: &str, out: &mut String) -> usize {
    let finder = memchr::memmem::Finder::new(b"\r\n.");
    let mut dots = 0;
    if text.starts_with('.') {
        out.push('.');
        dots += 1;
    }
    let mut rest = text;
    while let Some(at) = finder.find(rest.as_bytes()) {
        // Up to and including the dot, then the stuffed second dot.
        out.push_str(&rest[..at + 3]);
        out.push('.');
        dots += 1;
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    dots
}

/// Undo [`stuff_into`] over whole lines: drop the first dot of every line
/// that starts with one.
pub fn unstuff(text: &str) -> Vec<u8> {
    let finder = memchr::memmem::Finder::new(b"\r\n..");
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.strip_prefix('.').unwrap_or(text).as_bytes();
    while let Some(at) = finder.find(rest) {
        // Up to and including the first dot; the second is dropped.
        out.extend_from_slice(&rest[..at + 3]);
        rest = &rest[at + 4..];
    }
    out.extend_from_slice(rest);
    out
}

/// A body being written: encoded pieces appended as they are, or
/// dot-stuffed for SMTP DATA.
pub struct BodyOut<'a> {
    pub buf: &'a mut String,
    /// Dot-stuff what is appended.
    pub stuffed: bool,
    /// Dots added by stuffing so far.
    pub dots: usize,
}

impl BodyOut<'_> {
    /// Append an encoded piece (ASCII, starting a line).
    pub fn push_encoded(&mut self, encoded: &str) {
        if self.stuffed {
            self.dots += stuff_into(encoded, self.buf);
        } else {
            self.buf.push_str(encoded);
        }
    }

    /// Encode one per-recipient piece and append it.
    pub fn push_piece(&mut self, text: &str) {
        if self.stuffed {
            let mut encoded = String::new();
            encode_piece(text, &mut encoded);
            self.push_encoded(&encoded);
        } else {
            encode_piece(text, self.buf);
        }
    }
}

/// One static piece, encoded, and dot-stuffed.
struct Encoded {
    plain: String,
    stuffed: String,
    dots: usize,
}

/// Per-issue cache of encoded static pieces, shared by all workers.
pub struct PieceCache {
    pieces: Vec<OnceLock<Encoded>>,
}

impl PieceCache {
    pub fn new(pieces: usize) -> PieceCache {
        PieceCache {
            pieces: (0..pieces).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Append static piece `id` (encoding it the first time).
    pub fn append_static(&self, id: usize, text: &str, out: &mut BodyOut<'_>) {
        let Some(slot) = self.pieces.get(id) else {
            return out.push_piece(text);
        };
        let e = slot.get_or_init(|| {
            let mut plain = String::new();
            encode_piece(text, &mut plain);
            let mut stuffed = String::with_capacity(plain.len() + 64);
            let dots = stuff_into(&plain, &mut stuffed);
            Encoded {
                plain,
                stuffed,
                dots,
            }
        });
        if out.stuffed {
            out.buf.push_str(&e.stuffed);
            out.dots += e.dots;
        } else {
            out.buf.push_str(&e.plain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A strict reference decoder (quoted_printable's own strict mode
    /// rejects a soft break that ends a later line).
    fn decode(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'=' if b[i + 1..].starts_with(b"\r\n") => i += 3,
                b'=' => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    assert_eq!(hex, hex.to_ascii_uppercase());
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
                b'\r' if b[i + 1..].starts_with(b"\n") => {
                    out.extend_from_slice(b"\r\n");
                    i += 2;
                }
                b'\r' | b'\n' => panic!("bare CR or LF"),
                c => {
                    assert!(c.is_ascii() && (c == b'\t' || !c.is_ascii_control()));
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    fn encode_all(pieces: &[&str]) -> Vec<u8> {
        let mut out = String::new();
        for p in pieces {
            encode_piece(p, &mut out);
        }
        out.into_bytes()
    }

    #[test]
    fn pieces_decode_to_their_concatenation_with_crlf_line_ends() {
        let pieces = [
            "<p>Hello ",
            "Zoë Ångström",
            ",</p>\n<a href=\"https://x.example/u?a=1&b=2\">",
            "x</a>\n",
        ];
        let out = encode_all(&pieces);
        let decoded = decode(&out);
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            pieces.concat().replace('\n', "\r\n")
        );
        assert!(out.iter().all(|b| b.is_ascii()));
    }

    /// Stuffing as RFC 5321 says it, line by line.
    fn stuffed_by_lines(text: &str) -> String {
        text.split_inclusive("\r\n")
            .map(|l| {
                if l.starts_with('.') {
                    format!(".{l}")
                } else {
                    l.to_string()
                }
            })
            .collect()
    }

    proptest! {
        /// Stuffing piece by piece (static pieces once per issue) is
        /// stuffing the whole body, and unstuffing gives it back.
        #[test]
        fn pieces_stuffed_one_by_one_are_the_body_stuffed(
            pieces in prop::collection::vec("(\\PC|\n|\\.|\\.\n){0,200}", 0..8),
            cached in prop::collection::vec(any::<bool>(), 8),
        ) {
            let cache = PieceCache::new(pieces.len());
            let (mut plain, mut stuffed) = (String::new(), String::new());
            let mut a = BodyOut { buf: &mut plain, stuffed: false, dots: 0 };
            for (i, p) in pieces.iter().enumerate() {
                if cached[i] { cache.append_static(i, p, &mut a) } else { a.push_piece(p) }
            }
            let mut b = BodyOut { buf: &mut stuffed, stuffed: true, dots: 0 };
            for (i, p) in pieces.iter().enumerate() {
                if cached[i] { cache.append_static(i, p, &mut b) } else { b.push_piece(p) }
            }
            let dots = b.dots;
            prop_assert_eq!(&stuffed, &stuffed_by_lines(&plain));
            prop_assert_eq!(stuffed.len() - dots, plain.len());
            prop_assert_eq!(unstuff(&stuffed), plain.into_bytes());
        }

        #[test]
        fn any_pieces_round_trip_and_keep_lines_short(pieces in prop::collection::vec("(\\PC|\n| ){0,300}", 0..8)) {
            let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let out = encode_all(&refs);
            for line in out.split(|b| *b == b'\n') {
                prop_assert!(line.len() <= 78, "line of {} bytes", line.len());
            }
            let decoded = decode(&out);
            let want = normalise_line_ends(&refs.concat());
            prop_assert_eq!(String::from_utf8(decoded).unwrap(), want);
        }
    }
}
