//! Free text as the domain accepts it, and every length bound in one place.
//!
//! Text is trimmed, must not be blank where it is required, and may hold no
//! control characters: they corrupt terminals, CSV exports and e-mail headers,
//! and nobody types them on purpose. Multi-line fields (message bodies,
//! homework descriptions, reasons) keep newlines and tabs; CRLF becomes LF so
//! that the same text always has the same stored form. Lengths count Unicode
//! scalar values (what a user sees as characters), not bytes.
//!
//! Invisible format characters that change how the *rest* of the text is
//! shown are refused too (see [`is_invisible_format`]): a right-to-left
//! override (U+202E) in a subject line makes "gpj.exe" read as "exe.jpg" and
//! lets one message impersonate another in a list. Zero-width joiners
//! (U+200C/U+200D) stay: emoji sequences and Persian, Arabic and Indic
//! spellings need them, and they reorder nothing.

use crate::error::DomainError;

/// Names of establishments and classes, display names.
pub const NAME_MAX: usize = 200;
/// `Person.externalId` (the JWT `sub`): long enough for any identity provider.
pub const EXTERNAL_ID_MAX: usize = 255;
/// A school subject ("Mathématiques", "Histoire-Géographie").
pub const SUBJECT_MAX: usize = 100;
/// Titles of assessments and homework.
pub const TITLE_MAX: usize = 200;
/// Homework descriptions (the cahier de textes entry).
pub const DESCRIPTION_MAX: usize = 10_000;
/// Reasons of corrections, justifications, cancellations and withdrawals, and
/// review comments.
pub const REASON_MAX: usize = 2_000;
/// Subject line of a message.
pub const MESSAGE_SUBJECT_MAX: usize = 200;
/// Body of a message.
pub const MESSAGE_BODY_MAX: usize = 20_000;
/// Distinct recipients of one message: a whole class with its guardians fits,
/// a mass mailing to the establishment does not.
pub const RECIPIENTS_MAX: usize = 50;
/// A report card's appreciation (evaluation, issue 14): a few sentences; the
/// printed bulletin gives each a few lines.
pub const APPRECIATION_MAX: usize = 1_000;

/// Bidirectional embeddings, overrides and isolates (U+202A-U+202E,
/// U+2066-U+2069), direction marks (U+200E, U+200F, U+061C), and the other
/// invisible format characters that hide or reorder text: zero-width space,
/// word joiner and invisible operators, deprecated format controls, the byte
/// order mark and the interlinear annotation characters.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

