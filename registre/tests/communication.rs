//! End-to-end, communication (issue 16), on real PostgreSQL (and a smoke run
//! on the embedded store): messages to a whole class and their read
//! receipts; attachments uploaded with the GraphQL multipart request,
//! sniffed, size-limited, downloaded with access checks, a justification's
//! documents sealed with the student's key; notifications delivered off the
//! request path to a real SMTP listener and a real push endpoint (both
//! started here: the endpoint checks the VAPID signature and decrypts the
//! RFC 8291 payload with the subscription's keys), following preferences,
//! exactly once across a restart and two nodes.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;
use tokio::sync::mpsc;

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

// ---- Helpers ---------------------------------------------------------------------

/// Polls `check` until it answers `Some`, failing after [`WAIT`]: the
/// delivery runs off the request path, so the test waits for its effect.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs `uploadAttachment` as a GraphQL multipart request (the spec's
/// `operations`, `map` and file parts); answers the status and the body.
async fn upload(
    node: &Node,
    token: &str,
    name: &str,
    declared: &str,
    bytes: &[u8],
) -> (u16, Value) {
    let boundary = "registre-test-boundary-7f3a";
    let operations = json!({
        "query": "mutation($file: Upload!) { uploadAttachment(file: $file) { id name contentType size sha256 url } }",
        "variables": { "file": null }
    });
    let mut body = Vec::new();
    let mut part = |headers: String, content: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "Content-Disposition: form-data; name=\"operations\"".into(),
        operations.to_string().as_bytes(),
    );
    part(
        "Content-Disposition: form-data; name=\"map\"".into(),
        br#"{"0": ["variables.file"]}"#,
    );
    part(
        format!("Content-Disposition: form-data; name=\"0\"; filename=\"{name}\"\r\nContent-Type: {declared}"),
        bytes,
    );
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let response = node
        .http()
        .post(node.url("/graphql"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("POST multipart");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn download(node: &Node, token: &str, url: &str) -> (u16, Vec<u8>) {
    let response = node
        .http()
        .get(node.url(url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET attachment");
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

fn person(external: &str) -> String {
    registre_domain::PersonId::for_external_id(external).to_string()
}

async fn class_of(node: &Node, token: &str, student: registre_domain::StudentId) -> String {
    let r = node
        .graphql(
            Some(token),
            "query($id: ID!) { student(id: $id) { schoolClass { id } } }",
            json!({ "id": student.to_string() }),
        )
        .await;
    r["data"]["student"]["schoolClass"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"))
        .to_string()
}

const SEND: &str = r#"
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { id to { id } receipts { person { id } readAt } attachments { id } }
}"#;

const INBOX: &str = r#"
{ inbox { id from { id } receipts { person { id } readAt } attachments { id name url } } }"#;

// ---- Groups and receipts -----------------------------------------------------------

#[tokio::test]
async fn a_teacher_writes_to_the_parents_of_a_class_and_only_the_sender_sees_receipts() {
    let (_db, idp, node, roster) = seeded_node(&[]).await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);
    let class = class_of(&node, &teacher, roster.student).await;

    let sent = node
        .graphql(
            Some(&teacher),
            SEND,
            json!({ "input": {
                "to": [],
                "toGroups": [{ "classId": class, "audience": "GUARDIANS" }],
                "subject": "Sortie au musée",
                "body": "Bonjour, l'autorisation est à rendre lundi.",
            }}),
        )
        .await;
    let message = &sent["data"]["sendMessage"];
    let mut to: Vec<&str> = message["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    to.sort();
    let mut parents = vec![person(roster.guardian), person(roster.other_guardian)];
    parents.sort();
    assert_eq!(
        to, parents,
        "resolved to every guardian of the class: {sent}"
    );
    assert_eq!(message["receipts"].as_array().unwrap().len(), 2);
    assert!(message["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["readAt"].is_null()));
    let id = message["id"].as_str().unwrap();

    let read = node
        .graphql(
            Some(&guardian),
            "mutation($id: ID!) { markMessageRead(messageId: $id) { id readAt receipts { readAt } } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        !read["data"]["markMessageRead"]["readAt"].is_null(),
        "{read}"
    );
    assert_eq!(
        read["data"]["markMessageRead"]["receipts"],
        json!([]),
        "a recipient sees no receipt"
    );

    let inbox = node.graphql(Some(&teacher), INBOX, json!({})).await;
    let receipts: BTreeMap<String, Value> = inbox["data"]["inbox"][0]["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["person"]["id"].as_str().unwrap().to_string(),
                r["readAt"].clone(),
            )
        })
        .collect();
    assert!(!receipts[&person(roster.guardian)].is_null(), "{inbox}");
    assert!(
        receipts[&person(roster.other_guardian)].is_null(),
        "{inbox}"
    );

    // A guardian may not write to all the parents of the class; nothing is written.
    let head = node.store.head().await.unwrap();
    let refused = node
        .graphql(
            Some(&guardian),
            SEND,
            json!({ "input": {
                "to": [],
                "toGroups": [{ "classId": class, "audience": "GUARDIANS" }],
                "subject": "Fête de fin d'année",
                "body": "Qui apporte quoi ?",
            }}),
        )
        .await;
    assert_eq!(error_codes(&refused), ["FORBIDDEN"], "{refused}");
    assert_eq!(node.store.head().await.unwrap(), head, "nothing written");
    node.stop().await;
}

// ---- Attachments -----------------------------------------------------------------

#[tokio::test]
async fn a_worksheet_is_uploaded_sniffed_attached_and_downloaded_by_the_class_only() {
    let (_db, idp, node, roster) = seeded_node(&[("REGISTRE_MAX_ATTACHMENT_BYTES", "4096")]).await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);
    let class = class_of(&node, &teacher, roster.student).await;

    // Declared as a PNG, it is a PDF: the content decides.
    let (status, up) = upload(&node, &teacher, "fiche-exercices.pdf", "image/png", PDF).await;
    assert_eq!(status, 200, "{up}");
    let a = &up["data"]["uploadAttachment"];
    assert_eq!(a["contentType"], "application/pdf", "{up}");
    assert_eq!(a["size"], PDF.len());
    assert_eq!(a["sha256"], hex::encode(Sha256::digest(PDF)));
    assert_eq!(a["name"], "fiche-exercices.pdf");
    let (id, url) = (a["id"].as_str().unwrap(), a["url"].as_str().unwrap());

    let due = (chrono::Utc::now() + chrono::Duration::days(7))
        .date_naive()
        .to_string();
    let hw = node
        .graphql(
            Some(&teacher),
            r#"mutation($input: AssignHomeworkInput!) { assignHomework(input: $input) { id attachments { id url } } }"#,
            json!({ "input": {
                "classId": class, "subject": "Mathématiques", "title": "Fiche 3",
                "description": "", "due": due, "attachmentIds": [id],
            }}),
        )
        .await;
    assert_eq!(
        hw["data"]["assignHomework"]["attachments"][0]["id"], id,
        "{hw}"
    );

    let (status, bytes) = download(&node, &guardian, url).await;
    assert_eq!(
        (status, bytes.as_slice()),
        (200, PDF),
        "a guardian of the class downloads it"
    );

    // Refusals: too large, disguised, not one's own upload, no token.
    let head = node.store.head().await.unwrap();
    let big = [PDF, &vec![b' '; 5000]].concat();
    let (status, r) = upload(&node, &teacher, "gros.pdf", "application/pdf", &big).await;
    assert_eq!(
        (status, error_codes(&r)),
        (413, vec!["INVALID_INPUT".to_string()]),
        "{r}"
    );
    let exe = b"MZ\x90\x00\x03\x00\x00\x00 this program cannot be run in DOS mode";
    let (status, r) = upload(&node, &teacher, "certificat.pdf", "application/pdf", exe).await;
    assert_eq!(
        (status, error_codes(&r)),
        (200, vec!["INVALID_INPUT".to_string()]),
        "{r}"
    );
    let store = node.store.communication().unwrap();
    for refused in [&big[..], &exe[..]] {
        let sha = hex::encode(Sha256::digest(refused));
        assert_eq!(
            store.blob(&sha, uuid::Uuid::nil()).await.unwrap(),
            None,
            "nothing stored"
        );
    }
    assert_eq!(node.store.head().await.unwrap(), head, "nothing written");

    let stolen = node
        .graphql(
            Some(&guardian),
            SEND,
            json!({ "input": { "to": [person(roster.teacher)], "subject": "Question", "body": "Voici", "attachmentIds": [id] }}),
        )
        .await;
    assert_eq!(
        error_codes(&stolen),
        ["NOT_FOUND"],
        "another person's upload is not theirs: {stolen}"
    );
    let anonymous = node.http().get(node.url(url)).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    node.stop().await;
}

#[tokio::test]
async fn a_doctors_note_is_sealed_for_the_student_seen_by_family_and_staff_and_erased_with_them() {
    let (_db, idp, node, roster) = seeded_node(&[]).await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);
    let absence = report_absence(&node, &teacher, roster.student, 9, None).await;

    let note = [PDF, b"Certificat medical: repos 2 jours".as_slice()].concat();
    let (_, up) = upload(&node, &guardian, "certificat.pdf", "application/pdf", &note).await;
    let a = &up["data"]["uploadAttachment"];
    let (id, url) = (
        a["id"].as_str().unwrap().to_string(),
        a["url"].as_str().unwrap().to_string(),
    );
    let justified = node
        .graphql(
            Some(&guardian),
            r#"mutation($input: JustifyAbsenceInput!) { justifyAbsence(input: $input) { state attachments { id } } }"#,
            json!({ "input": { "absenceId": absence, "reason": "Malade", "attachmentIds": [id] }}),
        )
        .await;
    assert_eq!(
        justified["data"]["justifyAbsence"]["state"], "PENDING",
        "{justified}"
    );
    assert_eq!(
        justified["data"]["justifyAbsence"]["attachments"][0]["id"],
        id.as_str()
    );

    // Sealed with the student's key; the copy as uploaded is gone.
    let store = node.store.communication().unwrap();
    let sha = hex::encode(Sha256::digest(&note));
    assert_eq!(store.blob(&sha, uuid::Uuid::nil()).await.unwrap(), None);
    let sealed = store
        .blob(&sha, roster.student.0)
        .await
        .unwrap()
        .expect("sealed copy");
    assert!(
        !sealed.windows(10).any(|w| w == b"Certificat"),
        "stored encrypted"
    );

    let cpe = idp.token(roster.cpe);
    assert_eq!(download(&node, &guardian, &url).await, (200, note.clone()));
    assert_eq!(download(&node, &cpe, &url).await, (200, note.clone()));
    // Exactly who sees the absence: the class's teacher too, no other family.
    assert_eq!(download(&node, &teacher, &url).await, (200, note.clone()));
    let other = idp.token(roster.other_guardian);
    let (status, body) = download(&node, &other, &url).await;
    assert_eq!(status, 403, "another family's document");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error_codes(&body), ["FORBIDDEN"]);
    let other_child = node
        .graphql(
            Some(&other),
            "{ myChildren { absences { id attachments { id } } } }",
            json!({}),
        )
        .await;
    assert!(!other_child.to_string().contains(&id), "{other_child}");

    // The access log names the student as the subject of each read.
    let (node_ref, operation) = (&node, format!("attachment/{id}"));
    let reads = eventually("the downloads in the access log", || {
        let operation = operation.clone();
        async move {
            let all = node_ref
                .store
                .access_about(registre_domain::PersonId::for_external_id("e2e-student").0)
                .await
                .unwrap();
            let n = all
                .iter()
                .filter(|r| r.access.operation == operation)
                .count();
            (n >= 3).then_some(n)
        }
    })
    .await;
    assert_eq!(
        reads, 3,
        "the guardian's, the CPE's and the teacher's; a refusal reads nothing"
    );

    // A node that stopped between the justification and the sealing left
    // the copy as uploaded: the next download seals it.
    store.delete_blob(&sha, roster.student.0).await.unwrap();
    store
        .put_blob(&sha, uuid::Uuid::nil(), note.clone())
        .await
        .unwrap();
    assert_eq!(download(&node, &cpe, &url).await, (200, note.clone()));
    assert!(store.blob(&sha, roster.student.0).await.unwrap().is_some());
    assert_eq!(store.blob(&sha, uuid::Uuid::nil()).await.unwrap(), None);

    // Erasing the student erases the document.
    let admin = idp.token(ADMIN);
    let erased = node
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { forgetPerson(personId: $id, reason: \"Demande RGPD art. 17\") }",
            json!({ "id": person("e2e-student") }),
        )
        .await;
    assert_eq!(erased["data"]["forgetPerson"], true, "{erased}");
    assert_eq!(download(&node, &cpe, &url).await.0, 404);
    node.stop().await;
}

// ---- Notifications: a real SMTP listener, a real push endpoint -----------------------

/// The decoded `Subject:` header of a mail (RFC 2047 encoded words, folded lines).
fn subject_of(data: &str) -> String {
    let mut lines = data.lines().skip_while(|l| !l.starts_with("Subject:"));
    let mut raw = lines.next().expect("a Subject header")["Subject:".len()..].to_string();
    for l in lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')) {
        raw.push_str(l);
    }
    // Whitespace between two encoded words is not part of the text.
    let mut out = String::new();
    let mut after_encoded = false;
    for word in raw.split_whitespace() {
        let encoded = word.strip_prefix("=?").and_then(|w| w.strip_suffix("?="));
        let joined_to_previous = after_encoded && encoded.is_some();
        if !out.is_empty() && !joined_to_previous {
            out.push(' ');
        }
        match encoded {
            Some(encoded) => {
                let parts: Vec<&str> = encoded.splitn(3, '?').collect();
                assert!(parts[1].eq_ignore_ascii_case("b"), "{word}");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(parts[2])
                    .unwrap();
                out.push_str(&String::from_utf8(bytes).unwrap());
            }
            None => out.push_str(word),
        }
        after_encoded = encoded.is_some();
    }
    out
}

/// A browser's subscription: its keys, kept by the test to decrypt.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Self {
        Browser {
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
            auth: rand::random(),
        }
    }
    fn p256dh(&self) -> String {
        B64.encode(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    /// RFC 8291 §3.4 from the user agent's side.
    fn decrypt(&self, body: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit};
        let (salt, rest) = body.split_at(16);
        let idlen = rest[4] as usize;
        let (as_public, ciphertext) = rest[5..].split_at(idlen);
        let as_key = p256::PublicKey::from_sec1_bytes(as_public).unwrap();
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), as_key.as_affine());
        let ua_public = self.secret.public_key().to_encoded_point(false);
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(ua_public.as_bytes());
        info.extend_from_slice(as_public);
        let mut ikm = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .unwrap();
        let prk = hkdf::Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .unwrap();
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .unwrap();
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(&aes_gcm::Nonce::from(nonce), ciphertext)
            .expect("the payload decrypts with the subscription's keys");
        // Padding, then the last record's delimiter 2.
        while plain.last() == Some(&0) {
            plain.pop();
        }
        assert_eq!(plain.pop(), Some(2), "last-record delimiter");
        plain
    }
}

