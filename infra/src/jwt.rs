//! The local stand-in for API Gateway's JWT authorizer (template.yaml's `OidcAuthorizer`),
//! so that `scripts/dev` and the tests see what the deployed API does: on the routes the
//! template guards (an `AWS::ApiGatewayV2::Route` whose `AuthorizationType` is
//! `!If [CONDITION, JWT, NONE]`), a request without a valid token gets API Gateway's `401
//! {"message":"Unauthorized"}` and never reaches the function; a valid token's claims go to
//! the function in the event's `requestContext.authorizer.jwt`.
//!
//! What API Gateway checks, and so what this checks: the token from the `Authorization`
//! header (a `Bearer ` prefix is removed); an RSA signature (RS256, RS384 or RS512) by a key
//! of the issuer's JWKS, found by `kid` through the issuer's OpenID discovery document;
//! `iss` equal to the issuer; `aud` naming the audience (or `client_id` equal to it, as
//! Cognito's access tokens have); `exp` in the future; `nbf` and `iat`, when present, not.
//!
//! Written on aws-lc-rs (already the SDK's crypto) rather than a JWT crate: the checks are
//! the dozen lines below, and API Gateway's own rules, not a library's defaults, are what
//! must hold here.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, RsaPublicKeyComponents};
use base64::Engine as _;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::template::{intrinsic, scalar, Template};

/// The authorizer's settings: template.yaml's `JwtIssuer`, `JwtAudience` and `JwtForV1`.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub issuer: String,
    pub audience: String,
    pub v1: bool,
}

/// Why a token was refused (logged; the caller sees only 401, as from API Gateway).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("no token")]
    Missing,
    #[error("not a JWT: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0:?} is not RSA")]
    Algorithm(String),
    #[error("no key {0:?} in the issuer's JWKS")]
    UnknownKey(String),
    #[error("the issuer's keys could not be fetched: {0}")]
    Keys(String),
    #[error("bad signature")]
    Signature,
    #[error("claim {0} does not hold")]
    Claim(&'static str),
}

/// A route the template guards: its method, its path (with `{name}` segments), and the
/// condition under which it needs the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    pub method: String,
    pub path: String,
    pub condition: String,
}

/// The guarded routes of `template`: every `AWS::ApiGatewayV2::Route` whose
/// `AuthorizationType` is `!If [CONDITION, JWT, NONE]` (or plain `JWT`).
pub fn guards(template: &Template) -> Vec<Guard> {
    let mut guards = Vec::new();
    for (_, route) in template.resources_of_type("AWS::ApiGatewayV2::Route") {
        let Some(key) = route.get("RouteKey").and_then(scalar) else { continue };
        let Some((method, path)) = key.split_once(' ') else { continue };
        let condition = match route.get("AuthorizationType") {
            Some(value) if scalar(value).as_deref() == Some("JWT") => String::new(),
            Some(value) => match intrinsic(value) {
                Some((function, argument)) if function == "If" => {
                    let parts = argument.as_sequence().cloned().unwrap_or_default();
                    match (parts.first().and_then(scalar), parts.get(1).and_then(scalar)) {
                        (Some(condition), Some(kind)) if kind == "JWT" => condition,
                        _ => continue,
                    }
                }
                _ => continue,
            },
            None => continue,
        };
        guards.push(Guard { method: method.to_owned(), path: path.to_owned(), condition });
    }
    guards
}

/// The keys are fetched again after this, as API Gateway refreshes its copy, and at once
/// (at most this often) when a token names a key not yet seen.
const KEYS_FOR: Duration = Duration::from_secs(300);
const REFETCH_AFTER: Duration = Duration::from_secs(5);
/// An issuer's answers are small; more is refused.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

struct Keys {
    fetched: Instant,
    by_id: HashMap<String, RsaPublicKeyComponents<Vec<u8>>>,
}

pub struct JwtAuthorizer {
    settings: JwtSettings,
    guards: Vec<Guard>,
    http: reqwest::Client,
    keys: Mutex<Option<Keys>>,
}

