//! Subject access (GDPR art. 15): one JSON document with everything Registre
//! holds about a person, for the `exportPersonData` query and the
//! `registre export person <id>` command, which both call [`person_data`].
//!
//! The document is built in two steps: what the read model knows (roster,
//! grades, absences, homework, messages) is copied under its lock in one go, so
//! the sections agree with each other at one log position; then the audit
//! trail events and the access log are read from the store, without holding the
//! lock. Each grade carries its history (the recording and every correction,
//! with actor, time and reason) taken from those audit events, so a person
//! sees what was rectified and why.
//!
//! The shape is versioned by its `format` field; adding a field is compatible,
//! renaming or removing one bumps the version.

// interop (issue 17)
pub mod lsu;

use crate::{ApiError, Viewer};
use registre_domain::{DomainEvent, GradeId, PersonId};
use registre_projections::{LoggedEvent, ProjectionEngine, ReadModel};
use registre_store::{AccessRecord, EventStore, NewAccess, Position, RecordedEvent};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The `format` of the document this module writes.
pub const FORMAT: &str = "registre.person-export/1";

/// Everything Registre holds about `person`, as of the read model's current
/// position (callers catch it up first). `NotFound` when the person was never
/// registered.
pub async fn person_data(
    store: &dyn EventStore,
    engine: &ProjectionEngine,
    person: PersonId,
) -> Result<Value, ApiError> {
    let part = engine
        .read(|m| from_model(m, person))
        .ok_or_else(|| ApiError::NotFound("person".into()))?;
    let events = store.read_positions(&part.audit_positions).await?;
    let access = store.access_about(person.0).await?;
    Ok(assemble(part, &events, &access))
}

/// `registre export person`: [`person_data`] read by an operator (a
/// registered AUDITOR or ADMIN, see [`crate::erasure::operator`]), and
/// recorded in the access log like the query's reads. The record is written
/// before the document is returned: an export that could not be logged is
/// not handed out.
pub async fn person_data_for_operator(
    store: &dyn EventStore,
    engine: &ProjectionEngine,
    operator: &Viewer,
    person: PersonId,
) -> Result<Value, ApiError> {
    if !crate::policy::can_export_person_data(operator) {
        return Err(ApiError::forbidden());
    }
    let doc = person_data(store, engine, person).await?;
    store
        .record_access(vec![NewAccess {
            at: chrono::Utc::now(),
            viewer_id: operator.person.0,
            viewer_profile: operator.profile().into(),
            subject_id: Some(person.0),
            operation: CLI_OPERATION.into(),
            service: "Services_Vie_Scolaire".into(),
        }])
        .await?;
    Ok(doc)
}

/// The access log's `operation` for an export from the command line.
pub const CLI_OPERATION: &str = "cli:export person";

/// What the read model contributes, copied out of its lock.
struct ModelPart {
    position: Position,
    sections: serde_json::Map<String, Value>,
    /// Grades in display order, to which the history is attached.
    grades: Vec<(GradeId, Value)>,
    audit_positions: Vec<Position>,
}

fn to_value<T: serde::Serialize>(v: T) -> Value {
    // The model's types are plain data (maps keyed by ids serialise as
    // strings); serialising them cannot fail, and if it ever did the
    // document would show null rather than abort a legal obligation.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn person_ref(m: &ReadModel, id: PersonId) -> Value {
    json!({
        "id": id.0.to_string(),
        "externalId": m.person(id).map(|p| p.external_id.clone()),
        "displayName": m.person(id).map(|p| p.display_name.clone()),
    })
}

fn from_model(m: &ReadModel, person: PersonId) -> Option<ModelPart> {
    let p = m.person(person)?;
    let mut sections = serde_json::Map::new();

    let establishment = p
        .establishment_id
        .and_then(|e| m.establishment(e))
        .map(|e| json!({"id": e.id.0.to_string(), "uai": e.uai, "name": e.name}));
    sections.insert(
        "person".into(),
        json!({
            "id": p.id.0.to_string(),
            "externalId": p.external_id,
            "displayName": p.display_name,
            "roles": to_value(&p.roles),
            "registeredAt": p.registered_at.to_rfc3339(),
            // The departure day from which the account retention period runs.
            "accountClosedOn": p.account_closed_on.map(|d| d.to_string()),
            "erased": p.erased,
            "establishment": establishment,
        }),
    );

    let student = m.student_of_person(person);
    sections.insert(
        "student".into(),
        match student {
            None => Value::Null,
            Some(s) => {
                let class = m.class(s.class_id);
                json!({
                    "id": s.id.0.to_string(),
                    "class": {
                        "id": s.class_id.0.to_string(),
                        "name": class.map(|c| c.name.clone()),
                        "establishmentId": class.map(|c| c.establishment_id.0.to_string()),
                    },
                    "guardians": s.guardians.iter().map(|g| person_ref(m, *g)).collect::<Vec<_>>(),
                })
            }
        },
    );

    let children: Vec<Value> = m
        .children_of(person)
        .iter()
        .map(|s| {
            json!({
                "studentId": s.id.0.to_string(),
                "person": person_ref(m, s.person_id),
                "classId": s.class_id.0.to_string(),
                "className": m.class(s.class_id).map(|c| c.name.clone()),
            })
        })
        .collect();
    sections.insert("children".into(), Value::Array(children));

    let grades: Vec<(GradeId, Value)> = student
        .map(|s| {
            m.grades_of(s.id, None)
                .into_iter()
                .map(|g| (g.grade.id, to_value(&g)))
                .collect()
        })
        .unwrap_or_default();
    let absences: Vec<Value> = student
        .map(|s| m.absences_of(s.id).into_iter().map(to_value).collect())
        .unwrap_or_default();
    sections.insert("absences".into(), Value::Array(absences));
    // discipline (issue 15): only when there is some, so that the document
    // of a student without any is unchanged.
    if let Some(discipline) = student.and_then(|s| discipline_of(m, s.id)) {
        sections.insert("discipline".into(), discipline);
    }

    // A student's homework is their class's; a teacher's is what they assigned.
    let mut homework: Vec<Value> = student
        .map(|s| {
            m.homework_of(s.id, None, None)
                .into_iter()
                .map(to_value)
                .collect()
        })
        .unwrap_or_default();
    let mut taught: Vec<_> = m.teachings_of(person).iter().map(|t| t.class_id).collect();
    taught.sort();
    taught.dedup();
    for class in taught {
        homework.extend(
            m.homework_of_class(class, None, None)
                .into_iter()
                .filter(|h| h.teacher_id == person)
                .map(to_value),
        );
    }
    sections.insert("homework".into(), Value::Array(homework));
    sections.insert("teachings".into(), to_value(m.teachings_of(person)));

    sections.insert(
        "messages".into(),
        json!({
            "received": m.inbox(person).into_iter().map(to_value).collect::<Vec<_>>(),
            "sent": m.sent_by(person).into_iter().map(to_value).collect::<Vec<_>>(),
        }),
    );

    Some(ModelPart {
        position: m.position(),
        sections,
        grades,
        audit_positions: m.audit_positions(person).to_vec(),
    })
}

