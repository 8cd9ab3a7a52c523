//! The stored form of events and the one place where old schema versions are
//! upcast. The store only sees `(event_type, schema_version, data)`; this module
//! turns that into a [`DomainEvent`] and back.

use crate::events::DomainEvent;
use serde_json::Value;
use thiserror::Error;

/// Every stored event type this build knows, in [`DomainEvent`] order.
pub const EVENT_TYPES: [&str; 50] = [
    "EstablishmentCreated",
    "ClassCreated",
    "PersonRegistered",
    "StudentEnrolled",
    "GuardianLinked",
    "TeacherAssigned",
    "AssessmentCreated",
    "GradeRecorded",
    "GradeCorrected",
    "AbsenceReported",
    "AbsenceDeclared",
    "DeclaredAbsenceConfirmed",
    "AbsenceJustified",
    "JustificationReviewed",
    "AbsenceCancelled",
    "HomeworkAssigned",
    "HomeworkAmended",
    "HomeworkWithdrawn",
    "MessageSent",
    "MessageRead",
    "PersonErased",
    "AccountClosed",
    // discipline (issue 15)
    "IncidentReported",
    "PunishmentGiven",
    "SanctionImposed",
    "SanctionErased",
    // school day (issue 13)
    "CoursePlanned",
    "CourseCancelled",
    "RollCallTaken",
    "LessonContentRecorded",
    "AbsenceReasonDefined",
    "HolidaysSet",
    "AbsenceMotiveGiven",
    "HomeworkDetailed",
    "HomeworkMarkedDone",
    // evaluation (issue 14)
    "PeriodsDefined",
    "PeriodClosed",
    "PeriodReopened",
    "AppreciationWritten",
    // communication (issue 16)
    "AttachmentUploaded",
    "AttachmentsLinked",
    "NotificationPreferenceSet",
    "WebPushRegistered",
    "WebPushDropped",
    // interop (issue 17)
    "GuardianUnlinked",
    "TeacherUnassigned",
    "PersonRenamed",
    "ClassRenamed",
    "SchoolYearStarted",
    "ClassClosed",
];

/// Schema version written for every event type today. Bump an event type's
/// version here and add its upcaster to `upcast` when its shape changes.
pub fn current_schema_version(_event_type: &str) -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Error)]
pub enum DecodeError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error("{event_type} v{version} is newer than this build understands")]
    FutureVersion { event_type: String, version: u32 },
    #[error("{event_type} v{version} does not decode: {message}")]
    Malformed {
        event_type: String,
        version: u32,
        message: String,
    },
}

/// The stored form of one event.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodedEvent {
    pub event_type: &'static str,
    pub schema_version: u32,
    pub data: Value,
}