/// A push service on a local port: `/push/<name>` accepts (201) once it
/// has checked the VAPID signature (RFC 8292) for its own origin against
/// the node's public key and decrypted the payload; `/gone/<name>` answers
/// 410 like a service whose subscription expired.
async fn push_service(
    browsers: Arc<BTreeMap<String, Browser>>,
    vapid_public: String,
) -> (String, mpsc::UnboundedReceiver<(String, Value)>) {
    use warp::Filter;
    let (tx, rx) = mpsc::unbounded_channel();
    let addr_cell: Arc<std::sync::OnceLock<String>> = Arc::default();
    let origin = addr_cell.clone();
    let route = warp::post()
        .and(warp::path!(String / String))
        .and(warp::header::<String>("authorization"))
        .and(warp::header::<String>("content-encoding"))
        .and(warp::body::bytes())
        .map(
            move |kind: String,
                  name: String,
                  authorization: String,
                  encoding: String,
                  body: warp::hyper::body::Bytes| {
                use p256::ecdsa::signature::Verifier;
                assert_eq!(encoding, "aes128gcm");
                let (t, k) = authorization
                    .strip_prefix("vapid t=")
                    .and_then(|v| v.split_once(", k="))
                    .expect("a VAPID authorization");
                assert_eq!(k, vapid_public, "the node's VAPID key");
                let (signed, signature) = t.rsplit_once('.').unwrap();
                let key = p256::PublicKey::from_sec1_bytes(&B64.decode(k).unwrap()).unwrap();
                let signature =
                    p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
                p256::ecdsa::VerifyingKey::from(&key)
                    .verify(signed.as_bytes(), &signature)
                    .expect("a valid ES256 signature");
                let claims: Value =
                    serde_json::from_slice(&B64.decode(signed.split('.').nth(1).unwrap()).unwrap())
                        .unwrap();
                assert_eq!(claims["aud"].as_str(), origin.get().map(String::as_str));
                assert!(claims["sub"].as_str().unwrap().starts_with("mailto:"));
                if kind == "gone" {
                    return warp::reply::with_status("", warp::http::StatusCode::GONE);
                }
                let payload = browsers[&name].decrypt(&body);
                let _ = tx.send((name, serde_json::from_slice(&payload).unwrap()));
                warp::reply::with_status("", warp::http::StatusCode::CREATED)
            },
        );
    let (addr, server) = warp::serve(route).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    let base = format!("http://{addr}");
    addr_cell.set(base.clone()).unwrap();
    (base, rx)
}

