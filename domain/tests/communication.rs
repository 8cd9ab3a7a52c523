//! Communication invariants (issue 16): group recipients merged and bounded,
//! attachments only one's own, preferences and push subscriptions checked
//! and idempotent. Who may write to a group is the API policy's.
#![allow(clippy::unwrap_used)]

use registre_domain::communication::*;
use registre_domain::messages::{self, Thread, ThreadTarget};
use registre_domain::testing::{fresh, given_state, nothing, Rejection};
use registre_domain::{
    AttachmentId, ClassId, DomainEvent, MessageId, PersonId, ThreadId, WebPushId,
};
use std::collections::BTreeSet;

fn message(from: PersonId, to: Vec<PersonId>) -> messages::SendMessage {
    messages::SendMessage {
        message_id: fresh::<MessageId>(),
        thread: ThreadTarget::New {
            id: fresh::<ThreadId>(),
        },
        from,
        to,
        subject: "Sortie".into(),
        body: "Bonjour".into(),
    }
}

fn group(class: ClassId) -> RecipientGroup {
    RecipientGroup {
        class_id: class,
        audience: Audience::Guardians,
    }
}

#[test]
fn a_group_message_goes_to_every_member_once_and_carries_its_attachments() {
    let teacher = fresh::<PersonId>();
    let parents: Vec<PersonId> = (0..60).map(|_| fresh::<PersonId>()).collect();
    let sheet = fresh::<AttachmentId>();
    let cmd = SendMessage {
        message: message(teacher, vec![parents[0]]),
        to_groups: vec![group(fresh())],
        attachments: vec![sheet, sheet],
    };
    // 60 guardians: more than an individual message may have, fine for a group.
    let facts = SendFacts {
        message: messages::SendFacts {
            registered_recipients: vec![parents[0]],
        },
        group_members: [parents.clone(), vec![teacher]].concat(),
        own_attachments: BTreeSet::from([sheet]),
    };
    let events = send_message(&Thread::default(), &cmd, &facts).unwrap();
    nothing::<Thread>()
        .when(|s| send_message(s, &cmd, &facts))
        .then_expect(events.clone());
    let DomainEvent::MessageSent(sent) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(sent.to, parents, "each once, the sender left out");
    assert_eq!(
        events[1],
        DomainEvent::AttachmentsLinked(AttachmentsLinked {
            to: AttachedTo::Message {
                message_id: cmd.message.message_id,
                thread_id: cmd.message.thread_id(),
            },
            attachments: vec![sheet],
            student_id: None,
        })
    );
}

#[test]
fn group_and_attachment_rejections() {
    let teacher = fresh::<PersonId>();
    let mine = fresh::<AttachmentId>();
    let theirs = fresh::<AttachmentId>();
    let facts = |members: Vec<PersonId>| SendFacts {
        message: messages::SendFacts::default(),
        group_members: members,
        own_attachments: BTreeSet::from([mine]),
    };
    let cmd = |groups: usize, attachments: Vec<AttachmentId>| SendMessage {
        message: message(teacher, vec![]),
        to_groups: (0..groups).map(|_| group(fresh())).collect(),
        attachments,
    };
    let one = vec![fresh::<PersonId>()];
    for (cmd, members, rejection) in [
        (cmd(1, vec![theirs]), one.clone(), Rejection::NotFound),
        (
            cmd(1, vec![]),
            vec![teacher],
            Rejection::Invalid("toGroups"),
        ),
        (
            cmd(GROUPS_MAX + 1, vec![]),
            one.clone(),
            Rejection::Invalid("toGroups"),
        ),
        (
            cmd(1, vec![]),
            (0..=GROUP_RECIPIENTS_MAX).map(|_| fresh()).collect(),
            Rejection::Invalid("to"),
        ),
        (
            cmd(1, (0..=ATTACHMENTS_MAX).map(|_| fresh()).collect()),
            one.clone(),
            Rejection::Invalid("attachmentIds"),
        ),
    ] {
        nothing::<Thread>()
            .when(|s| send_message(s, &cmd, &facts(members)))
            .then_reject(rejection);
    }
}