impl DomainEvent {
    pub fn event_type(&self) -> &'static str {
        use DomainEvent::*;
        match self {
            EstablishmentCreated(_) => "EstablishmentCreated",
            ClassCreated(_) => "ClassCreated",
            PersonRegistered(_) => "PersonRegistered",
            StudentEnrolled(_) => "StudentEnrolled",
            GuardianLinked(_) => "GuardianLinked",
            TeacherAssigned(_) => "TeacherAssigned",
            AssessmentCreated(_) => "AssessmentCreated",
            GradeRecorded(_) => "GradeRecorded",
            GradeCorrected(_) => "GradeCorrected",
            AbsenceReported(_) => "AbsenceReported",
            AbsenceDeclared(_) => "AbsenceDeclared",
            DeclaredAbsenceConfirmed(_) => "DeclaredAbsenceConfirmed",
            AbsenceJustified(_) => "AbsenceJustified",
            JustificationReviewed(_) => "JustificationReviewed",
            AbsenceCancelled(_) => "AbsenceCancelled",
            HomeworkAssigned(_) => "HomeworkAssigned",
            HomeworkAmended(_) => "HomeworkAmended",
            HomeworkWithdrawn(_) => "HomeworkWithdrawn",
            MessageSent(_) => "MessageSent",
            MessageRead(_) => "MessageRead",
            PersonErased(_) => "PersonErased",
            AccountClosed(_) => "AccountClosed",
            // discipline (issue 15)
            IncidentReported(_) => "IncidentReported",
            PunishmentGiven(_) => "PunishmentGiven",
            SanctionImposed(_) => "SanctionImposed",
            SanctionErased(_) => "SanctionErased",
            // school day (issue 13)
            CoursePlanned(_) => "CoursePlanned",
            CourseCancelled(_) => "CourseCancelled",
            RollCallTaken(_) => "RollCallTaken",
            LessonContentRecorded(_) => "LessonContentRecorded",
            AbsenceReasonDefined(_) => "AbsenceReasonDefined",
            HolidaysSet(_) => "HolidaysSet",
            AbsenceMotiveGiven(_) => "AbsenceMotiveGiven",
            HomeworkDetailed(_) => "HomeworkDetailed",
            HomeworkMarkedDone(_) => "HomeworkMarkedDone",
            // evaluation (issue 14)
            PeriodsDefined(_) => "PeriodsDefined",
            PeriodClosed(_) => "PeriodClosed",
            PeriodReopened(_) => "PeriodReopened",
            AppreciationWritten(_) => "AppreciationWritten",
            // communication (issue 16)
            AttachmentUploaded(_) => "AttachmentUploaded",
            AttachmentsLinked(_) => "AttachmentsLinked",
            NotificationPreferenceSet(_) => "NotificationPreferenceSet",
            WebPushRegistered(_) => "WebPushRegistered",
            WebPushDropped(_) => "WebPushDropped",
            // interop (issue 17)
            GuardianUnlinked(_) => "GuardianUnlinked",
            TeacherUnassigned(_) => "TeacherUnassigned",
            PersonRenamed(_) => "PersonRenamed",
            ClassRenamed(_) => "ClassRenamed",
            SchoolYearStarted(_) => "SchoolYearStarted",
            ClassClosed(_) => "ClassClosed",
        }
    }

    pub fn encode(&self) -> EncodedEvent {
        let mut data = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut data {
            map.remove("type");
        }
        let event_type = self.event_type();
        EncodedEvent {
            event_type,
            schema_version: current_schema_version(event_type),
            data,
        }
    }

    pub fn decode(
        event_type: &str,
        schema_version: u32,
        data: &Value,
    ) -> Result<Self, DecodeError> {
        let current = checked_version(event_type, schema_version)?;
        let malformed = |message: String| malformed(event_type, schema_version, message);
        // Only an old version is upcast, and only then is the data copied:
        // the fold of a whole log decodes every event through here.
        let upcast_data;
        let data = if schema_version < current {
            upcast_data = upcast(event_type, schema_version, data.clone());
            &upcast_data
        } else {
            data
        };
        if !data.is_object() {
            return Err(malformed("data is not an object".into()));
        }
        match decode_direct(event_type, data) {
            Some(decoded) => decoded.map_err(|e| malformed(e.to_string())),
            // A type missing from `decode_direct`'s list still decodes, through
            // the tagged enum (a copy of the data plus serde's buffering); the
            // codec unit test makes such an omission fail the build's tests.
            None => {
                let mut tagged = data.clone();
                if let Value::Object(map) = &mut tagged {
                    map.insert("type".into(), Value::String(event_type.to_owned()));
                }
                serde_json::from_value(tagged).map_err(|e| malformed(e.to_string()))
            }
        }
    }

    /// [`DomainEvent::decode`] of the stored JSON text: an event of the
    /// current version is deserialized straight from the text, without the
    /// [`Value`] tree (a rebuild decodes every event of the log, and building
    /// the tree cost as much as the rest of decoding). Answers what `decode`
    /// answers for the parsed text.
    pub fn decode_text(
        event_type: &str,
        schema_version: u32,
        text: &str,
    ) -> Result<Self, DecodeError> {
        let current = checked_version(event_type, schema_version)?;
        let direct = if schema_version == current && text.trim_start().starts_with('{') {
            decode_direct_text(event_type, text)
        } else {
            None
        };
        match direct {
            Some(decoded) => {
                decoded.map_err(|e| malformed(event_type, schema_version, e.to_string()))
            }
            // An old version is upcast on its tree; a text that is no object
            // gets `decode`'s own answer.
            None => {
                let data: Value = serde_json::from_str(text)
                    .map_err(|e| malformed(event_type, schema_version, e.to_string()))?;
                Self::decode(event_type, schema_version, &data)
            }
        }
    }
}

/// The current schema version of a known `event_type`, once `schema_version`
/// is one this build can read. Checked before any parsing: an unknown type
/// must not be mistaken for a malformed known one, and serde's error text is
/// no contract to rely on.
fn checked_version(event_type: &str, schema_version: u32) -> Result<u32, DecodeError> {
    if !EVENT_TYPES.contains(&event_type) {
        return Err(DecodeError::UnknownType(event_type.to_owned()));
    }
    let current = current_schema_version(event_type);
    if schema_version == 0 {
        return Err(malformed(
            event_type,
            0,
            "schema versions start at 1".into(),
        ));
    }
    if schema_version > current {
        return Err(DecodeError::FutureVersion {
            event_type: event_type.to_owned(),
            version: schema_version,
        });
    }
    Ok(current)
}

fn malformed(event_type: &str, version: u32, message: String) -> DecodeError {
    DecodeError::Malformed {
        event_type: event_type.to_owned(),
        version,
        message,
    }
}

