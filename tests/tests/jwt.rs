//! The optional JWT authorizer, as the local HTTP API enforces what API Gateway would
//! (infra/src/jwt.rs, template.yaml's guarded routes): the tests sign tokens with a key of
//! their own and serve its JWKS, through OpenID discovery, on loopback.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use docusnap_infra::jwt::{guards, JwtAuthorizer, JwtSettings};
use docusnap_infra::runtime::Environments;
use docusnap_tests::repo_root;
use docusnap_tests::stub::{Reply, Server};
use serde_json::{json, Value};

const AUDIENCE: &str = "docusnap-test";
const KID: &str = "test-key-1";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token over `claims`, RS256-signed by `key` and naming `kid`.
fn token(key: &KeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let signed = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut signature).unwrap();
    format!("{signed}.{}", b64(&signature))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An OIDC issuer on loopback: its discovery document and its JWKS (one key).
async fn issuer(key: &KeyPair) -> Server {
    let public = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
    let jwk = json!({"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256", "n": b64(&public.n), "e": b64(&public.e)});
    let base: Arc<OnceLock<String>> = Arc::default();
    let seen = base.clone();
    let server = Server::serve(
        "",
        Arc::new(move |request| {
            let (base, jwk) = (seen.get().cloned().unwrap_or_default(), jwk.clone());
            Box::pin(async move {
                match request.path.as_str() {
                    "/.well-known/openid-configuration" => {
                        Reply::json(200, json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}))
                    }
                    "/jwks" => Reply::json(200, json!({"keys": [jwk]})),
                    _ => Reply::json(404, json!({})),
                }
            })
        }),
    )
    .await;
    base.set(server.base.clone()).unwrap();
    server
}

/// The local HTTP API in front of the test function, guarding what template.yaml guards.
async fn gateway(issuer: &str, v1: bool) -> (String, tokio::task::JoinHandle<()>) {
    let spec = docusnap_tests::test_function_spec(
        "test-http",
        env!("CARGO_BIN_EXE_docusnap-test-http"),
        Duration::from_secs(20),
    );
    let template = docusnap_infra::Template::from_file(&repo_root().join("template.yaml")).unwrap();
    let settings = JwtSettings { issuer: issuer.to_owned(), audience: AUDIENCE.into(), v1 };
    let authorizer = Arc::new(JwtAuthorizer::new(settings, guards(&template)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server =
        tokio::spawn(docusnap_infra::gateway::serve(listener, Arc::new(Environments::new(spec, 1)), Some(authorizer)));
    (base, server)
}

async fn post(base: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request =
        reqwest::Client::new().post(format!("{base}{path}")).header("content-type", "application/json").body("{}");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[test]
fn the_template_guards_v2_s_task_routes_and_v1_s_writes() {
    let template = docusnap_infra::Template::from_file(&repo_root().join("template.yaml")).unwrap();
    let mut guarded: Vec<String> =
        guards(&template).into_iter().map(|g| format!("{} {} if {}", g.method, g.path, g.condition)).collect();
    guarded.sort();
    assert_eq!(
        guarded,
        [
            "DELETE /api/v2/tasks/{task_id} if HasJwt",
            "GET /api/v2/tasks/{task_id} if HasJwt",
            "POST /api/v1/clear if JwtGuardsV1",
            "POST /api/v1/process if JwtGuardsV1",
            "POST /api/v2/tasks if HasJwt",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_good_token_reaches_a_guarded_route() {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let issuer = issuer(&key).await;
    let (base, server) = gateway(&issuer.base, false).await;
    let good = json!({"iss": issuer.base, "aud": AUDIENCE, "sub": "alice", "exp": now() + 600, "iat": now() - 5});
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        token(&key, KID, &claims)
    };
    let unauthorized = (401, json!({"message": "Unauthorized"}));
    assert_eq!(post(&base, "/api/v2/tasks", None).await, unauthorized, "no token");
    assert_eq!(post(&base, "/api/v2/tasks", Some(&with(&|c| c["aud"] = "someone-else".into()))).await, unauthorized);
    assert_eq!(post(&base, "/api/v2/tasks", Some(&with(&|c| c["exp"] = (now() - 1).into()))).await, unauthorized);
    assert_eq!(
        post(&base, "/api/v2/tasks", Some(&with(&|c| c["iss"] = "https://elsewhere".into()))).await,
        unauthorized
    );
    // Signed by another key under the same key id.
    let forger = KeyPair::generate(KeySize::Rsa2048).unwrap();
    assert_eq!(post(&base, "/api/v2/tasks", Some(&token(&forger, KID, &good))).await, unauthorized, "wrong signature");
    // Not signed at all.
    let unsigned = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(good.to_string().as_bytes()));
    assert_eq!(post(&base, "/api/v2/tasks", Some(&unsigned)).await, unauthorized, "alg none");
    let (status, answer) = post(&base, "/api/v2/tasks", Some(&token(&key, KID, &good))).await;
    assert_eq!((status, &answer["sub"]), (200, &json!("alice")), "a good token is served, its subject passed on");
    // v1's writes are open without JwtForV1 (the original client sends no token), and so is
    // v2's public key; a task's own route is guarded.
    assert_eq!(post(&base, "/process", None).await.0, 200);
    let get = reqwest::get(format!("{base}/api/v2/public_key")).await.unwrap();
    assert_eq!(get.status(), 200);
    let read = reqwest::get(format!("{base}/api/v2/tasks/doc_0123")).await.unwrap();
    assert_eq!(read.status(), 401);
    server.abort();

    // With JwtForV1, v1's writes need the token too, at the root and under /api/v1.
    let (base, server) = gateway(&issuer.base, true).await;
    assert_eq!(post(&base, "/process", None).await, unauthorized);
    assert_eq!(post(&base, "/api/v1/clear", None).await, unauthorized);
    assert_eq!(post(&base, "/api/v1/process", Some(&token(&key, KID, &good))).await.0, 200);
    assert_eq!(reqwest::get(format!("{base}/check_status")).await.unwrap().status(), 200, "health stays open");
    server.abort();
}
