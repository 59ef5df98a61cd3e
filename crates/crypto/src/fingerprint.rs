//! [`Fingerprint`]: the SHA-256 of a public key, shown as 32 colon-separated lowercase hex
//! pairs like `salt-key` shows them, so an operator can compare keys by eye.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::hex;

/// A SHA-256 fingerprint shown as 32 colon-separated lowercase hex pairs (`"ab:cd:…"`), like
/// salt-key.
///
/// Parsing accepts the same text with or without the colons, in any case, with surrounding
/// whitespace trimmed; it always displays in the canonical form, so two parsed fingerprints
/// compare equal exactly when they name the same digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

/// Number of bytes in a fingerprint's digest.
const DIGEST_LEN: usize = 32;

impl Fingerprint {
    fn from_digest(digest: &[u8; DIGEST_LEN]) -> Self {
        let mut text = String::with_capacity(DIGEST_LEN * 3 - 1);
        for (i, byte) in digest.iter().enumerate() {
            if i > 0 {
                text.push(':');
            }
            hex::encode_into(&[*byte], &mut text);
        }
        Fingerprint(text)
    }

    /// The canonical text: 32 lowercase hex pairs joined by colons (95 characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 digest bytes.
    pub fn to_bytes(&self) -> [u8; DIGEST_LEN] {
        let mut digest = [0u8; DIGEST_LEN];
        let compact: String = self.0.split(':').collect();
        let decoded = hex::decode_into(&compact, &mut digest);
        debug_assert!(decoded, "a Fingerprint always holds canonical text");
        digest
    }
}

/// The fingerprint of a public key (or of any public bytes): SHA-256, shown as hex pairs.
pub fn fingerprint(public_bytes: &[u8]) -> Fingerprint {
    Fingerprint::from_digest(&Sha256::digest(public_bytes).into())
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The text given for a fingerprint is not 32 hex pairs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fingerprint {input:?}: expected 32 hex pairs like ab:cd:ef:…, \
     with or without the colons"
)]
pub struct ParseFingerprintError {
    /// The offending text, cut to 120 characters.
    input: String,
}

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseFingerprintError {
            input: text.chars().take(120).collect(),
        };
        let trimmed = text.trim();
        let compact: String = if trimmed.contains(':') {
            let pairs: Vec<&str> = trimmed.split(':').collect();
            if pairs.len() != DIGEST_LEN || pairs.iter().any(|pair| pair.len() != 2) {
                return Err(error());
            }
            pairs.concat()
        } else {
            trimmed.to_owned()
        };
        let mut digest = [0u8; DIGEST_LEN];
        if !hex::decode_into(&compact, &mut digest) {
            return Err(error());
        }
        Ok(Fingerprint::from_digest(&digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_value_and_shape() {
        // SHA-256("") = e3b0c442...b855
        let fp = fingerprint(b"");
        assert_eq!(
            fp.as_str(),
            "e3:b0:c4:42:98:fc:1c:14:9a:fb:f4:c8:99:6f:b9:24:\
             27:ae:41:e4:64:9b:93:4c:a4:95:99:1b:78:52:b8:55"
        );
        assert_eq!(fp.to_string(), fp.as_str());
        assert_eq!(fp.as_str().len(), 95);
        assert_eq!(fp.to_bytes()[0], 0xe3);
    }

    #[test]
    fn parses_with_or_without_colons_in_any_case() {
        let fp = fingerprint(b"minion key");
        let upper = fp.as_str().to_uppercase();
        let compact: String = fp.as_str().split(':').collect();
        for text in [
            fp.as_str().to_owned(),
            upper.clone(),
            compact.clone(),
            compact.to_uppercase(),
            format!("  {fp}\n"),
        ] {
            assert_eq!(text.parse::<Fingerprint>().unwrap(), fp, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_text() {
        let fp = fingerprint(b"x");
        let compact: String = fp.as_str().split(':').collect();
        let bad = [
            String::new(),
            "ab".to_owned(),
            compact[..62].to_owned(),
            format!("{compact}00"),
            fp.as_str()[..92].to_owned(),
            format!("{fp}:00"),
            // Colons in the wrong places.
            format!("{}:{}", &compact[..3], &compact[3..]),
            fp.as_str().replacen(':', "::", 1),
            format!("g{}", &fp.as_str()[1..]),
            compact.replace(|c: char| c.is_ascii_hexdigit(), "é"),
        ];
        for text in bad {
            assert!(text.parse::<Fingerprint>().is_err(), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let fp = fingerprint(&bytes);
            prop_assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,120}") {
            let _ = text.parse::<Fingerprint>();
        }
    }
}
