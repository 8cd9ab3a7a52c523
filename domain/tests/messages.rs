//! Messaging invariants: recipients, sizes, replies, read receipts. Who may
//! reply or mark a message read is the API policy's (api/tests/graphql_authz.rs).
#![allow(clippy::unwrap_used)]

use registre_domain::messages::*;
use registre_domain::testing::{fresh, given, given_state, nothing, Rejection};
use registre_domain::text::RECIPIENTS_MAX;
use registre_domain::{events::*, DomainEvent};
use registre_domain::{MessageId, PersonId, ThreadId};

fn send(from: PersonId, to: Vec<PersonId>) -> SendMessage {
    SendMessage {
        message_id: fresh::<MessageId>(),
        thread: ThreadTarget::New {
            id: fresh::<ThreadId>(),
        },
        from,
        to,
        subject: " Sortie au musée ".into(),
        body: "Bonjour,\r\n\nmerci de signer l'autorisation.\n".into(),
    }
}

fn known(people: &[PersonId]) -> SendFacts {
    SendFacts {
        registered_recipients: people.to_vec(),
    }
}

#[test]
fn a_thread_starts_with_deduplicated_recipients_without_the_sender() {
    let (teacher, a, b) = (
        fresh::<PersonId>(),
        fresh::<PersonId>(),
        fresh::<PersonId>(),
    );
    let cmd = send(teacher, vec![a, b, a, teacher]);
    let (_, thread) = nothing::<Thread>()
        .when(|s| send_message(s, &cmd, &known(&[a, b])))
        .then_expect([DomainEvent::MessageSent(MessageSent {
            message_id: cmd.message_id,
            thread_id: cmd.thread_id(),
            from: teacher,
            to: vec![a, b],
            subject: "Sortie au musée".into(),
            body: "Bonjour,\n\nmerci de signer l'autorisation.".into(),
        })]);
    assert!(thread.is_participant(teacher) && thread.is_participant(a) && thread.is_participant(b));
    given_state(thread)
        .when(|s| send_message(s, &cmd, &known(&[a, b])))
        .then_reject(Rejection::Conflict);
}

#[test]
fn sending_rejections() {
    let me = fresh::<PersonId>();
    let other = fresh::<PersonId>();
    let facts = known(&[other]);
    for (cmd, rejection) in [
        (send(me, vec![]), Rejection::Invalid("to")),
        (send(me, vec![me, me]), Rejection::Invalid("to")),
        (
            SendMessage {
                subject: " ".into(),
                ..send(me, vec![other])
            },
            Rejection::Invalid("subject"),
        ),
        (
            SendMessage {
                subject: "s".repeat(201),
                ..send(me, vec![other])
            },
            Rejection::Invalid("subject"),
        ),
        (
            SendMessage {
                subject: "a\nb".into(),
                ..send(me, vec![other])
            },
            Rejection::Invalid("subject"),
        ),
        (
            SendMessage {
                body: "\n \t".into(),
                ..send(me, vec![other])
            },
            Rejection::Invalid("body"),
        ),
        (
            SendMessage {
                body: "b".repeat(20_001),
                ..send(me, vec![other])
            },
            Rejection::Invalid("body"),
        ),
        (
            SendMessage {
                body: "\u{1b}[2J".into(),
                ..send(me, vec![other])
            },
            Rejection::Invalid("body"),
        ),
        (
            send(me, vec![other, fresh::<PersonId>()]),
            Rejection::NotFound,
        ),
    ] {
        nothing::<Thread>()
            .when(|s| send_message(s, &cmd, &facts))
            .then_reject(rejection);
    }
    // A body of exactly the limit passes.
    let full = SendMessage {
        body: "b".repeat(20_000),
        ..send(me, vec![other])
    };
    assert!(send_message(&Thread::default(), &full, &facts).is_ok());
}