#[test]
fn an_upload_keeps_the_last_segment_of_its_name_and_needs_content() {
    let upload = |name: &str, size: u64| UploadAttachment {
        attachment_id: fresh(),
        uploaded_by: fresh(),
        name: name.into(),
        content_type: "application/pdf".into(),
        size,
        sha256: "AB".repeat(32),
    };
    let cmd = upload("C:\\Users\\Nadia\\certificat.pdf", 10);
    let events = upload_attachment(&Attachment::default(), &cmd).unwrap();
    nothing::<Attachment>()
        .when(|s| upload_attachment(s, &cmd))
        .then_expect(events.clone());
    let DomainEvent::AttachmentUploaded(e) = &events[0] else {
        panic!()
    };
    assert_eq!(
        (e.name.as_str(), e.sha256.as_str()),
        ("certificat.pdf", &*"ab".repeat(32))
    );
    nothing::<Attachment>()
        .when(|s| upload_attachment(s, &upload("vide.pdf", 0)))
        .then_reject(Rejection::Invalid("file"));
}

#[test]
fn preferences_need_an_address_for_email_and_repeat_as_nothing() {
    let me = fresh::<PersonId>();
    let prefs = Preferences {
        absences: true,
        grades: true,
        messages: false,
        sanctions: false,
    };
    let set = |channel, email: Option<&str>| SetNotificationPreference {
        person_id: me,
        channel,
        preferences: prefs,
        email: email.map(Into::into),
    };
    for (cmd, field) in [
        (set(Channel::Email, None), "email"),
        (set(Channel::Email, Some("nadia@")), "email"),
        (set(Channel::Email, Some("a b@example.org")), "email"),
        (set(Channel::WebPush, Some("nadia@example.org")), "email"),
    ] {
        nothing::<Notifications>()
            .when(|s| set_notification_preference(s, &cmd))
            .then_reject(Rejection::Invalid(field));
    }
    let cmd = set(Channel::Email, Some(" nadia@example.org "));
    let (_, state) = nothing::<Notifications>()
        .when(|s| set_notification_preference(s, &cmd))
        .then_expect([DomainEvent::NotificationPreferenceSet(
            NotificationPreferenceSet {
                person_id: me,
                channel: Channel::Email,
                preferences: prefs,
                email: Some("nadia@example.org".into()),
            },
        )]);
    // The address given before stays when it is not repeated.
    given_state(state)
        .when(|s| set_notification_preference(s, &set(Channel::Email, None)))
        .then_nothing();
    assert!(Preferences::default().wants(NotificationKind::Absence));
    assert!(!Preferences::default().wants(NotificationKind::Grade));
    assert!(!Preferences::default().wants(NotificationKind::Sanction));
}

#[test]
fn a_push_subscription_is_checked_registered_once_and_dropped_once() {
    let me = fresh::<PersonId>();
    let key = format!("B{}", "A".repeat(86));
    let auth = "A".repeat(22);
    let register = |endpoint: &str, p256dh: &str, auth: &str| RegisterWebPush {
        person_id: me,
        endpoint: endpoint.into(),
        p256dh: p256dh.into(),
        auth: auth.into(),
    };
    for (cmd, field) in [
        (register("ftp://push", &key, &auth), "endpoint"),
        (register("https://push/x", "AAAA", &auth), "p256dh"),
        (register("https://push/x", &key, "AAAA"), "auth"),
        (register("https://push/x", "not base64!", &auth), "p256dh"),
    ] {
        nothing::<Notifications>()
            .when(|s| register_web_push(s, &cmd))
            .then_reject(Rejection::Invalid(field));
    }
    let cmd = register("https://push.example/x", &key, &auth);
    let id = WebPushId::for_endpoint(me, "https://push.example/x");
    let (_, state) = nothing::<Notifications>()
        .when(|s| register_web_push(s, &cmd))
        .then_expect([DomainEvent::WebPushRegistered(WebPushRegistered {
            person_id: me,
            subscription_id: id,
            endpoint: "https://push.example/x".into(),
            p256dh: key.clone(),
            auth: auth.clone(),
        })]);
    let state = given_state(state);
    assert!(
        register_web_push(state.state(), &cmd).unwrap().is_empty(),
        "once"
    );
    let drop = DropWebPush {
        person_id: me,
        subscription_id: id,
        status: 410,
    };
    let (_, state) =
        state
            .when(|s| drop_web_push(s, &drop))
            .then_expect([DomainEvent::WebPushDropped(WebPushDropped {
                person_id: me,
                subscription_id: id,
                status: 410,
            })]);
    given_state(state)
        .when(|s| drop_web_push(s, &drop))
        .then_nothing();
}
