//! The upload function: DocuSnap's v1 HTTP API.
//!
//! `POST /process`, `POST /clear`, `GET /check_status` and `GET /public_key`, both at the
//! root and under `/api/v1`, and the web page at `GET /`. [`handle`] is the whole Lambda handler, callable from tests;
//! the protocol's rules live in [`Upload`].

use docusnap_core::clock::Clock;
use docusnap_core::config::Limits;
use docusnap_core::crypto::ServerKey;
use docusnap_core::protocol::{self, ClearRequest, ProcessRequest};
use docusnap_core::store::{BlobStore, TaskStore};
use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

mod clear;
mod process;
mod startup;

pub use startup::{from_env, AwsUpload, StartupError};

/// The web page at `GET /`: pick images, process them as a document or a form, see the
/// result, and fill the last form from results kept in the browser. The v1 crypto runs in
/// the page (WebCrypto), so the page is a v1 client like the apps.
const PAGE: &str = include_str!("page.html");

/// Deployed behind API Gateway the routes carry this prefix; run locally, they do not.
pub const API_PREFIX: &str = "/api/v1";

/// The upload function's state, built once per process and shared by every invocation.
pub struct Upload<T, B, C> {
    pub tasks: T,
    pub blobs: B,
    pub clock: C,
    pub key: ServerKey,
    pub limits: Limits,
}

/// The Lambda handler. Every answer is a protocol answer: no error escapes as a 500 but
/// `/clear`'s storage failure, which v1 answers with 500 itself.
pub async fn handle<T, B, C>(app: &Upload<T, B, C>, request: Request) -> Result<Response<Body>, lambda_http::Error>
where
    T: TaskStore,
    B: BlobStore,
    C: Clock,
{
    let path = request.uri().path();
    let route = path.strip_prefix(API_PREFIX).filter(|rest| rest.starts_with('/')).unwrap_or(path);
    let route = route.trim_end_matches('/');
    let body: &[u8] = request.body().as_ref();
    let response = match (request.method().clone(), route) {
        (Method::POST, "/process") => {
            let answer = match ProcessRequest::parse(body) {
                Ok(parsed) => app.process(parsed).await,
                Err(code) => {
                    tracing::info!(code = %code, "process request refused");
                    protocol::ProcessAnswer::Error(code)
                }
            };
            json_response(answer.http_status(), &answer.to_json())
        }
        (Method::POST, "/clear") => {
            let (status, answer) = match ClearRequest::parse(body) {
                Ok(parsed) => app.clear(parsed).await,
                Err(refusal) => protocol::clear_refused(refusal),
            };
            json_response(status, &answer)
        }
        (Method::GET, "" | "/index.html") => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "no-cache")
            .body(Body::Text(PAGE.to_owned())),
        (Method::GET, "/check_status") => json_response(200, &protocol::server_status()),
        (Method::GET, "/public_key") => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/x-pem-file")
            .body(Body::Text(app.key.public_key_pem().to_owned())),
        (_, "/process" | "/clear" | "/check_status" | "/public_key") => {
            json_response(405, &json!({"error": "METHOD_NOT_ALLOWED"}))
        }
        _ => json_response(404, &json!({"error": "NOT_FOUND"})),
    }?;
    let known = ["/process", "/clear", "/check_status", "/public_key", "", "/index.html"];
    let route = if known.contains(&route) { route.trim_start_matches('/') } else { "other" };
    let route = if route.is_empty() { "page" } else { route };
    docusnap_core::metrics::count("Requests", &[("Route", route), ("Status", response.status().as_str())]);
    Ok(response)
}

fn json_response(status: u16, body: &Value) -> Result<Response<Body>, http::Error> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
}