/// The settings of a delivering node: the SMTP listener, and a VAPID key
/// file written in the test's directory.
fn delivery(idp: &Idp, smtp: &str) -> (Vec<(String, String)>, String) {
    let pem = registre_app::notify::VapidKey::generate_pem().unwrap();
    let path = idp.dir.0.join("vapid.pem");
    std::fs::write(&path, &pem).unwrap();
    let public = registre_app::notify::VapidKey::from_pem(&pem, "mailto:x@example.org")
        .unwrap()
        .public_key
        .clone();
    (
        vec![
            ("REGISTRE_SMTP_URL".into(), smtp.into()),
            (
                "REGISTRE_MAIL_FROM".into(),
                "Vie scolaire <vie-scolaire@college.test>".into(),
            ),
            ("REGISTRE_VAPID_KEY".into(), path.to_str().unwrap().into()),
        ],
        public,
    )
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

async fn set_preference(node: &Node, token: &str, input: Value) -> Value {
    node.graphql(
        Some(token),
        "mutation($input: NotificationPreferenceInput!) { setNotificationPreference(input: $input) { channel absences grades messages sanctions } }",
        json!({ "input": input }),
    )
    .await
}

async fn register_push(node: &Node, token: &str, endpoint: &str, browser: &Browser) -> Value {
    node.graphql(
        Some(token),
        "mutation($input: WebPushSubscriptionInput!) { registerWebPush(input: $input) }",
        json!({ "input": { "endpoint": endpoint, "p256dh": browser.p256dh(), "auth": B64.encode(browser.auth) } }),
    )
    .await
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

#[tokio::test]
async fn an_absence_reaches_a_parent_by_push_and_by_mail_as_they_chose() {
    // The relay refuses the first mail: it is retried and delivered once.
    let (smtp, mut mails) = smtp_server(1).await;
    let db = TestDb::create().await;
    let idp = Idp::new();
    let (settings, vapid_public) = delivery(&idp, &smtp);
    let config = idp.config(&db, &pairs(&settings));
    let store = registre::node::open_store(&config).await.unwrap();
    let roster = seed_roster(store.as_ref()).await;
    let node = Node::start(&config).await;
    let browsers = Arc::new(BTreeMap::from([("phone".to_string(), Browser::new())]));
    let (push_base, mut pushes) = push_service(browsers.clone(), vapid_public).await;
    let guardian = idp.token(roster.guardian);
    let teacher = idp.token(roster.teacher);

    let defaults = node
        .graphql(
            Some(&guardian),
            "{ myNotificationPreferences { channel absences grades messages sanctions } }",
            json!({}),
        )
        .await;
    assert_eq!(
        defaults["data"]["myNotificationPreferences"],
        json!([
            { "channel": "WEB_PUSH", "absences": true, "grades": false, "messages": false, "sanctions": false },
            { "channel": "EMAIL", "absences": true, "grades": false, "messages": false, "sanctions": false },
        ])
    );
    // Refusals: e-mail without an address, a malformed address, bad keys.
    let no_address = set_preference(&node, &guardian, json!({ "channel": "EMAIL", "absences": true, "grades": false, "messages": false, "sanctions": false })).await;
    assert_eq!(error_codes(&no_address), ["INVALID_INPUT"], "{no_address}");
    let bad = set_preference(&node, &guardian, json!({ "channel": "EMAIL", "absences": true, "grades": false, "messages": false, "sanctions": false, "email": "pas une adresse" })).await;
    assert_eq!(error_codes(&bad), ["INVALID_INPUT"], "{bad}");
    let bad_keys = node
        .graphql(
            Some(&guardian),
            "mutation { registerWebPush(input: { endpoint: \"https://push.example/x\", p256dh: \"AAAA\", auth: \"AAAA\" }) }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&bad_keys), ["INVALID_INPUT"], "{bad_keys}");

    let set = set_preference(&node, &guardian, json!({ "channel": "EMAIL", "absences": true, "grades": false, "messages": true, "sanctions": true, "email": "nadia.benali@example.org" })).await;
    assert_eq!(
        set["data"]["setNotificationPreference"][1]["messages"], true,
        "{set}"
    );
    let r = register_push(
        &node,
        &guardian,
        &format!("{push_base}/push/phone"),
        &browsers["phone"],
    )
    .await;
    assert_eq!(r["data"]["registerWebPush"], true, "{r}");
    // A second, expired subscription: the service answers 410, it is dropped.
    let r = register_push(
        &node,
        &guardian,
        &format!("{push_base}/gone/old-phone"),
        &browsers["phone"],
    )
    .await;
    assert_eq!(r["data"]["registerWebPush"], true, "{r}");

    // A grade: grades are off for both channels, so nothing is sent.
    let assessment = node
        .graphql(
            Some(&teacher),
            "mutation($input: CreateAssessmentInput!) { createAssessment(input: $input) { id } }",
            json!({ "input": { "classId": class_of(&node, &teacher, roster.student).await, "subject": "Mathématiques", "title": "Contrôle", "date": chrono::Utc::now().date_naive().to_string(), "coefficient": 1.0, "outOf": 20.0 } }),
        )
        .await;
    let graded = node
        .graphql(
            Some(&teacher),
            "mutation($input: RecordGradeInput!) { recordGrade(input: $input) { id } }",
            json!({ "input": { "assessmentId": assessment["data"]["createAssessment"]["id"], "studentId": roster.student.to_string(), "score": 4.5, "status": "GRADED" } }),
        )
        .await;
    assert!(graded["errors"].is_null(), "{graded}");

    let absence = report_absence(&node, &teacher, roster.student, 10, None).await;
    let (name, payload) = recv(&mut pushes, "the push").await;
    assert_eq!(name, "phone");
    assert_eq!(payload["kind"], "ABSENCE");
    assert_eq!(payload["id"], absence.as_str());
    assert!(
        payload["body"].as_str().unwrap().contains("Inès Benali"),
        "{payload}"
    );

    let mail = recv(&mut mails, "the mail").await;
    assert_eq!(mail.to, ["nadia.benali@example.org"]);
    let subject = subject_of(&mail.data);
    assert_eq!(
        subject, "Registre : absence ou retard signalé",
        "{}",
        mail.data
    );
    assert!(mail.data.contains("multipart/alternative"));
    assert!(mail.data.contains("text/html"));
    assert!(
        !mail.data.contains("4.5") && !mail.data.contains("4,5"),
        "no grade value anywhere"
    );

    // Settled: the mail after one retry, the push at once; no grade row.
    let node_ref = &node;
    let outbox = eventually("the outbox settled", || async move {
        let rows = node_ref
            .store
            .communication()
            .unwrap()
            .outbox()
            .await
            .unwrap();
        rows.iter().all(|r| r.state != "pending").then_some(rows)
    })
    .await;
    let summary: Vec<(&str, &str, &str, u32)> = outbox
        .iter()
        .map(|r| {
            (
                r.item.channel.as_str(),
                r.item.kind.as_str(),
                r.state.as_str(),
                r.attempts,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("EMAIL", "ABSENCE", "delivered", 2),
            ("WEB_PUSH", "ABSENCE", "delivered", 1),
        ]
    );
    // The expired subscription was dropped (a WebPushDropped in the log).
    let dropped = node_ref
        .store
        .read_all(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "WebPushDropped")
        .count();
    assert_eq!(dropped, 1);
    assert!(
        mails.try_recv().is_err() && pushes.try_recv().is_err(),
        "nothing else sent"
    );
    node.stop().await;
}

#[tokio::test]
async fn after_a_restart_and_with_two_nodes_no_notification_is_lost_or_repeated() {
    let (smtp, mut mails) = smtp_server(0).await;
    let db = TestDb::create().await;
    let idp = Idp::new();
    let (settings, _) = delivery(&idp, &smtp);
    let delivering = idp.config(&db, &pairs(&settings));
    let plain = idp.config(&db, &[]);
    let store = registre::node::open_store(&plain).await.unwrap();
    let roster = seed_roster(store.as_ref()).await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);

    let first = Node::start(&delivering).await;
    set_preference(&first, &guardian, json!({ "channel": "EMAIL", "absences": true, "grades": false, "messages": false, "sanctions": false, "email": "nadia.benali@example.org" })).await;
    let a1 = report_absence(&first, &teacher, roster.student, 8, None).await;
    let m = recv(&mut mails, "the first mail").await;
    assert_eq!(m.to, ["nadia.benali@example.org"]);
    first.stop().await;

    // While no node delivers, two absences are recorded (a node without
    // SMTP or VAPID settings does not deliver).
    let quiet = Node::start(&plain).await;
    let a2 = report_absence(&quiet, &teacher, roster.student, 9, None).await;
    let a3 = report_absence(&quiet, &teacher, roster.student, 10, None).await;
    quiet.stop().await;

    // Two delivering nodes on the same database: each notification has one sender.
    let one = Node::start(&delivering).await;
    let two = Node::start(&delivering).await;
    let a4 = report_absence(&two, &teacher, roster.student, 11, None).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(recv(&mut mails, "a mail after the restart").await);
    }
    let rows = eventually("every row delivered", || {
        let one = &one;
        async move {
            let rows = one.store.communication().unwrap().outbox().await.unwrap();
            (rows.len() == 4 && rows.iter().all(|r| r.state == "delivered")).then_some(rows)
        }
    })
    .await;
    let mut about: Vec<String> = rows.iter().map(|r| r.item.about_id.to_string()).collect();
    about.sort();
    let mut expected = vec![a1, a2, a3, a4];
    expected.sort();
    assert_eq!(about, expected, "one row per absence, none twice");
    assert!(rows.iter().all(|r| r.attempts == 1));
    assert_eq!(got.len(), 3);
    assert!(mails.try_recv().is_err(), "no fifth mail: {got:?}");
    one.stop().await;
    two.stop().await;
}

/// An upgraded database: the outbox's single checkpoint of before
/// partitions had theirs (migration 0011) is where each partition starts,
/// so what was recorded after it, while no node delivered, is sent once.
#[tokio::test]
async fn after_an_upgrade_each_partition_starts_from_the_old_checkpoint() {
    let (smtp, mut mails) = smtp_server(0).await;
    let db = TestDb::create().await;
    let idp = Idp::new();
    let (settings, _) = delivery(&idp, &smtp);
    let plain = idp.config(&db, &[]);
    let store = registre::node::open_store(&plain).await.unwrap();
    let roster = seed_roster(store.as_ref()).await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);

    let quiet = Node::start(&plain).await;
    set_preference(&quiet, &guardian, json!({ "channel": "EMAIL", "absences": true, "grades": false, "messages": false, "sanctions": false, "email": "nadia.benali@example.org" })).await;
    let before = report_absence(&quiet, &teacher, roster.student, 8, None).await;
    // A node of the previous version had enqueued up to here.
    let old_checkpoint = store.head().await.unwrap();
    let after = report_absence(&quiet, &teacher, roster.student, 9, None).await;
    quiet.stop().await;
    let old = i64::try_from(old_checkpoint).unwrap();
    registre_store::testing::connect(&db.url)
        .await
        .unwrap()
        .execute(
            "UPDATE notification_checkpoint SET position = $1 WHERE id = 1",
            &[&old],
        )
        .await
        .unwrap();

    let node = Node::start(&idp.config(&db, &pairs(&settings))).await;
    let m = recv(&mut mails, "the mail of the absence after the checkpoint").await;
    assert_eq!(m.to, ["nadia.benali@example.org"]);
    let rows = eventually("the row delivered", || {
        let node = &node;
        async move {
            let rows = node.store.communication().unwrap().outbox().await.unwrap();
            (!rows.is_empty() && rows.iter().all(|r| r.state == "delivered")).then_some(rows)
        }
    })
    .await;
    let about: Vec<String> = rows.iter().map(|r| r.item.about_id.to_string()).collect();
    assert_eq!(about, [after], "not {before}, enqueued before the upgrade");
    let checkpoints = node
        .store
        .communication()
        .unwrap()
        .partition_checkpoints()
        .await
        .unwrap();
    assert!(
        checkpoints.values().all(|at| *at >= old_checkpoint),
        "{checkpoints:?}"
    );
    assert!(mails.try_recv().is_err(), "one mail");
    node.stop().await;
}

// ---- The embedded store ------------------------------------------------------------

#[tokio::test]
async fn the_embedded_store_keeps_attachments_in_its_data_directory_and_delivers_mail() {
    let (smtp, mut mails) = smtp_server(0).await;
    let db = TestDb::create().await;
    let idp = Idp::new();
    let config = idp.config(
        &db,
        &[("DATABASE_URL", ""), ("REGISTRE_SMTP_URL", smtp.as_str())],
    );
    let store = registre::node::open_store(&config).await.unwrap();
    let roster = seed_roster(store.as_ref()).await;
    drop(store);
    let node = Node::start(&config).await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);
    let (status, up) = upload(&node, &teacher, "fiche.pdf", "application/pdf", PDF).await;
    assert_eq!(status, 200, "{up}");
    let a = &up["data"]["uploadAttachment"];
    let sha = a["sha256"].as_str().unwrap();
    assert!(idp
        .dir
        .0
        .join("attachments")
        .join(uuid::Uuid::nil().to_string())
        .join(sha)
        .exists());
    let sent = node
        .graphql(
            Some(&teacher),
            SEND,
            json!({ "input": { "to": [person(roster.guardian)], "subject": "Fiche", "body": "Ci-jointe.", "attachmentIds": [a["id"]] }}),
        )
        .await;
    assert_eq!(
        sent["data"]["sendMessage"]["attachments"][0]["id"], a["id"],
        "{sent}"
    );
    let url = a["url"].as_str().unwrap();
    assert_eq!(download(&node, &guardian, url).await, (200, PDF.to_vec()));
    let other = idp.token(roster.other_guardian);
    assert_eq!(download(&node, &other, url).await.0, 403);
    // The outbox on SQLite: the message above was before any preference;
    // this absence reaches the address chosen now, once.
    let set = set_preference(&node, &guardian, json!({ "channel": "EMAIL", "absences": true, "grades": false, "messages": false, "sanctions": false, "email": "nadia.benali@example.org" })).await;
    assert!(set["errors"].is_null(), "{set}");
    let absence = report_absence(&node, &teacher, roster.student, 14, None).await;
    let mail = recv(&mut mails, "the mail from the embedded store").await;
    assert_eq!(mail.to, ["nadia.benali@example.org"]);
    let node_ref = &node;
    let rows = eventually("the row delivered", || async move {
        let rows = node_ref
            .store
            .communication()
            .unwrap()
            .outbox()
            .await
            .unwrap();
        rows.iter().all(|r| r.state == "delivered").then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].item.about_id.to_string(), absence);
    let set = set_preference(&node, &guardian, json!({ "channel": "WEB_PUSH", "absences": false, "grades": true, "messages": true, "sanctions": false })).await;
    assert_eq!(
        set["data"]["setNotificationPreference"][0],
        json!({ "channel": "WEB_PUSH", "absences": false, "grades": true, "messages": true, "sanctions": false })
    );
    node.stop().await;
}