fn no_invisible_format(field: &str, s: &str) -> Result<(), DomainError> {
    match s.chars().find(|&c| is_invisible_format(c)) {
        Some(c) => Err(DomainError::invalid(
            field,
            format!(
                "must not contain invisible formatting characters such as direction overrides (found U+{:04X})",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

/// A required single-line text: trimmed, not blank, no control character.
pub fn line(field: &str, raw: &str, max: usize) -> Result<String, DomainError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if s.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    no_invisible_format(field, s)?;
    bounded(field, s, max)
}

/// A required multi-line text: like [`line()`] but newlines and tabs are kept.
pub fn block(field: &str, raw: &str, max: usize) -> Result<String, DomainError> {
    let s = optional_block(field, raw, max)?;
    if s.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    Ok(s)
}

/// A multi-line text that may be empty (a homework entry whose title says it all).
pub fn optional_block(field: &str, raw: &str, max: usize) -> Result<String, DomainError> {
    let normalized = raw.replace("\r\n", "\n");
    let s = normalized.trim();
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(DomainError::invalid(
            field,
            "must not contain control characters other than newline and tab",
        ));
    }
    no_invisible_format(field, s)?;
    bounded(field, s, max)
}

/// An optional multi-line text: absent or blank both mean "none".
pub fn optional_comment(
    field: &str,
    raw: Option<&str>,
    max: usize,
) -> Result<Option<String>, DomainError> {
    match raw {
        None => Ok(None),
        Some(r) => {
            let s = optional_block(field, r, max)?;
            Ok((!s.is_empty()).then_some(s))
        }
    }
}

fn bounded(field: &str, s: &str, max: usize) -> Result<String, DomainError> {
    if s.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_trims_and_rejects_blank_control_and_long() {
        assert_eq!(line("name", "  4e B \t", NAME_MAX), Ok("4e B".to_owned()));
        assert!(
            matches!(line("name", "  \n ", NAME_MAX), Err(DomainError::Invalid { field, .. }) if field == "name")
        );
        assert!(line("name", "a\u{7}b", NAME_MAX).is_err());
        assert!(line("name", "a\nb", NAME_MAX).is_err());
        assert!(line("name", &"é".repeat(NAME_MAX), NAME_MAX).is_ok());
        assert!(line("name", &"é".repeat(NAME_MAX + 1), NAME_MAX).is_err());
    }

    #[test]
    fn block_keeps_newlines_and_tabs_and_normalizes_crlf() {
        assert_eq!(
            block("body", "\r\nBonjour,\r\n\tà demain\n", 100),
            Ok("Bonjour,\n\tà demain".to_owned())
        );
        assert!(block("body", "a\u{0}b", 100).is_err());
        assert!(block("body", "a\u{1b}[31m", 100).is_err());
        assert!(block("body", " \n\t ", 100).is_err());
        assert_eq!(optional_block("description", "  ", 100), Ok(String::new()));
        assert_eq!(optional_comment("comment", Some("  "), 100), Ok(None));
        assert_eq!(optional_comment("comment", None, 100), Ok(None));
        assert_eq!(
            optional_comment("comment", Some(" ok "), 100),
            Ok(Some("ok".to_owned()))
        );
    }

    #[test]
    fn direction_overrides_and_invisible_formats_are_refused_everywhere() {
        // "Bulletin_\u{202E}fdp.exe" shows as "Bulletin_exe.pdf".
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{200B}', '\u{2060}',
            '\u{FEFF}',
        ] {
            let raw = format!("Bulletin_{c}fdp.exe");
            let refused = |r: Result<String, DomainError>| {
                matches!(r, Err(DomainError::Invalid { ref field, ref message })
                    if field == "f" && message.contains("invisible formatting"))
            };
            assert!(
                refused(line("f", &raw, NAME_MAX)),
                "line kept U+{:04X}",
                u32::from(c)
            );
            assert!(
                refused(block("f", &raw, MESSAGE_BODY_MAX)),
                "block kept U+{:04X}",
                u32::from(c)
            );
            assert!(refused(optional_block("f", &raw, MESSAGE_BODY_MAX)));
            assert!(refused(
                optional_comment("f", Some(&raw), REASON_MAX).map(|o| o.unwrap_or_default())
            ));
        }
    }

    #[test]
    fn joiners_and_right_to_left_scripts_are_kept() {
        // ZWNJ in Persian, ZWJ in an emoji family, Arabic and Hebrew letters.
        for ok in [
            "می\u{200C}خواهم",
            "👩\u{200D}👧",
            "مرحبا",
            "שלום",
            "Noël — à 8 h",
        ] {
            assert_eq!(line("f", ok, NAME_MAX), Ok(ok.to_owned()));
            assert_eq!(block("f", ok, NAME_MAX), Ok(ok.to_owned()));
        }
    }

    proptest::proptest! {
        #[test]
        fn any_invisible_format_character_is_refused(
            before in "[a-z]{1,5}",
            c in proptest::sample::select(vec!['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{206F}', '\u{FFF9}']),
            after in "[a-z]{1,5}",
        ) {
            let raw = format!("{before}{c}{after}");
            proptest::prop_assert!(line("subject", &raw, SUBJECT_MAX).is_err());
            proptest::prop_assert!(block("body", &raw, MESSAGE_BODY_MAX).is_err());
        }

        // The first kept character must be neither a control nor any Unicode
        // white space (U+2000 EN QUAD is `\PC` yet trimmed like a space).
        #[test]
        fn printable_text_within_bounds_is_kept_trimmed(raw in "[ ]{0,3}[\\PC&&\\S][\\PC]{0,40}[ ]{0,3}") {
            let kept = line("title", &raw, TITLE_MAX);
            proptest::prop_assert_eq!(kept, Ok(raw.trim().to_owned()));
        }

        #[test]
        fn any_control_character_is_refused_in_a_line(
            before in "[a-z]{1,5}",
            control in proptest::char::range('\u{0}', '\u{1f}'),
            after in "[a-z]{1,5}",
        ) {
            let raw = format!("{before}{control}{after}");
            proptest::prop_assert!(line("title", &raw, TITLE_MAX).is_err());
            let in_block = block("body", &raw, MESSAGE_BODY_MAX);
            // A lone CR is refused: only CRLF line ends are normalized.
            proptest::prop_assert_eq!(in_block.is_ok(), control == '\n' || control == '\t');
        }
    }
}