/// Calls `$then!` with every event type decoded directly (straight into its
/// variant's struct). A type missing here still decodes, through the tagged
/// enum (a copy of the data plus serde's buffering); the codec unit test makes
/// such an omission fail the build's tests.
macro_rules! directly_decoded {
    ($then:ident) => {
        $then!(
            EstablishmentCreated,
            ClassCreated,
            PersonRegistered,
            StudentEnrolled,
            GuardianLinked,
            TeacherAssigned,
            AssessmentCreated,
            GradeRecorded,
            GradeCorrected,
            AbsenceReported,
            AbsenceDeclared,
            DeclaredAbsenceConfirmed,
            AbsenceJustified,
            JustificationReviewed,
            AbsenceCancelled,
            HomeworkAssigned,
            HomeworkAmended,
            HomeworkWithdrawn,
            MessageSent,
            MessageRead,
            PersonErased,
            AccountClosed,
            // discipline (issue 15)
            IncidentReported,
            PunishmentGiven,
            SanctionImposed,
            SanctionErased,
            // school day (issue 13)
            CoursePlanned,
            CourseCancelled,
            RollCallTaken,
            LessonContentRecorded,
            AbsenceReasonDefined,
            HolidaysSet,
            AbsenceMotiveGiven,
            HomeworkDetailed,
            HomeworkMarkedDone,
            // evaluation (issue 14)
            PeriodsDefined,
            PeriodClosed,
            PeriodReopened,
            AppreciationWritten,
            // communication (issue 16)
            AttachmentUploaded,
            AttachmentsLinked,
            NotificationPreferenceSet,
            WebPushRegistered,
            WebPushDropped,
            // interop (issue 17)
            GuardianUnlinked,
            TeacherUnassigned,
            PersonRenamed,
            ClassRenamed,
            SchoolYearStarted,
            ClassClosed,
        )
    };
}

/// Deserializes the variant's struct straight from the borrowed data: no copy
/// of the `Value`, and none of the buffering serde does to find the tag of an
/// internally tagged enum. `None` for a type not listed in `directly_decoded`.
fn decode_direct(event_type: &str, data: &Value) -> Option<Result<DomainEvent, serde_json::Error>> {
    use crate::events::*;
    use serde::Deserialize;
    macro_rules! from_value {
        ($($variant:ident),* $(,)?) => {
            match event_type {
                $(stringify!($variant) => {
                    Some($variant::deserialize(data).map(DomainEvent::$variant))
                })*
                _ => None,
            }
        };
    }
    directly_decoded!(from_value)
}

/// [`decode_direct`] from the JSON text.
fn decode_direct_text(
    event_type: &str,
    text: &str,
) -> Option<Result<DomainEvent, serde_json::Error>> {
    use crate::events::*;
    macro_rules! from_text {
        ($($variant:ident),* $(,)?) => {
            match event_type {
                $(stringify!($variant) => {
                    Some(serde_json::from_str::<$variant>(text).map(DomainEvent::$variant))
                })*
                _ => None,
            }
        };
    }
    directly_decoded!(from_text)
}

/// Brings `data` written at `version` up to the current shape of `event_type`.
fn upcast(_event_type: &str, _version: u32, data: Value) -> Value {
    data
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A new event type must join `decode_direct`'s list, or a rebuild would
    /// silently take the slow path for it.
    #[test]
    fn every_event_type_decodes_directly_and_as_the_tagged_enum_does() {
        for event in crate::testing::samples() {
            let encoded = event.encode();
            let direct = decode_direct(encoded.event_type, &encoded.data)
                .unwrap_or_else(|| panic!("{} is not in decode_direct", encoded.event_type))
                .unwrap();
            let mut tagged = encoded.data.clone();
            tagged["type"] = Value::String(encoded.event_type.to_owned());
            let via_enum: DomainEvent = serde_json::from_value(tagged).unwrap();
            assert_eq!(direct, via_enum);
            assert_eq!(direct, event);
            let text = encoded.data.to_string();
            assert!(
                decode_direct_text(encoded.event_type, &text).is_some(),
                "{} is not decoded directly from text",
                encoded.event_type
            );
            let from_text =
                DomainEvent::decode_text(encoded.event_type, encoded.schema_version, &text)
                    .unwrap();
            assert_eq!(from_text, event);
        }
    }

    /// The text path refuses what the tree path refuses, with the same error.
    #[test]
    fn decoding_text_refuses_what_decoding_the_tree_refuses() {
        let sample = crate::testing::samples().remove(0).encode();
        let version = sample.schema_version;
        let mut missing_field = sample.data.clone();
        if let Value::Object(map) = &mut missing_field {
            let first = map.keys().next().cloned().unwrap();
            map.remove(&first);
        }
        let cases: Vec<(&str, u32, String)> = vec![
            ("NoSuchEvent", 1, sample.data.to_string()),
            (sample.event_type, 0, sample.data.to_string()),
            (sample.event_type, version + 1, sample.data.to_string()),
            (sample.event_type, version, "[1, 2]".into()),
            (sample.event_type, version, "42".into()),
            (sample.event_type, version, missing_field.to_string()),
        ];
        for (event_type, version, text) in cases {
            let tree: Value = serde_json::from_str(&text).unwrap();
            let by_tree = DomainEvent::decode(event_type, version, &tree).unwrap_err();
            let by_text = DomainEvent::decode_text(event_type, version, &text).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&by_tree),
                std::mem::discriminant(&by_text),
                "{event_type} v{version} {text}: {by_tree} / {by_text}"
            );
        }
        assert!(matches!(
            DomainEvent::decode_text(sample.event_type, version, "{not json"),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