/// Discipline (issue 15) through the outbox: a punishment reaches the
/// guardian who asked for sanctions, by mail, without its reason; the
/// guardian who did not ask gets nothing (their address sees no mail).
#[tokio::test]
async fn a_punishment_reaches_the_guardians_who_chose_sanctions_without_its_reason() {
    let (smtp, mut mails) = smtp_server(0).await;
    let db = TestDb::create().await;
    let idp = Idp::new();
    let (settings, _) = delivery(&idp, &smtp);
    let config = idp.config(&db, &pairs(&settings));
    let store = registre::node::open_store(&config).await.unwrap();
    let roster = seed_roster(store.as_ref()).await;
    let node = Node::start(&config).await;
    let guardian = idp.token(roster.guardian);
    let other = idp.token(roster.other_guardian);
    let cpe = idp.token(roster.cpe);

    let set = set_preference(&node, &guardian, json!({ "channel": "EMAIL", "absences": false, "grades": false, "messages": false, "sanctions": true, "email": "nadia.benali@example.org" })).await;
    assert!(set["errors"].is_null(), "{set}");
    let set = set_preference(&node, &other, json!({ "channel": "EMAIL", "absences": true, "grades": false, "messages": false, "sanctions": false, "email": "autre@example.org" })).await;
    assert!(set["errors"].is_null(), "{set}");

    let punish = "mutation($i: GivePunishmentInput!) { givePunishment(input: $i) { id } }";
    // The other guardian's child is punished first: that guardian did not
    // ask for sanctions, so no mail may follow it.
    for student in [roster.other_student, roster.student] {
        let d = node
            .graphql(
                Some(&cpe),
                punish,
                json!({ "i": { "studentId": student.to_string(), "kind": "NOTE_IN_LOGBOOK",
                               "reason": "Insolence répétée en classe" } }),
            )
            .await;
        assert!(d["errors"].is_null(), "{d}");
    }
    let mail = recv(&mut mails, "the punishment's mail").await;
    assert_eq!(mail.to, ["nadia.benali@example.org"]);
    assert_eq!(subject_of(&mail.data), "Registre : punition");
    assert!(!mail.data.contains("Insolence"), "{}", mail.data);
    // The outbox holds that one row: none for the guardian who said no.
    let node_ref = &node;
    let rows = eventually("the row delivered", || async move {
        let rows = node_ref
            .store
            .communication()
            .unwrap()
            .outbox()
            .await
            .unwrap();
        rows.iter().all(|r| r.state == "delivered").then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].item.kind, "SANCTION");
    node.stop().await;
}
