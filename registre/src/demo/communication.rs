//! The demo's communication (issue 16): each class's first teacher writes to
//! all the parents of the class (a group message, resolved to people as the
//! command would), most of them read it, and some guardians chose their
//! notifications (e-mail for absences and messages, at an example.org
//! address that no one reads). No attachment: the demo writes events only,
//! and an attachment's bytes live in the store beside them.

use chrono::NaiveDate;
use rand::Rng;
use registre_domain::communication::{Channel, NotificationPreferenceSet, Preferences};
use registre_domain::events::{MessageRead, MessageSent};
use registre_domain::{DomainEvent, MessageId, Role, ThreadId};

use super::{at, Builder, PersonInfo};

/// `classes`: per class, its first teacher and the guardians of its students.
pub(super) fn seed(b: &mut Builder, classes: &[(PersonInfo, Vec<PersonInfo>)], day: NaiveDate) {
    for (teacher, guardians) in classes {
        let mut to: Vec<_> = guardians.iter().map(|g| g.id).collect();
        to.sort();
        to.dedup();
        if to.is_empty() {
            continue;
        }
        let (thread_id, message_id) = (ThreadId(b.uuid()), MessageId(b.uuid()));
        let mut events = vec![(
            DomainEvent::MessageSent(MessageSent {
                message_id,
                thread_id,
                from: teacher.id,
                to: to.clone(),
                subject: "Réunion parents-professeurs".into(),
                body:
                    "Bonjour, la réunion parents-professeurs aura lieu jeudi à 18 h. Cordialement."
                        .into(),
            }),
            Some(*teacher),
            at(day, 17, 0),
            None,
        )];
        for reader in to {
            if b.rng.gen_bool(0.6) {
                events.push((
                    DomainEvent::MessageRead(MessageRead {
                        message_id,
                        thread_id,
                        reader,
                    }),
                    Some(PersonInfo {
                        id: reader,
                        role: Role::Guardian,
                    }),
                    at(day, 20, 30),
                    None,
                ));
            }
        }
        b.stream(events);
    }
    // A guardian of children in two classes chooses once.
    let mut seen = std::collections::BTreeSet::new();
    let mut chosen = 0;
    for (_, guardians) in classes {
        for g in guardians.iter().take(2) {
            if chosen >= 20 {
                return;
            }
            if !seen.insert(g.id) {
                continue;
            }
            chosen += 1;
            b.stream(vec![(
                DomainEvent::NotificationPreferenceSet(NotificationPreferenceSet {
                    person_id: g.id,
                    channel: Channel::Email,
                    preferences: Preferences {
                        messages: true,
                        ..Preferences::default()
                    },
                    email: Some(format!("parent{chosen}@example.org")),
                }),
                Some(*g),
                at(day, 21, 0),
                None,
            )]);
        }
    }
}
