//! Personal data, declared by the events themselves (GDPR art. 30: the record
//! must say what personal data it holds). Each event type says which of its
//! text fields are personal text, and whose: the vault of the store seals those
//! fields with that person's key (`registre_store::vault`), and the read
//! model's erasure blanks what it kept of them (`ReadModel::erase` in
//! `registre-projections`). Both read [`DECLARATIONS`]; nothing else names
//! personal fields.
//!
//! Every text field of an event is declared, personal or clear, so that a new
//! field cannot slip into the log unsealed by omission: a test walks the
//! serde form of one sample of every event and fails on an undeclared one.
//!
//! A declaration is part of the stored format: the fields it seals today are
//! the ones existing encrypted logs were sealed with. Making a field personal
//! later seals it in new events only (older ones stay readable as written);
//! never make a personal field clear.

use crate::events::*;

/// What one event type declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declaration {
    /// The stored event type (the struct's name).
    pub event_type: &'static str,
    /// The field naming whose personal text the event holds: a person id, or
    /// a student record id (erasing a person erases their student record's
    /// text too). `None` exactly when `personal` is empty. The metadata's
    /// `reason` of such an event is theirs as well, and sealed with them.
    pub subject: Option<&'static str>,
    /// Text fields holding personal text: sealed with the subject's key and
    /// read as erased once it is destroyed.
    pub personal: &'static [&'static str],
    /// Text fields stored in clear: not personal text (names of classes,
    /// subjects, homework, reasons written about no one), or identifiers the
    /// record keeps after an erasure (`external_id`).
    pub clear: &'static [&'static str],
}

