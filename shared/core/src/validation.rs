//! Input rules, each returning the field errors a 422 reports.

use crate::problem::FieldError;

pub const PASSWORD_MIN_CHARS: usize = 10;
/// Argon2 hashes whatever it is given; a cap keeps a huge password from costing us CPU.
pub const PASSWORD_MAX_BYTES: usize = 256;
pub const EMAIL_MAX_BYTES: usize = 254;

fn error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// Normalises an email address (trimmed, lower-case) or explains why it is not one.
/// Deliberately simple: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn email(raw: &str) -> Result<String, FieldError> {
    let email = raw.trim().to_ascii_lowercase();
    if email.len() > EMAIL_MAX_BYTES {
        return Err(error("email", format!("must be at most {EMAIL_MAX_BYTES} bytes")));
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid { Ok(email) } else { Err(error("email", "is not an email address")) }
}

/// Length rules after NIST SP 800-63B: long enough, not absurdly long, and not one repeated
/// character. Composition rules are not imposed; length is what counts.
pub fn new_password(password: &str) -> Result<(), FieldError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(error("password", format!("must be at least {PASSWORD_MIN_CHARS} characters")));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(error("password", format!("must be at most {PASSWORD_MAX_BYTES} bytes")));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(error("password", "must not be one repeated character"));
    }
    Ok(())
}

pub const NAME_MAX_CHARS: usize = 255;

/// A file name (`name`, `originalName`): 1 to 255 characters, no control characters.
pub fn file_name(field: &str, raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(error(field, "must not be empty"));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(error(field, format!("must be at most {NAME_MAX_CHARS} characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(error(field, "must not contain control characters"));
    }
    if let Some(c) = name.chars().find(|c| is_invisible(*c)) {
        return Err(error(field, format!("must not contain invisible or direction-changing characters (U+{:04X})", c as u32)));
    }
    Ok(name.to_owned())
}

/// Unicode format characters (general category Cf) and other invisibles: bidi overrides and
/// isolates make `evil<U+202E>fdp.exe` look like `evilexe.pdf` in a listing or a `filename*`, and
/// zero-width characters make two names that look the same differ.
pub fn is_invisible(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

/// A chunk index as it appears in a path: a whole number in canonical form (`0`, `17`; not
/// `01`, `+0`, ` 1`), so one chunk has one name.
pub fn chunk_index(text: &str) -> Option<u64> {
    let canonical = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// A media type `type/subtype` (parameters allowed), RFC 6838 token characters only.
pub fn mime_type(raw: &str) -> Result<String, FieldError> {
    let mime = raw.trim().to_ascii_lowercase();
    let essence = mime.split(';').next().unwrap_or("").trim();
    let token = |s: &str| !s.is_empty() && s.len() <= 127 && s.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c));
    match essence.split_once('/') {
        Some((t, sub)) if token(t) && token(sub) && !mime.chars().any(|c| c.is_control()) && mime.len() <= 255 => Ok(mime),
        _ => Err(error("mimeType", "must be a media type such as application/pdf")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in ["", "alice", "alice@", "@example.com", "a@b", "a@b.", "a@.b", "a b@c.d", "a@b@c.d", "a@b..c"] {
            assert!(email(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn file_names_and_media_types() {
        assert_eq!(file_name("name", "  report.pdf ").unwrap(), "report.pdf");
        assert_eq!(file_name("name", "été/2026 – notes.txt").unwrap(), "été/2026 – notes.txt");
        assert!(file_name("name", "   ").is_err());
        assert!(file_name("name", "a\nb").is_err());
        assert!(file_name("name", &"x".repeat(256)).is_err());
        for spoof in ["evil\u{202E}fdp.exe", "a\u{200B}b", "\u{2066}x", "x\u{FEFF}", "tag\u{E0041}"] {
            assert!(file_name("name", spoof).is_err(), "{spoof:?}");
        }
        assert_eq!(file_name("name", "日本語 ملف.txt").unwrap(), "日本語 ملف.txt");
        assert_eq!(mime_type("Application/PDF").unwrap(), "application/pdf");
        assert_eq!(mime_type("text/plain; charset=utf-8").unwrap(), "text/plain; charset=utf-8");
        for bad in ["pdf", "text/", "/plain", "text/pl ain", "a/b\r\nx: y"] {
            assert!(mime_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chunk_indexes_are_canonical_whole_numbers() {
        assert_eq!(chunk_index("0"), Some(0));
        assert_eq!(chunk_index("17"), Some(17));
        for bad in ["", "01", "+0", "-1", " 1", "1 ", "0x1", "1e3", "99999999999999999999999"] {
            assert_eq!(chunk_index(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn passwords_need_length_but_not_too_much() {
        assert!(new_password("correct horse").is_ok());
        assert!(new_password("short").is_err());
        assert!(new_password("aaaaaaaaaaaaaaaa").is_err());
        assert!(new_password(&"ab".repeat(200)).is_err());
        assert!(new_password("ünïcødé-pässwörd").is_ok());
    }
}
