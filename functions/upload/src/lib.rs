//! The upload function: DocuSnap's HTTP API, v1 and v2.
//!
//! v1's `POST /process`, `POST /clear`, `GET /check_status` and `GET /public_key`, both at
//! the root and under `/api/v1`; v2's tasks, public key and contract under `/api/v2`
//! ([`v2`], `openapi.json`); and the web page at `GET /` ([`route`]). [`handle`] is the
//! whole Lambda handler, callable from tests; the protocols' rules live in [`Upload`].

use std::sync::OnceLock;

use docusnap_core::config::Limits;
use docusnap_core::crypto::{sha256_base64, ServerKey};
use docusnap_core::metrics;
use docusnap_core::protocol::{self, ClearRequest, ProcessRequest};
use docusnap_core::quota::{Principal, QuotaLimits};
use docusnap_core::Env;
use http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::json;

mod clear;
mod process;
pub mod route;
mod startup;
pub mod v2;

pub use route::{ApiVersion, Route, RouteError};
pub use startup::{from_env, AwsUpload};
pub use v2::{V2Answer, V2Api};

/// The web page at `GET /`: drop photos or PDFs, process them as a document or a form, see
/// each page with its lines boxed and where each value was read, keep results in the
/// browser, and fill a form from them. The v2 crypto runs in the page (WebCrypto), so the
/// page is a v2 client like any other.
const PAGE: &str = include_str!("page.html");

/// API v2's contract, served at `GET /api/v2/openapi.json`; tests check the routes
/// against it and validate it.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The upload function's state, built once per process and shared by every invocation.
pub struct Upload<E: Env> {
    pub tasks: E::Tasks,
    /// The uploads bucket, which also presigns v2's page uploads.
    pub blobs: E::Blobs,
    /// Each wrapped key's first content: a reused key is refused before decryption.
    pub keys: E::Keys,
    pub clock: E::Clock,
    pub key: ServerKey,
    pub limits: Limits,
    /// Per-principal quotas, and the deployment's limits for them.
    pub quotas: E::Quotas,
    pub quota: QuotaLimits,
    pub v2: V2Api<E::Queue>,
}

/// Who sent a request, as the HTTP API saw it: the subject of the token its JWT authorizer
/// verified (none when the API is open), and the caller's address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub subject: Option<String>,
    pub address: Option<String>,
}

impl Caller {
    /// From the payload 2.0 event's request context. The claims are there only when API
    /// Gateway verified a token, so they are trusted as they are.
    pub fn of(request: &Request) -> Self {
        match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => Self {
                subject: context
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.jwt.as_ref())
                    .and_then(|jwt| jwt.claims.get("sub").cloned()),
                address: context.http.source_ip.clone(),
            },
            _ => Self::default(),
        }
    }

    /// The verified token's subject, as a principal.
    pub fn subject(&self) -> Option<Principal> {
        self.subject.as_deref().and_then(Principal::subject)
    }

    /// Who a v2 request counts against: the token's subject, else (an open API) its address.
    pub fn v2_principal(&self) -> Principal {
        self.subject()
            .or_else(|| self.address.as_deref().and_then(Principal::address))
            .unwrap_or_else(Principal::unknown)
    }
}

/// The Lambda handler. Every answer is a protocol answer: no error escapes as a 500 but
/// `/clear`'s storage failure, which v1 answers with 500 itself.
pub async fn handle<E: Env>(app: &Upload<E>, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    let route = Route::parse(request.method(), request.uri().path());
    let body: &[u8] = request.body().as_ref();
    let caller = Caller::of(&request);
    let response = match route {
        Ok(Route::Process) => {
            let answer = match ProcessRequest::parse(body) {
                Ok(parsed) => app.process(parsed, &caller).await,
                Err(code) => {
                    tracing::info!(code = %code, "process request refused");
                    protocol::ProcessAnswer::Error(code)
                }
            };
            json_response(answer.http_status(), &answer.to_json())
        }
        Ok(Route::Clear) => {
            let (status, answer) = match ClearRequest::parse(body) {
                Ok(parsed) => app.clear(parsed).await,
                Err(refusal) => protocol::clear_refused(refusal),
            };
            json_response(status, &answer)
        }
        Ok(Route::Page) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "no-cache")
            .header("content-security-policy", page_policy(&app.v2.storage_origin))
            .header("x-content-type-options", "nosniff")
            .header("x-frame-options", "DENY")
            .header("referrer-policy", "no-referrer")
            .body(Body::Text(PAGE.to_owned())),
        Ok(Route::CreateTask) => {
            let answer = app.create_task(body, &caller.v2_principal()).await;
            json_response(answer.status(), &answer)
        }
        Ok(route @ (Route::GetTask | Route::DeleteTask)) => {
            let task_id = Route::task_id(request.uri().path());
            let bearer = task_token(&request, &caller);
            let answer = if route == Route::GetTask {
                app.get_task(task_id, bearer).await
            } else {
                app.delete_task(task_id, bearer).await
            };
            json_response(answer.status(), &answer)
        }
        Ok(Route::OpenApi) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::Text(OPENAPI.to_owned())),
        Ok(Route::CheckStatus) => json_response(200, &protocol::server_status()),
        Ok(Route::PublicKey | Route::V2PublicKey) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/x-pem-file")
            .body(Body::Text(app.key.public_key_pem().to_owned())),
        Err(refused) => json_response(refused.status(), &json!({"error": refused.code()})),
    }?;
    metrics::request(Route::label_of(route), response.status().as_u16());
    Ok(response)
}

/// The task token of a v2 read: `X-Task-Token`, or `Authorization: Bearer` when no JWT
/// authorizer took that header for the caller's own token (openapi.json, security).
fn task_token<'r>(request: &'r Request, caller: &Caller) -> Option<&'r str> {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    header(TASK_TOKEN_HEADER).or_else(|| {
        caller
            .subject
            .is_none()
            .then(|| header(http::header::AUTHORIZATION.as_str())?.strip_prefix("Bearer "))
            .flatten()
    })
}

/// Where a task token goes when `Authorization` holds the caller's JWT.
pub const TASK_TOKEN_HEADER: &str = "x-task-token";

/// The page's Content-Security-Policy: its own inline script and style (by hash, so an
/// injected one does not run), requests to its own origin and to the bucket's (the page
/// PUTs pages there with their presigned URLs) only, and no framing.
pub fn page_policy(storage_origin: &str) -> String {
    static HASHES: OnceLock<(String, String)> = OnceLock::new();
    let (scripts, styles) = HASHES.get_or_init(|| {
        let hashes = |open: &str, close: &str| -> String {
            PAGE.split(open)
                .skip(1)
                .filter_map(|rest| rest.split_once(close))
                .map(|(body, _)| format!("'sha256-{}'", sha256_base64(body.as_bytes())))
                .collect::<Vec<_>>()
                .join(" ")
        };
        (hashes("<script>", "</script>"), hashes("<style>", "</style>"))
    });
    format!(
        "default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self' {storage_origin}; img-src 'self' blob: data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

fn json_response(status: u16, body: &impl Serialize) -> Result<Response<Body>, http::Error> {
    // Our answer types serialize without fail (string keys, no non-finite floats).
    let text = serde_json::to_string(body).unwrap_or_else(|_| r#"{"error":"PROCESSING_ERROR"}"#.to_owned());
    Response::builder().status(status).header("content-type", "application/json").body(Body::Text(text))
}
