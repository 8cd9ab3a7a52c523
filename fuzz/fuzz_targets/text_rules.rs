//! Arbitrary strings through the domain's text rules (domain/src/text.rs).
//!
//! Asserted: no panic, refusals are typed (`DomainError::Invalid` naming the
//! field), and what a rule accepts holds what the rule promises: trimmed,
//! within its bound in characters, not blank where required, no control
//! character (a block keeps only newline and tab, and no CR at all once CRLF
//! is normalised), and a second pass leaves it unchanged (the stored form is a
//! fixed point, so re-saving a record never changes it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use registre_domain::error::DomainError;
use registre_domain::text;

/// Characters a reader cannot see that reorder or hide text (Trojan Source,
/// CVE-2021-42574). Refused once the text rules refuse them (issue 11,
/// defect 9); until then [`bidi_refused`] says so and they are not asserted.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether this build's rules refuse bidi overrides: asked of the rule
/// itself, so the assertion switches on with the rule and needs no edit here.
fn bidi_refused() -> bool {
    text::line("probe", "a\u{202E}b", text::NAME_MAX).is_err()
}

fn check_refusal(field: &str, e: &DomainError) {
    match e {
        DomainError::Invalid { field: f, .. } => assert_eq!(f, field, "refusal names its field"),
        other => panic!("text rule refused with an untyped error: {other:?}"),
    }
}

fn check_line(raw: &str, max: usize) {
    match text::line("title", raw, max) {
        Ok(kept) => {
            assert!(!kept.is_empty(), "a line is never blank: {raw:?}");
            assert_eq!(kept, kept.trim(), "a line is trimmed");
            assert!(kept.chars().count() <= max, "a line is bounded");
            assert!(!kept.chars().any(char::is_control), "no control: {kept:?}");
            if bidi_refused() {
                assert!(!kept.chars().any(is_bidi_control), "no bidi: {kept:?}");
            }
            assert_eq!(text::line("title", &kept, max).as_ref(), Ok(&kept));
        }
        Err(e) => check_refusal("title", &e),
    }
}

fn check_block(raw: &str, max: usize) {
    match text::optional_block("body", raw, max) {
        Ok(kept) => {
            assert_eq!(kept, kept.trim(), "a block is trimmed");
            assert!(kept.chars().count() <= max, "a block is bounded");
            assert!(
                !kept
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "only newline and tab: {kept:?}"
            );
            assert!(!kept.contains('\r'), "CRLF normalised and lone CR refused");
            if bidi_refused() {
                assert!(!kept.chars().any(is_bidi_control), "no bidi: {kept:?}");
            }
            assert_eq!(text::optional_block("body", &kept, max).as_ref(), Ok(&kept));
            // The required form accepts exactly the non-empty ones.
            assert_eq!(text::block("body", raw, max).is_ok(), !kept.is_empty());
            let comment = text::optional_comment("body", Some(raw), max);
            assert_eq!(comment, Ok((!kept.is_empty()).then_some(kept)));
        }
        Err(e) => {
            check_refusal("body", &e);
            assert!(text::block("body", raw, max).is_err());
            assert!(text::optional_comment("body", Some(raw), max).is_err());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks a bound, so that the length rules are reached by
    // short inputs too; the rest is the text (lossy: the API only ever hands
    // the rules valid UTF-8, which GraphQL strings are).
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let raw = String::from_utf8_lossy(rest);
    let max = match pick % 4 {
        0 => text::NAME_MAX,
        1 => text::SUBJECT_MAX,
        2 => usize::from(pick / 4) % 16,
        _ => text::MESSAGE_BODY_MAX,
    };
    check_line(&raw, max);
    check_block(&raw, max);
});
