//! Typed identifiers. Each aggregate and entity gets its own newtype so that a
//! `StudentId` can never be passed where a `PersonId` is expected: the two are
//! different things (a person may be a student, a guardian and a teacher).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The identifier `uuid`. The domain never makes one up (it has
            /// neither clock nor randomness): new entities' ids come from the
            /// caller, derived ones from what they identify (`for_person`...).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self(Uuid::nil())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

typed_id!(EstablishmentId);
typed_id!(ClassId);
typed_id!(
    /// A person: anyone with an account. Derived from the externalId (see
    /// [`PersonId::for_external_id`]) so that uniqueness of externalId is the
    /// uniqueness of a stream.
    PersonId
);
typed_id!(
    /// A student record: one per person enrolled (see [`StudentId::for_person`]).
    StudentId
);
typed_id!(AssessmentId);
typed_id!(
    /// One grade per (assessment, student): derived, see [`GradeId::for_pair`].
    GradeId
);
typed_id!(AbsenceId);
typed_id!(HomeworkId);
typed_id!(ThreadId);
typed_id!(MessageId);
// discipline (issue 15)
typed_id!(IncidentId);
typed_id!(PunishmentId);
typed_id!(SanctionId);
// school day (issue 13)
typed_id!(CourseId);
typed_id!(
    /// One of an establishment's absence motives.
    AbsenceReasonId
);
// evaluation (issue 14)
typed_id!(PeriodId);
typed_id!(
    /// One report card per student and period: derived, see [`ReportCardId::for_pair`].
    ReportCardId
);

/// Namespace of Registre's derived (UUIDv5) identifiers. Never change it: every
/// derived id in every log depends on it.
const REGISTRE_NS: Uuid = Uuid::from_u128(0x6a1c_9b0e_4f3d_4c2a_9e57_2d1b_8c3f_a0e1);

impl PersonId {
    /// The person id of an external identity. Deterministic so that
    /// "externalId is unique" is enforced by the store's expected-version check
    /// on the person's stream, without a separate uniqueness table.
    pub fn for_external_id(external_id: &str) -> Self {
        Self(Uuid::new_v5(
            &REGISTRE_NS,
            format!("person:{external_id}").as_bytes(),
        ))
    }
}

impl StudentId {
    /// A person has at most one student record; enrolling again moves it.
    pub fn for_person(person: PersonId) -> Self {
        Self(Uuid::new_v5(
            &REGISTRE_NS,
            format!("student:{}", person.0).as_bytes(),
        ))
    }
}

impl GradeId {
    /// One grade per student and assessment: the id says so.
    pub fn for_pair(assessment: AssessmentId, student: StudentId) -> Self {
        Self(Uuid::new_v5(
            &REGISTRE_NS,
            format!("grade:{}:{}", assessment.0, student.0).as_bytes(),
        ))
    }
}

impl ReportCardId {
    /// The appreciations of a student for a period live in one stream.
    pub fn for_pair(student: StudentId, period: PeriodId) -> Self {
        Self(Uuid::new_v5(
            &REGISTRE_NS,
            format!("report-card:{}:{}", student.0, period.0).as_bytes(),
        ))
    }
}
// communication (issue 16)
typed_id!(
    /// An uploaded file.
    AttachmentId
);
typed_id!(
    /// One Web Push subscription of a person: derived from the person and
    /// the endpoint (`WebPushId::for_endpoint`), so that registering the
    /// same browser twice is one subscription.
    WebPushId
);
