//! Parsing of everything a client sends about forum resources, done once at the edge.
//!
//! Each function takes raw input and answers the clean value or an [`Invalid`] with a stable
//! machine code and a message saying what is accepted, which the API answers as a 400.

/// Why an input was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Machine-readable (`invalid_username`).
    pub code: &'static str,
    /// For people: what is accepted.
    pub message: String,
}

/// The result of parsing one input.
pub type Parsed<T> = Result<T, Invalid>;

fn invalid<T>(code: &'static str, message: impl Into<String>) -> Parsed<T> {
    Err(Invalid {
        code,
        message: message.into(),
    })
}

/// Trimmed text of `min..=max` characters with no control characters other than newlines
/// and tabs.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Parsed<String> {
    let value = value.trim();
    let n = value.chars().count();
    if n < min || n > max {
        let code = "invalid_body";
        return if min == 0 {
            invalid(code, format!("{field} must be at most {max} characters"))
        } else {
            invalid(
                code,
                format!("{field} must be {min} to {max} characters (after trimming)"),
            )
        };
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return invalid(
            "invalid_body",
            format!("{field} must not contain control characters"),
        );
    }
    Ok(value.to_owned())
}

/// Optional text: empty (after trimming) means none.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> Parsed<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) => text(field, v, 0, max).map(|t| (!t.is_empty()).then_some(t)),
    }
}

/// A username: 3 to 32 ASCII letters, digits, `_`, `-` or `.`, starting with a letter or
/// digit. Unique case-insensitively (see [`key`]).
pub fn username(value: &str) -> Parsed<String> {
    let ok = (3..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && value.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(value.to_owned())
    } else {
        invalid(
            "invalid_username",
            "username must be 3 to 32 letters, digits, `_`, `-` or `.`, starting with a letter or digit",
        )
    }
}

/// An email address, loosely: one `@` with text on both sides, a dot in the domain, no
/// spaces, at most 254 characters.
pub fn email(value: &str) -> Parsed<String> {
    let value = value.trim();
    let ok = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(value.to_owned())
    } else {
        invalid("invalid_email", "email must be a valid address")
    }
}

/// A password: 8 to 128 characters.
pub fn password(value: &str) -> Parsed<String> {
    if (8..=128).contains(&value.chars().count()) {
        Ok(value.to_owned())
    } else {
        invalid("invalid_password", "password must be 8 to 128 characters")
    }
}

/// An `http` or `https` URL of at most 2048 characters, or none when empty.
pub fn avatar_url(value: Option<&str>) -> Parsed<Option<String>> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let ok = value.len() <= 2048
        && (value.starts_with("https://") || value.starts_with("http://"))
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && value
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty());
    if ok {
        Ok(Some(value.to_owned()))
    } else {
        invalid(
            "invalid_url",
            "avatar_url must be an http(s) URL of at most 2048 characters",
        )
    }
}

/// A slug: 1 to 64 lowercase ASCII letters, digits and `-`.
pub fn slug(value: &str) -> Parsed<String> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(value.to_owned())
    } else {
        invalid(
            "invalid_slug",
            "slug must be 1 to 64 lowercase letters, digits and `-`",
        )
    }
}

/// A slug made from a name: lowercase ASCII letters and digits, runs of anything else
/// becoming one `-`; `category` when nothing is left.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug: String = slug.chars().take(64).collect();
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "category".into()
    } else {
        slug.to_owned()
    }
}

/// A reaction kind: 1 to 32 lowercase ASCII letters, digits and `_`.
pub fn reaction_kind(value: Option<&str>) -> Parsed<String> {
    let value = value.unwrap_or("like");
    let ok = (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(value.to_owned())
    } else {
        invalid(
            "invalid_kind",
            "kind must be 1 to 32 lowercase letters, digits and `_` (default `like`)",
        )
    }
}

/// The form uniqueness is checked on: lowercase.
pub fn key(value: &str) -> String {
    value.to_lowercase()
}

/// Limits of free text fields, in characters.
pub mod limits {
    /// Display names.
    pub const DISPLAY_NAME: usize = 64;
    /// User bios.
    pub const BIO: usize = 2_000;
    /// User locations.
    pub const LOCATION: usize = 100;
    /// Thread titles.
    pub const TITLE: usize = 200;
    /// Thread and post bodies.
    pub const BODY: usize = 50_000;
    /// Category, group and tag names.
    pub const NAME: usize = 100;
    /// Tag names.
    pub const TAG_NAME: usize = 50;
    /// Descriptions, report reasons and resolutions.
    pub const DESCRIPTION: usize = 2_000;
    /// Tags on one thread.
    pub const TAGS_PER_THREAD: usize = 10;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_emails() {
        assert!(username("alice_1").is_ok());
        assert!(username("al").is_err());
        assert!(username("_alice").is_err());
        assert!(username("ali ce").is_err());
        assert!(email("a@b.co").is_ok());
        assert!(email("a@b").is_err());
        assert!(email("@b.co").is_err());
        assert!(email("a b@c.de").is_err());
    }

    #[test]
    fn slugs_from_names() {
        assert_eq!(slugify("Hello, World!"), "hello-world");
        assert_eq!(slugify("¡¡!!"), "category");
        assert!(slug(&slugify(&"x".repeat(300))).is_ok());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("title", "  hi ", 1, 10).unwrap(), "hi");
        assert!(text("title", "   ", 1, 10).is_err());
        assert!(text("title", "a\u{0}b", 1, 10).is_err());
        assert_eq!(optional_text("bio", Some(" "), 10).unwrap(), None);
    }
}
