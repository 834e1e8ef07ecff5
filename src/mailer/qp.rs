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
/// soft line break unless the piece ends a line.
pub fn encode_piece(text: &str, out: &mut Vec<u8>) {
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
    let encoded = quoted_printable::encode(input.as_bytes());
    out.extend_from_slice(&encoded);
    if !encoded.ends_with(b"\r\n") {
        out.extend_from_slice(b"=\r\n");
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

/// Per-issue cache of encoded static pieces, shared by all workers.
pub struct PieceCache {
    pieces: Vec<OnceLock<Vec<u8>>>,
}

impl PieceCache {
    pub fn new(pieces: usize) -> PieceCache {
        PieceCache {
            pieces: (0..pieces).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Append static piece `id` (encoding it the first time).
    pub fn append_static(&self, id: usize, text: &str, out: &mut Vec<u8>) {
        match self.pieces.get(id) {
            Some(slot) => out.extend_from_slice(slot.get_or_init(|| {
                let mut v = Vec::new();
                encode_piece(text, &mut v);
                v
            })),
            None => encode_piece(text, out),
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
        let mut out = Vec::new();
        for p in pieces {
            encode_piece(p, &mut out);
        }
        out
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

    proptest! {
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
