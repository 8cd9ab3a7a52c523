//! The roster commands of interoperability (issue 17): what a later SIECLE
//! or STS-Web export no longer says (a guardian unlinked, an assignment
//! ended, a person or a class renamed), and the turn of the school year,
//! which closes the past year's classes and periods in one transaction.

use super::school_day::{MultiCommand, Streams};
use super::{ApiError, Command};
use crate::policy::{self, Issuer};
use chrono::{DateTime, Utc};
use registre_domain::evaluation::{school_year, Periods};
use registre_domain::{roster, ClassId, DomainEvent, EstablishmentId, StreamName};
use registre_projections::ReadModel as Model;

impl Command for roster::UnlinkGuardian {
    const NAME: &'static str = "unlinkGuardian";
    type State = roster::Student;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer().is_some_and(|v| {
            policy::can_manage_roster(v, m.establishment_of_student(self.student_id))
        })
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::student(self.student_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::unlink_guardian(state, self)?)
    }
}

impl Command for roster::UnassignTeacher {
    const NAME: &'static str = "unassignTeacher";
    type State = roster::Class;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_roster(v, m.establishment_of_class(self.class_id)))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::class(self.class_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::unassign_teacher(state, self)?)
    }
}

/// A name is changed by those who may close the account: ADMIN, or HEAD of
/// every establishment the person belongs to.
impl Command for roster::RenamePerson {
    const NAME: &'static str = "renamePerson";
    type State = roster::Person;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_close_account(m, v, self.person_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::person(self.person_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::rename_person(state, self)?)
    }
}

/// Whether an open class of `establishment` other than `except` is named
/// `name` (trimmed, case-insensitively). Classes of past years are left out:
/// every year has its "2NDE1".
pub(crate) fn class_name_taken(
    m: &Model,
    establishment: EstablishmentId,
    name: &str,
    except: Option<ClassId>,
) -> bool {
    let wanted = name.trim().to_lowercase();
    m.classes_of(establishment).iter().any(|c| {
        c.closed.is_none() && Some(c.id) != except && c.name.trim().to_lowercase() == wanted
    })
}

/// The name and past school year of `class` when it is closed: the fact
/// every decision about a class of a past year refuses with.
pub(crate) fn closed_class(m: &Model, class: ClassId) -> Option<(String, i32)> {
    let c = m.class(class)?;
    Some((c.name.clone(), c.closed.as_ref()?.year))
}

impl Command for roster::RenameClass {
    const NAME: &'static str = "renameClass";
    type State = roster::Class;
    type Facts = roster::ClassFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_roster(v, m.establishment_of_class(self.class_id)))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        let establishment = m.establishment_of_class(self.class_id);
        roster::ClassFacts {
            establishment_exists: establishment.is_some(),
            name_taken: establishment
                .is_some_and(|e| class_name_taken(m, e, &self.name, Some(self.class_id))),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::class(self.class_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::rename_class(state, self, facts)?)
    }
}

/// What startSchoolYear is decided with.
#[derive(Debug)]
pub struct SchoolYearFacts {
    pub classes: Vec<ClassId>,
    pub year: roster::SchoolYearFacts,
}

/// startSchoolYear (HEAD of the establishment, ADMIN): the establishment's
/// stream, its periods' and every class's, in one transaction, so that a
/// year is never half turned.
impl MultiCommand for roster::StartSchoolYear {
    const NAME: &'static str = "startSchoolYear";
    type Facts = SchoolYearFacts;

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_roster(v, Some(self.establishment_id)))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let zone = m
            .establishment(self.establishment_id)
            .map(|e| e.time_zone)
            .unwrap_or_default();
        SchoolYearFacts {
            classes: m
                .classes_of(self.establishment_id)
                .iter()
                .filter(|c| c.closed.is_none())
                .map(|c| c.id)
                .collect(),
            year: roster::SchoolYearFacts {
                current_year: school_year(zone.today(now)),
            },
        }
    }
    fn streams(&self, facts: &Self::Facts) -> Vec<StreamName> {
        let mut streams = vec![
            StreamName::establishment(self.establishment_id),
            StreamName::periods(self.establishment_id),
        ];
        streams.extend(facts.classes.iter().map(|c| StreamName::class(*c)));
        streams
    }
    fn decide(&self, read: &Streams, facts: &Self::Facts) -> Result<Vec<DomainEvent>, ApiError> {
        let establishment: roster::Establishment =
            read.fold(&StreamName::establishment(self.establishment_id));
        let periods: Periods = read.fold(&StreamName::periods(self.establishment_id));
        let classes: Vec<roster::Class> = facts
            .classes
            .iter()
            .map(|c| read.fold(&StreamName::class(*c)))
            .collect();
        Ok(roster::start_school_year(
            &establishment,
            &classes,
            &periods,
            self,
            &facts.year,
        )?)
    }
}