impl Declaration {
    /// The subject field and the sealed fields, for an event holding personal
    /// text.
    pub fn sealed(&self) -> Option<(&'static str, &'static [&'static str])> {
        self.subject.map(|s| (s, self.personal))
    }
}

/// An event type's declaration of its personal data.
pub trait PersonalData {
    const DECLARATION: Declaration;
}

macro_rules! declare {
    ($($ty:ident { subject: $subject:expr, personal: [$($p:literal),*], clear: [$($c:literal),*] $(,)? })*) => {
        $(
            impl PersonalData for $ty {
                const DECLARATION: Declaration = Declaration {
                    event_type: stringify!($ty),
                    subject: $subject,
                    personal: &[$($p),*],
                    clear: &[$($c),*],
                };
            }
        )*
        /// The declaration of every event type, in [`crate::codec::EVENT_TYPES`] order.
        pub const DECLARATIONS: &[Declaration] = &[$(<$ty as PersonalData>::DECLARATION),*];
    };
}

declare! {
    EstablishmentCreated { subject: None, personal: [], clear: ["name"] }
    ClassCreated { subject: None, personal: [], clear: ["name"] }
    PersonRegistered {
        subject: Some("person_id"),
        personal: ["display_name"],
        clear: ["external_id"],
    }
    StudentEnrolled { subject: None, personal: [], clear: [] }
    GuardianLinked { subject: None, personal: [], clear: [] }
    TeacherAssigned { subject: None, personal: [], clear: ["subject"] }
    AssessmentCreated { subject: None, personal: [], clear: ["subject", "title"] }
    GradeRecorded { subject: None, personal: [], clear: [] }
    GradeCorrected { subject: Some("student_id"), personal: ["reason"], clear: [] }
    AbsenceReported { subject: None, personal: [], clear: [] }
    AbsenceDeclared { subject: Some("student_id"), personal: ["reason"], clear: [] }
    DeclaredAbsenceConfirmed { subject: None, personal: [], clear: [] }
    AbsenceJustified { subject: Some("student_id"), personal: ["reason"], clear: [] }
    JustificationReviewed { subject: Some("student_id"), personal: ["comment"], clear: [] }
    AbsenceCancelled { subject: Some("student_id"), personal: ["reason"], clear: [] }
    // Homework is written to a class, about no one.
    HomeworkAssigned { subject: None, personal: [], clear: ["subject", "title", "description"] }
    HomeworkAmended { subject: None, personal: [], clear: ["title", "description", "reason"] }
    HomeworkWithdrawn { subject: None, personal: [], clear: ["reason"] }
    MessageSent { subject: Some("from"), personal: ["subject", "body"], clear: [] }
    MessageRead { subject: None, personal: [], clear: [] }
    // The legal basis of the erasure itself, which the audit must keep.
    PersonErased { subject: None, personal: [], clear: ["reason"] }
    AccountClosed { subject: Some("person_id"), personal: ["reason"], clear: [] }
    // discipline (issue 15). An incident's text names several students and a
    // sanction's must go on the day the law says, not with a person: each is
    // sealed with a key of its own (the record's id).
    IncidentReported {
        subject: Some("incident_id"),
        personal: ["place", "description"],
        clear: [],
    }
    PunishmentGiven { subject: Some("student_id"), personal: ["reason"], clear: [] }
    SanctionImposed { subject: Some("sanction_id"), personal: ["reason"], clear: [] }
    // The rule or the head's reason of the erasure, which the audit must keep.
    SanctionErased { subject: None, personal: [], clear: ["reason"] }
    // school day (issue 13): the timetable, the motives and the cahier de
    // textes are written about a class or an establishment, not a person.
    CoursePlanned { subject: None, personal: [], clear: ["subject", "room"] }
    CourseCancelled { subject: None, personal: [], clear: ["reason"] }
    RollCallTaken { subject: None, personal: [], clear: [] }
    LessonContentRecorded { subject: None, personal: [], clear: ["content"] }
    AbsenceReasonDefined { subject: None, personal: [], clear: ["code", "label"] }
    HolidaysSet { subject: None, personal: [], clear: [] }
    AbsenceMotiveGiven { subject: None, personal: [], clear: [] }
    HomeworkDetailed { subject: None, personal: [], clear: [] }
    HomeworkMarkedDone { subject: None, personal: [], clear: [] }
    // evaluation (issue 14): period names and a reopening's reason are about
    // no one; an appreciation is written about the student.
    PeriodsDefined { subject: None, personal: [], clear: [] }
    PeriodClosed { subject: None, personal: [], clear: [] }
    PeriodReopened { subject: None, personal: [], clear: ["reason"] }
    AppreciationWritten {
        subject: Some("student_id"),
        personal: ["text", "previous"],
        clear: ["subject"],
    }
    // communication (issue 16): a file's name may name a child; an address,
    // a push endpoint and its keys identify a person's mailbox and browser.
    AttachmentUploaded {
        subject: Some("uploaded_by"),
        personal: ["name"],
        clear: ["content_type", "sha256"],
    }
    AttachmentsLinked { subject: None, personal: [], clear: [] }
    NotificationPreferenceSet { subject: Some("person_id"), personal: ["email"], clear: [] }
    WebPushRegistered {
        subject: Some("person_id"),
        personal: ["endpoint", "p256dh", "auth"],
        clear: [],
    }
    WebPushDropped { subject: None, personal: [], clear: [] }
    // interop (issue 17): a new name is as personal as the first.
    GuardianUnlinked { subject: None, personal: [], clear: [] }
    TeacherUnassigned { subject: None, personal: [], clear: ["subject"] }
    PersonRenamed { subject: Some("person_id"), personal: ["display_name"], clear: [] }
    ClassRenamed { subject: None, personal: [], clear: ["name"] }
    SchoolYearStarted { subject: None, personal: [], clear: [] }
    ClassClosed { subject: None, personal: [], clear: [] }
}

/// The declaration of a stored event type; `None` for a type this build does
/// not know.
pub fn declaration(event_type: &str) -> Option<&'static Declaration> {
    DECLARATIONS.iter().find(|d| d.event_type == event_type)
}

