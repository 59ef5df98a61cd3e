//! Lowercase hex encoding and strict decoding, for key files and fingerprints.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` to `out` as lowercase hex. `out` should have the capacity reserved when it
/// holds a secret, so that growing it leaves no copy behind.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

/// Decodes exactly `out.len()` bytes from `text` (any case, no separators). Returns false when
/// `text` has another length or a non-hex character; `out` is then unspecified.
pub(crate) fn decode_into(text: &str, out: &mut [u8]) -> bool {
    let text = text.as_bytes();
    if text.len() != out.len() * 2 {
        return false;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => *byte = (high << 4) | low,
            _ => return false,
        }
    }
    true
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_any_case() {
        let bytes = [0x00, 0x01, 0xab, 0xff, 0x7e];
        let text = encode(&bytes);
        assert_eq!(text, "0001abff7e");
        let mut out = [0u8; 5];
        assert!(decode_into(&text, &mut out));
        assert_eq!(out, bytes);
        assert!(decode_into("0001ABFF7E", &mut out));
        assert_eq!(out, bytes);
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        let mut out = [0u8; 2];
        assert!(!decode_into("abc", &mut out));
        assert!(!decode_into("abcdef", &mut out));
        assert!(!decode_into("abcg", &mut out));
        assert!(!decode_into("ab d", &mut out));
        assert!(!decode_into("+1ab", &mut out));
        // Multi-byte UTF-8 never passes for a hex digit.
        assert!(!decode_into("é1a", &mut out));
    }
}