#[test]
fn recipient_count_is_bounded_after_deduplication() {
    let me = fresh::<PersonId>();
    let many: Vec<PersonId> = (0..=RECIPIENTS_MAX).map(|_| fresh::<PersonId>()).collect();
    let facts = known(&many);
    let too_many = send(me, many.clone());
    nothing::<Thread>()
        .when(|s| send_message(s, &too_many, &facts))
        .then_reject(Rejection::Invalid("to"));
    let mut at_limit = many[..RECIPIENTS_MAX].to_vec();
    at_limit.extend_from_slice(&many[..10]);
    at_limit.push(me);
    let cmd = send(me, at_limit);
    let events = send_message(&Thread::default(), &cmd, &facts).unwrap();
    let DomainEvent::MessageSent(sent) = &events[0] else {
        panic!("expected MessageSent, got {events:?}")
    };
    assert_eq!(sent.to.len(), RECIPIENTS_MAX);
}

fn thread(from: PersonId, to: PersonId) -> (SendMessage, Vec<DomainEvent>) {
    let cmd = send(from, vec![to]);
    let events = send_message(&Thread::default(), &cmd, &known(&[to])).unwrap();
    (cmd, events)
}

#[test]
fn replies_go_to_an_existing_thread() {
    let (teacher, parent) = (fresh::<PersonId>(), fresh::<PersonId>());
    let (first, history) = thread(teacher, parent);
    let answer = SendMessage {
        thread: ThreadTarget::Reply(first.thread_id()),
        subject: "Re: Sortie au musée".into(),
        body: "C'est signé.".into(),
        ..send(parent, vec![teacher])
    };
    let (_, state) = given::<Thread>(history.clone())
        .when(|s| send_message(s, &answer, &known(&[teacher])))
        .then_expect([DomainEvent::MessageSent(MessageSent {
            message_id: answer.message_id,
            thread_id: first.thread_id(),
            from: parent,
            to: vec![teacher],
            subject: "Re: Sortie au musée".into(),
            body: "C'est signé.".into(),
        })]);
    assert_eq!(state.messages.len(), 2);
    assert!(state.is_participant(parent) && state.is_participant(teacher));
    nothing::<Thread>()
        .when(|s| send_message(s, &answer, &known(&[teacher])))
        .then_reject(Rejection::NotFound);
    let same_id = SendMessage {
        message_id: first.message_id,
        ..answer
    };
    given::<Thread>(history)
        .when(|s| send_message(s, &same_id, &known(&[teacher])))
        .then_reject(Rejection::Conflict);
}

#[test]
fn read_receipts_are_per_reader_and_idempotent() {
    let (teacher, parent) = (fresh::<PersonId>(), fresh::<PersonId>());
    let (first, history) = thread(teacher, parent);
    let read = MarkRead {
        message_id: first.message_id,
        reader: parent,
    };
    let (_, state) = given::<Thread>(history.clone())
        .when(|s| mark_read(s, &read))
        .then_expect([DomainEvent::MessageRead(MessageRead {
            message_id: first.message_id,
            thread_id: first.thread_id(),
            reader: parent,
        })]);
    given_state(state)
        .when(|s| mark_read(s, &read))
        .then_nothing();
    let unknown = MarkRead {
        message_id: fresh::<MessageId>(),
        ..read
    };
    given::<Thread>(history)
        .when(|s| mark_read(s, &unknown))
        .then_reject(Rejection::NotFound);
}

#[test]
fn a_subject_or_body_with_a_direction_override_is_refused() {
    // Given a known recipient, when the subject hides "exe.pdf" behind a
    // right-to-left override (or the body isolates text), then nothing is sent.
    let (me, other) = (fresh::<PersonId>(), fresh::<PersonId>());
    for (cmd, field) in [
        (
            SendMessage {
                subject: "Bulletin_\u{202E}fdp.exe".into(),
                ..send(me, vec![other])
            },
            "subject",
        ),
        (
            SendMessage {
                body: "Signé : \u{2067}la direction\u{2069}".into(),
                ..send(me, vec![other])
            },
            "body",
        ),
        (
            SendMessage {
                subject: "\u{200F}Réunion".into(),
                ..send(me, vec![other])
            },
            "subject",
        ),
    ] {
        nothing::<Thread>()
            .when(|s| send_message(s, &cmd, &known(&[other])))
            .then_reject(Rejection::Invalid(field));
    }
}