/// What the vault seals in an event of this type: the field naming the key's
/// owner, and the fields sealed with it. `None`: nothing (unknown types too).
pub fn sealed_fields(event_type: &str) -> Option<(&'static str, &'static [&'static str])> {
    declaration(event_type)?.sealed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::EVENT_TYPES;
    use crate::testing::samples;
    use crate::DomainEvent;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    #[test]
    fn every_event_type_is_declared_once_in_order() {
        let declared: Vec<&str> = DECLARATIONS.iter().map(|d| d.event_type).collect();
        assert_eq!(declared, EVENT_TYPES);
        for d in DECLARATIONS {
            assert_eq!(
                d.subject.is_some(),
                !d.personal.is_empty(),
                "{}: a subject exactly when there is personal text",
                d.event_type
            );
            let personal: BTreeSet<_> = d.personal.iter().collect();
            assert!(
                d.clear.iter().all(|f| !personal.contains(f)),
                "{}: a field is personal or clear, not both",
                d.event_type
            );
        }
    }

    /// Whether `field` of this event accepts any text: its type is a string
    /// (or a list of strings) and not an id, a date or an enumeration, which
    /// refuse free text when decoded.
    fn takes_text(event: &DomainEvent, field: &str) -> bool {
        let encoded = event.encode();
        [
            json!("Un texte libre, quelconque."),
            json!(["Un texte libre."]),
        ]
        .into_iter()
        .any(|text| {
            let mut data = encoded.data.clone();
            if let Value::Object(map) = &mut data {
                map.insert(field.to_owned(), text);
            }
            DomainEvent::decode(encoded.event_type, encoded.schema_version, &data).is_ok()
        })
    }

    /// The test that keeps the declarations honest: a text field added to an
    /// event and declared neither personal nor clear fails here, and so does
    /// a declared field that is gone or holds no text.
    #[test]
    fn every_text_field_of_every_event_is_declared() {
        let samples = samples();
        let types: BTreeSet<&str> = samples.iter().map(|e| e.event_type()).collect();
        assert_eq!(types.len(), EVENT_TYPES.len(), "one sample of every event");
        for event in &samples {
            let encoded = event.encode();
            let Value::Object(fields) = &encoded.data else {
                panic!("{} is not a JSON object", encoded.event_type);
            };
            let text: BTreeSet<&str> = fields
                .keys()
                .map(String::as_str)
                .filter(|f| takes_text(event, f))
                .collect();
            let d = declaration(encoded.event_type).expect("declared");
            let declared: BTreeSet<&str> = d.personal.iter().chain(d.clear).copied().collect();
            assert_eq!(
                text, declared,
                "{}: the text fields (left) and the declared ones (right) differ; \
                 declare each text field personal or clear in domain/src/personal.rs",
                encoded.event_type
            );
            if let Some(subject) = d.subject {
                let owner = fields.get(subject).and_then(Value::as_str);
                assert!(
                    owner.is_some_and(|o| o.parse::<uuid::Uuid>().is_ok()),
                    "{}: the subject field {subject} names no one",
                    encoded.event_type
                );
            }
        }
    }

    /// The sealed fields are part of the stored format: existing encrypted
    /// logs were sealed with exactly these.
    #[test]
    fn the_sealed_fields_are_the_stored_format() {
        let sealed: Vec<(&str, &str, &[&str])> = DECLARATIONS
            .iter()
            .filter_map(|d| d.sealed().map(|(s, f)| (d.event_type, s, f)))
            .collect();
        let format_v1: &[(&str, &str, &[&str])] = &[
            ("PersonRegistered", "person_id", &["display_name"]),
            ("GradeCorrected", "student_id", &["reason"]),
            ("AbsenceDeclared", "student_id", &["reason"]),
            ("AbsenceJustified", "student_id", &["reason"]),
            ("JustificationReviewed", "student_id", &["comment"]),
            ("AbsenceCancelled", "student_id", &["reason"]),
            ("MessageSent", "from", &["subject", "body"]),
            ("AccountClosed", "person_id", &["reason"]),
            // discipline (issue 15)
            ("IncidentReported", "incident_id", &["place", "description"]),
            ("PunishmentGiven", "student_id", &["reason"]),
            ("SanctionImposed", "sanction_id", &["reason"]),
            ("AppreciationWritten", "student_id", &["text", "previous"]),
            // communication (issue 16)
            ("AttachmentUploaded", "uploaded_by", &["name"]),
            ("NotificationPreferenceSet", "person_id", &["email"]),
            (
                "WebPushRegistered",
                "person_id",
                &["endpoint", "p256dh", "auth"],
            ),
            // interop (issue 17)
            ("PersonRenamed", "person_id", &["display_name"]),
        ];
        assert_eq!(sealed, format_v1);
        assert_eq!(
            sealed_fields("MessageSent"),
            Some(("from", &["subject", "body"][..]))
        );
        assert_eq!(sealed_fields("HomeworkAssigned"), None);
        assert_eq!(sealed_fields("NoSuchEvent"), None);
    }
}
