//! Identifiers. Random (v4) UUIDs from the platform's entropy, so no id reveals order or count.

use crate::ports::Entropy;

pub fn new_id(entropy: &impl Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// Accepts only the canonical hyphenated lower-case form we hand out.
pub fn is_id(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok_and(|u| u.hyphenated().to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u8);
    impl Entropy for Fixed {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(self.0);
        }
    }

    #[test]
    fn ids_are_v4_uuids() {
        let id = new_id(&Fixed(0xab));
        assert!(is_id(&id));
        assert_eq!(&id[14..15], "4");
        assert!(!is_id("ABABABAB-ABAB-4BAB-ABAB-ABABABABABAB"));
        assert!(!is_id("../etc/passwd"));
    }
}
