//! Who may plan, call the roll of, read and follow the school day (issue 13).
//!
//! - the timetable is planned by the HEAD (or an ADMIN) and cancelled by the
//!   HEAD or EDUCATION_STAFF of the establishment;
//! - a course's roll call is taken by its TEACHER or the establishment's
//!   EDUCATION_STAFF; its lesson content is written by its TEACHER;
//! - motives are defined by HEAD and EDUCATION_STAFF, holidays set by the
//!   HEAD (or an ADMIN);
//! - a course is seen by its teacher and by whoever sees its class;
//! - homework is amended and withdrawn by the teacher who assigned it, and
//!   marked done by a STUDENT of its class, for themself.

use super::{can_manage_roster, can_see_class, Viewer};
use registre_domain::{ClassId, CourseId, EstablishmentId, HomeworkId, Role, StudentId};
use registre_projections::ReadModel as Model;

/// planCourse, planWeeklyCourses: HEAD of the class's establishment, ADMIN.
pub fn can_plan_course(m: &Model, v: &Viewer, class: ClassId) -> bool {
    can_manage_roster(v, m.establishment_of_class(class))
}

/// cancelCourse: HEAD or EDUCATION_STAFF of the course's establishment.
pub fn can_cancel_course(m: &Model, v: &Viewer, course: CourseId) -> bool {
    m.course(course)
        .is_some_and(|c| v.runs(Some(c.establishment_id)))
}

/// takeRollCall: the TEACHER of the course, EDUCATION_STAFF of its establishment.
pub fn can_take_roll_call(m: &Model, v: &Viewer, course: CourseId) -> bool {
    m.course(course).is_some_and(|c| {
        (v.has(Role::Teacher) && c.teacher_id == v.person)
            || (v.has(Role::EducationStaff) && v.establishment == Some(c.establishment_id))
    })
}

/// recordLessonContent: the TEACHER of the course.
pub fn can_record_lesson_content(m: &Model, v: &Viewer, course: CourseId) -> bool {
    v.has(Role::Teacher) && m.course(course).is_some_and(|c| c.teacher_id == v.person)
}

/// defineAbsenceReason: HEAD or EDUCATION_STAFF of the establishment.
pub fn can_define_absence_reason(v: &Viewer, establishment: EstablishmentId) -> bool {
    v.runs(Some(establishment))
}

/// setHolidays: HEAD of the establishment, ADMIN.
pub fn can_set_holidays(v: &Viewer, establishment: EstablishmentId) -> bool {
    can_manage_roster(v, Some(establishment))
}

/// course(id), and the courses of a timetable: its teacher, and whoever sees its class.
pub fn can_see_course(m: &Model, v: &Viewer, course: CourseId) -> bool {
    m.course(course)
        .is_some_and(|c| c.teacher_id == v.person || can_see_class(m, v, c.class_id))
}

/// myCourses: TEACHER (their courses), EDUCATION_STAFF and HEAD (their establishment's).
pub fn has_courses(v: &Viewer) -> bool {
    v.has(Role::Teacher) || v.has(Role::EducationStaff) || v.has(Role::Head)
}

/// Whether myCourses lists every course of the viewer's establishment.
pub fn sees_every_course(v: &Viewer) -> bool {
    (v.has(Role::EducationStaff) || v.has(Role::Head)) && v.establishment.is_some()
}

/// missingRollCalls: HEAD or EDUCATION_STAFF of the establishment.
pub fn can_chase_roll_calls(v: &Viewer, establishment: EstablishmentId) -> bool {
    v.runs(Some(establishment))
}

/// pendingJustifications: EDUCATION_STAFF of the establishment.
pub fn can_review_justifications_of(v: &Viewer, establishment: EstablishmentId) -> bool {
    v.has(Role::EducationStaff) && v.establishment == Some(establishment)
}

/// amendHomework, withdrawHomework: the TEACHER who assigned it.
pub fn can_change_homework(m: &Model, v: &Viewer, homework: HomeworkId) -> bool {
    v.has(Role::Teacher)
        && m.homework_entry(homework)
            .is_some_and(|h| h.teacher_id == v.person)
}

/// markHomeworkDone: a STUDENT of the homework's class, for themself.
pub fn can_mark_homework_done(
    m: &Model,
    v: &Viewer,
    homework: HomeworkId,
    student: StudentId,
) -> bool {
    v.has(Role::Student)
        && m.student_of_person(v.person).is_some_and(|s| {
            s.id == student
                && m.homework_entry(homework)
                    .is_some_and(|h| h.class_id == s.class_id)
        })
}