impl JwtAuthorizer {
    pub fn new(settings: JwtSettings, guards: Vec<Guard>) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
        Self { settings, guards, http, keys: Mutex::new(None) }
    }

    /// Whether `method path` needs a token: a guarded route whose condition holds. The
    /// local API also answers v1's routes at the root (`/process`), as `/api/v1/...`.
    pub fn guards(&self, method: &str, path: &str) -> bool {
        let v1_alias = (!path.starts_with("/api/")).then(|| format!("/api/v1{path}"));
        self.guards.iter().any(|guard| {
            let holds = match guard.condition.as_str() {
                "" | "HasJwt" => true,
                "JwtGuardsV1" => self.settings.v1,
                other => {
                    tracing::warn!(condition = other, "a guarded route's condition is unknown here; guarding it");
                    true
                }
            };
            holds
                && guard.method.eq_ignore_ascii_case(method)
                && (matches(&guard.path, path) || v1_alias.as_deref().is_some_and(|alias| matches(&guard.path, alias)))
        })
    }

    /// The verified token's claims, as API Gateway passes them (each value a string).
    pub async fn check(&self, authorization: Option<&str>) -> Result<Map<String, Value>, Refused> {
        let token = authorization.map(str::trim).filter(|t| !t.is_empty()).ok_or(Refused::Missing)?;
        let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed("not three parts"));
        };
        let decode = |part: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part);
        let header: Value = decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(Refused::Malformed("header"))?;
        let claims: Map<String, Value> = decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(Refused::Malformed("payload"))?;
        let signature = decode(signature).map_err(|_| Refused::Malformed("signature"))?;
        let algorithm = header["alg"].as_str().unwrap_or_default();
        let parameters: &'static signature::RsaParameters = match algorithm {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
            "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
            other => return Err(Refused::Algorithm(other.to_owned())),
        };
        let kid = header["kid"].as_str().ok_or(Refused::Malformed("no kid"))?;
        let key = self.key(kid).await?;
        let signed = &token[..token.rfind('.').unwrap_or(0)];
        key.verify(parameters, signed.as_bytes(), &signature).map_err(|_| Refused::Signature)?;
        self.check_claims(&claims, now())?;
        Ok(claims.into_iter().map(|(name, value)| (name, Value::from(claim_text(&value)))).collect())
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<(), Refused> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return Err(Refused::Claim("iss"));
        }
        let audience = self.settings.audience.as_str();
        let aud = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !aud && claims.get("client_id").and_then(Value::as_str) != Some(audience) {
            return Err(Refused::Claim("aud"));
        }
        let time = |name| claims.get(name).and_then(Value::as_f64);
        if !time("exp").is_some_and(|exp| exp > now as f64) {
            return Err(Refused::Claim("exp"));
        }
        if time("nbf").is_some_and(|nbf| nbf > now as f64) {
            return Err(Refused::Claim("nbf"));
        }
        if time("iat").is_some_and(|iat| iat > now as f64) {
            return Err(Refused::Claim("iat"));
        }
        Ok(())
    }

    /// The issuer's key `kid`, from the cached JWKS, or fetched (again) for it.
    async fn key(&self, kid: &str) -> Result<RsaPublicKeyComponents<Vec<u8>>, Refused> {
        let mut keys = self.keys.lock().await;
        let stale = keys.as_ref().is_none_or(|k| {
            k.fetched.elapsed() > KEYS_FOR || (!k.by_id.contains_key(kid) && k.fetched.elapsed() > REFETCH_AFTER)
        });
        if stale {
            *keys = Some(Keys { fetched: Instant::now(), by_id: self.fetch_keys().await? });
        }
        let found = keys.as_ref().and_then(|k| k.by_id.get(kid));
        found
            .map(|key| RsaPublicKeyComponents { n: key.n.clone(), e: key.e.clone() })
            .ok_or_else(|| Refused::UnknownKey(kid.to_owned()))
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, RsaPublicKeyComponents<Vec<u8>>>, Refused> {
        let discovery = format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
        let document = self.get_json(&discovery).await?;
        let jwks_uri = document["jwks_uri"].as_str().ok_or_else(|| Refused::Keys("no jwks_uri".into()))?;
        let jwks = self.get_json(jwks_uri).await?;
        let decode =
            |v: &Value| v.as_str().and_then(|s| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok());
        Ok(jwks["keys"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|key| key["kty"] == "RSA")
            .filter_map(|key| {
                let (kid, n, e) = (key["kid"].as_str()?, decode(&key["n"])?, decode(&key["e"])?);
                Some((kid.to_owned(), RsaPublicKeyComponents { n, e }))
            })
            .collect())
    }

    async fn get_json(&self, url: &str) -> Result<Value, Refused> {
        let failed = |e: &dyn std::fmt::Display| Refused::Keys(format!("{url}: {e}"));
        let response = self.http.get(url).send().await.map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&response.status()));
        }
        let bytes = response.bytes().await.map_err(|e| failed(&e))?;
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(failed(&"too large"));
        }
        serde_json::from_slice(&bytes).map_err(|e| failed(&e))
    }
}

/// A route path (`/api/v2/tasks/{task_id}`) against a request path: `{name}` matches one
/// non-empty segment.
fn matches(route: &str, path: &str) -> bool {
    let (route, path): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    route.len() == path.len()
        && route.iter().zip(&path).all(|(r, p)| if r.starts_with('{') { !p.is_empty() } else { r == p })
}

/// A claim as API Gateway hands it to the function: strings as they are, anything else as
/// its JSON text.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_match_one_segment_per_parameter() {
        assert!(matches("/api/v2/tasks/{task_id}", "/api/v2/tasks/doc_12"));
        assert!(!matches("/api/v2/tasks/{task_id}", "/api/v2/tasks/"));
        assert!(!matches("/api/v2/tasks/{task_id}", "/api/v2/tasks/a/b"));
        assert!(matches("/api/v2/tasks", "/api/v2/tasks"));
    }

    #[test]
    fn claims_are_checked_as_api_gateway_does() {
        let settings = JwtSettings { issuer: "https://issuer".into(), audience: "app".into(), v1: false };
        let authorizer = JwtAuthorizer::new(settings, vec![]);
        let claims = |value: Value| value.as_object().cloned().unwrap();
        let good = json_claims();
        assert!(authorizer.check_claims(&claims(good.clone()), 1000).is_ok());
        let mut cognito_access = good.clone();
        cognito_access.as_object_mut().unwrap().remove("aud");
        cognito_access["client_id"] = "app".into();
        assert!(authorizer.check_claims(&claims(cognito_access), 1000).is_ok());
        for (name, bad) in [
            ("iss", Value::from("https://other")),
            ("aud", Value::from(["x"].as_slice())),
            ("exp", 1000.into()),
            ("nbf", 1001.into()),
        ] {
            let mut claims_ = good.clone();
            claims_[name] = bad;
            assert!(matches!(authorizer.check_claims(&claims(claims_), 1000), Err(Refused::Claim(_))), "{name}");
        }
    }

    fn json_claims() -> Value {
        serde_json::json!({"iss": "https://issuer", "aud": ["app", "other"], "sub": "alice", "exp": 2000, "iat": 900})
    }
}