/// A student's incidents (their own line only), punishments and sanctions,
/// erased ones included (their facts stay, their reason reads as erased).
fn discipline_of(m: &ReadModel, student: registre_domain::StudentId) -> Option<Value> {
    let d = m.discipline();
    let incidents: Vec<Value> = d
        .incidents_of(student)
        .map(|i| {
            json!({
                "id": i.id.0.to_string(),
                "occurredAt": i.occurred_at.to_rfc3339(),
                "place": i.place,
                "description": i.description,
                "role": i.protagonists.iter().find(|p| p.student_id == student).map(|p| p.role),
                "reportedAt": i.reported_at.to_rfc3339(),
            })
        })
        .collect();
    let punishments: Vec<Value> = d
        .punishments_of(student)
        .into_iter()
        .map(to_value)
        .collect();
    let sanctions: Vec<Value> = d
        .sanctions_by_student(student)
        .into_iter()
        .map(to_value)
        .collect();
    (!incidents.is_empty() || !punishments.is_empty() || !sanctions.is_empty()).then(
        || json!({"incidents": incidents, "punishments": punishments, "sanctions": sanctions}),
    )
}

fn audit_entry(e: &RecordedEvent) -> Value {
    json!({
        "position": e.position,
        "streamId": e.stream_id,
        "eventId": e.event_id.to_string(),
        "eventType": e.event_type,
        "schemaVersion": e.schema_version,
        "recordedAt": e.recorded_at.to_rfc3339(),
        "occurredAt": e.metadata.occurred_at.to_rfc3339(),
        "actor": e.metadata.actor.as_ref().map(|a| json!({
            "personId": a.person_id.to_string(),
            "role": a.role,
        })),
        "reason": e.metadata.reason,
        "correlationId": e.metadata.correlation_id.to_string(),
        "data": e.data,
    })
}

fn access_entry(r: &AccessRecord) -> Value {
    json!({
        "id": r.id,
        "at": r.access.at.to_rfc3339(),
        "viewerId": r.access.viewer_id.to_string(),
        "viewerProfile": r.access.viewer_profile,
        "operation": r.access.operation,
        "service": r.access.service,
    })
}

/// The grade an audit event records or corrects, if any.
fn grade_of(e: &RecordedEvent) -> Option<GradeId> {
    match LoggedEvent::decode(e).ok()?.event {
        DomainEvent::GradeRecorded(g) => Some(g.grade_id),
        DomainEvent::GradeCorrected(g) => Some(g.grade_id),
        _ => None,
    }
}

fn assemble(part: ModelPart, events: &[RecordedEvent], access: &[AccessRecord]) -> Value {
    let mut history: BTreeMap<GradeId, Vec<Value>> = BTreeMap::new();
    for e in events {
        if let Some(g) = grade_of(e) {
            history.entry(g).or_default().push(audit_entry(e));
        }
    }
    let grades: Vec<Value> = part
        .grades
        .into_iter()
        .map(|(id, mut g)| {
            if let Value::Object(o) = &mut g {
                o.insert(
                    "history".into(),
                    Value::Array(history.remove(&id).unwrap_or_default()),
                );
            }
            g
        })
        .collect();

    let mut doc = serde_json::Map::new();
    doc.insert("format".into(), json!(FORMAT));
    doc.insert("generatedAt".into(), json!(chrono::Utc::now().to_rfc3339()));
    doc.insert("logPosition".into(), json!(part.position));
    doc.extend(part.sections);
    doc.insert("grades".into(), Value::Array(grades));
    doc.insert(
        "auditTrail".into(),
        Value::Array(events.iter().map(audit_entry).collect()),
    );
    doc.insert(
        "accessLog".into(),
        Value::Array(access.iter().map(access_entry).collect()),
    );
    Value::Object(doc)
}
