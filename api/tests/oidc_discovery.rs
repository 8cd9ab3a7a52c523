//! OpenID Connect discovery against a real HTTP server the test starts: the
//! issuer alone is configured; the keys come from the `jwks_uri` its
//! `/.well-known/openid-configuration` names, read again when an unknown key
//! appears (a provider that rotated and moved its keys is followed); a
//! document naming another issuer is refused; a configured roles claim
//! (Keycloak's `realm_access.roles`) with ADMIN makes the caller an ADMIN.
#![allow(clippy::unwrap_used)]

use parking_lot::Mutex;
use registre_api::auth::{jwks_json, Authenticator, SigningKey, TokenClaims};
use registre_api::config::{AuthConfig, JwksSource};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use warp::Filter;

/// What the provider serves: its discovery document and its key sets by path.
#[derive(Default)]
struct Provider {
    discovery: Value,
    keys: std::collections::HashMap<String, Value>,
}

async fn serve(provider: Arc<Mutex<Provider>>) -> String {
    let discovery = {
        let p = provider.clone();
        warp::path!(".well-known" / "openid-configuration")
            .map(move || warp::reply::json(&p.lock().discovery))
    };
    let keys = warp::path!(String).map(move |name: String| {
        let body = provider.lock().keys.get(&name).cloned();
        match body {
            Some(v) => warp::reply::with_status(warp::reply::json(&v), warp::http::StatusCode::OK),
            None => warp::reply::with_status(
                warp::reply::json(&json!({})),
                warp::http::StatusCode::NOT_FOUND,
            ),
        }
    });
    let (addr, server) = warp::serve(discovery.or(keys)).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    format!("http://{addr}")
}

fn config(issuer: &str) -> AuthConfig {
    AuthConfig {
        jwks: JwksSource::Discovery {
            issuer: issuer.to_owned(),
        },
        issuer: issuer.to_owned(),
        audience: "registre".into(),
        admin_subjects: Default::default(),
        leeway: Duration::from_secs(5),
        refetch_min_interval: Duration::ZERO,
        refresh_interval: Duration::from_secs(3600),
        roles_claim: Some("realm_access.roles".into()),
    }
}

fn token(key: &SigningKey, issuer: &str, sub: &str, roles: &[&str]) -> String {
    let base = serde_json::to_value(TokenClaims::new(
        sub,
        issuer,
        "registre",
        Duration::from_secs(300),
    ))
    .unwrap();
    let mut claims = base.as_object().unwrap().clone();
    claims.insert("realm_access".into(), json!({ "roles": roles }));
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.kid().to_owned());
    let encoding = jsonwebtoken::EncodingKey::from_ec_pem(key.private_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

#[tokio::test]
async fn the_issuer_alone_finds_and_follows_the_keys() {
    let provider = Arc::new(Mutex::new(Provider::default()));
    let issuer = serve(provider.clone()).await;
    let first = SigningKey::generate_es256("k1").unwrap();
    {
        let mut p = provider.lock();
        p.discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks-2026")});
        p.keys.insert("jwks-2026".into(), jwks_json(&[&first]));
    }
    let auth = Authenticator::load(config(&issuer)).await.unwrap();
    let caller = auth
        .verify(&token(&first, &issuer, "eleve-1", &["ELEVE"]))
        .await
        .unwrap();
    assert_eq!((caller.subject.as_str(), caller.admin), ("eleve-1", false));
    let admin = auth
        .verify(&token(
            &first,
            &issuer,
            "dsi-1",
            &["offline_access", "ADMIN"],
        ))
        .await
        .unwrap();
    assert!(admin.admin, "ADMIN in the roles claim");

    // The provider rotates and moves its keys: a token with the new key is
    // verified once the discovery document, read again, names the new set.
    let second = SigningKey::generate_es256("k2").unwrap();
    let rotated = token(&second, &issuer, "prof-1", &[]);
    assert!(
        auth.verify(&rotated).await.is_err(),
        "unknown key before the provider publishes it"
    );
    {
        let mut p = provider.lock();
        p.discovery = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks-2027")});
        p.keys.insert("jwks-2027".into(), jwks_json(&[&second]));
        p.keys.remove("jwks-2026");
    }
    assert_eq!(auth.verify(&rotated).await.unwrap().subject, "prof-1");

    // A document naming another issuer is refused at start-up.
    provider.lock().discovery =
        json!({"issuer": "https://impostor.example", "jwks_uri": format!("{issuer}/jwks-2027")});
    let err = Authenticator::load(config(&issuer))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("impostor.example"), "{err}");
}

#[tokio::test]
async fn without_a_roles_claim_the_token_roles_are_ignored() {
    let provider = Arc::new(Mutex::new(Provider::default()));
    let issuer = serve(provider.clone()).await;
    let key = SigningKey::generate_es256("k").unwrap();
    {
        let mut p = provider.lock();
        p.discovery = json!({"issuer": format!("{issuer}/"), "jwks_uri": format!("{issuer}/keys")});
        p.keys.insert("keys".into(), jwks_json(&[&key]));
    }
    let auth = Authenticator::load(AuthConfig {
        roles_claim: None,
        ..config(&issuer)
    })
    .await
    .unwrap();
    let caller = auth
        .verify(&token(&key, &issuer, "x", &["ADMIN"]))
        .await
        .unwrap();
    assert!(!caller.admin);
}
