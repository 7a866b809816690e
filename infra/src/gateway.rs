//! The local HTTP API: what API Gateway's HTTP API does for the upload function, on
//! loopback. Each request becomes a payload 2.0 event for the function's execution
//! environments ([`crate::runtime`]), and the function's answer becomes the response, so
//! the function runs as a process or from its image exactly as the queue-fed ones do.
//!
//! Paths may carry `cargo lambda watch`'s prefix, `/lambda-url/<function>`, which the
//! clients and the README use locally; it is removed, as API Gateway would never see it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tracing::warn;

use crate::jwt::JwtAuthorizer;
use crate::runtime::{Environments, InvokeError};

/// API Gateway's HTTP API refuses larger request bodies (10 MB); this also bounds what one
/// request may hold in memory here.
pub const MAX_REQUEST_BODY: usize = 10 * 1024 * 1024;

/// Serves `function` on `listener` until the task is dropped; with an `authorizer`, the
/// routes it guards need its token, as API Gateway's JWT authorizer does (`crate::jwt`).
pub async fn serve(listener: TcpListener, function: Arc<Environments>, authorizer: Option<Arc<JwtAuthorizer>>) {
    let requests = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let (function, requests, authorizer) = (function.clone(), requests.clone(), authorizer.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let n = requests.fetch_add(1, Ordering::Relaxed);
                handle(function.clone(), authorizer.clone(), request, peer.ip().to_string(), n)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// API Gateway's own answers, in its words.
fn gateway_answer(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(json!({ "message": message }).to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

async fn handle(
    function: Arc<Environments>, authorizer: Option<Arc<JwtAuthorizer>>, request: Request<hyper::body::Incoming>,
    source_ip: String, n: u64,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(gateway_answer(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")),
    };
    let mut event = event(&parts, &body, &source_ip, &format!("local-{}-{n}", std::process::id()));
    if let Some(authorizer) = authorizer {
        let path = event["rawPath"].as_str().unwrap_or("/").to_owned();
        if authorizer.guards(parts.method.as_str(), &path) {
            let header = parts.headers.get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            match authorizer.check(header).await {
                Ok(claims) => with_claims(&mut event, claims),
                Err(why) => {
                    tracing::info!(%why, %path, "token refused");
                    let mut answer = gateway_answer(StatusCode::UNAUTHORIZED, "Unauthorized");
                    answer
                        .headers_mut()
                        .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
                    return Ok(answer);
                }
            }
        }
    }
    let answer = match function.invoke(Bytes::from(event.to_string())).await {
        Ok(answer) => answer,
        Err(InvokeError::TimedOut(_)) => {
            return Ok(gateway_answer(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"))
        }
        Err(e) => {
            warn!(error = %e, "the HTTP API's function failed");
            return Ok(gateway_answer(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"));
        }
    };
    Ok(response(&answer).unwrap_or_else(|why| {
        warn!(%why, "the function's answer is not an HTTP API response");
        gateway_answer(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }))
}

/// What API Gateway adds to the event once its JWT authorizer verified a token: the
/// token's claims, each a string (`crate::jwt`), in the request context.
pub fn with_claims(event: &mut Value, claims: Map<String, Value>) {
    event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
}

/// Bodies API Gateway passes as text; any other is base64-encoded (`isBase64Encoded`).
fn is_text(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || ["application/json", "application/x-www-form-urlencoded", "application/xml", "application/javascript"]
            .contains(&essence.as_str())
        || essence.ends_with("+json")
}

/// The payload 2.0 event of one request: header names lower-cased, repeated headers and
/// query parameters joined with commas, cookies in `cookies`.
pub fn event(parts: &http::request::Parts, body: &[u8], source_ip: &str, request_id: &str) -> Value {
    let path = parts.uri.path();
    let path = match path.strip_prefix("/lambda-url/") {
        Some(rest) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => path,
    };
    let query = parts.uri.query().unwrap_or("");
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == hyper::header::COOKIE {
            cookies.extend(value.split(';').map(|c| Value::from(c.trim())));
            continue;
        }
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => *existing = format!("{existing},{value}"),
            _ => {
                headers.insert(name.as_str().to_owned(), Value::from(value));
            }
        }
    }
    let mut parameters = Map::new();
    for (key, value) in form_urlencoded(query) {
        match parameters.get_mut(&key) {
            Some(Value::String(existing)) => *existing = format!("{existing},{value}"),
            _ => {
                parameters.insert(key, Value::from(value));
            }
        }
    }
    let content_type = parts.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let text = is_text(content_type).then(|| std::str::from_utf8(body).ok()).flatten();
    let (body, encoded) = match text {
        Some(text) => (Value::from(text), false),
        None => (Value::from(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let host = parts.headers.get(hyper::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let user_agent = parts.headers.get(hyper::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(host),
            "http": {
                "method": parts.method.as_str(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "",
            "timeEpoch": now,
        },
        "isBase64Encoded": encoded,
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::from(cookies);
    }
    if !parameters.is_empty() {
        event["queryStringParameters"] = Value::Object(parameters);
    }
    if !body.as_str().is_some_and(str::is_empty) {
        event["body"] = body;
    }
    event
}

fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// The HTTP response of a function's payload 2.0 answer: `statusCode`, `headers`,
/// `multiValueHeaders`, `cookies` and `body` (base64 when `isBase64Encoded`).
pub fn response(answer: &[u8]) -> Result<Response<Full<Bytes>>, String> {
    let answer: Value = serde_json::from_slice(answer).map_err(|e| format!("not JSON: {e}"))?;
    let status = answer.get("statusCode").and_then(Value::as_u64).ok_or("no statusCode")?;
    let status =
        u16::try_from(status).ok().and_then(|s| StatusCode::from_u16(s).ok()).ok_or("a statusCode out of range")?;
    let body = match answer.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("a body that is not base64: {e}"))?
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut add = |name: &str, value: &str| -> Result<(), String> {
        let name = hyper::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))?;
        let value = hyper::header::HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        headers.append(name, value);
        Ok(())
    };
    for (name, value) in answer.get("headers").and_then(Value::as_object).into_iter().flatten() {
        add(name, value.as_str().unwrap_or_default())?;
    }
    for (name, values) in answer.get("multiValueHeaders").and_then(Value::as_object).into_iter().flatten() {
        let single = answer.get("headers").and_then(|h| h.get(name)).is_some();
        for value in values.as_array().into_iter().flatten().filter(|_| !single) {
            add(name, value.as_str().unwrap_or_default())?;
        }
    }
    for cookie in answer.get("cookies").and_then(Value::as_array).into_iter().flatten() {
        add("set-cookie", cookie.as_str().unwrap_or_default())?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    #[test]
    fn a_request_becomes_a_payload_2_event_without_the_local_prefix() {
        let request = Request::post("/lambda-url/upload/api/v2/tasks?a=1&a=2&b=x+y")
            .header("Content-Type", "application/json")
            .header("X-Thing", "one")
            .header("x-thing", "two")
            .header("cookie", "s=1; t=2")
            .body(())
            .unwrap();
        let event = event(&parts(request), br#"{"k":1}"#, "127.0.0.1", "r1");
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/api/v2/tasks");
        assert_eq!(event["requestContext"]["http"]["path"], "/api/v2/tasks");
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["rawQueryString"], "a=1&a=2&b=x+y");
        assert_eq!(event["queryStringParameters"], json!({"a": "1,2", "b": "x y"}));
        assert_eq!(event["headers"]["x-thing"], "one,two");
        assert_eq!(event["headers"]["content-type"], "application/json");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(event["body"], r#"{"k":1}"#);
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn a_binary_body_travels_base64_and_the_root_path_stays() {
        let request = Request::put("/").header("content-type", "application/octet-stream").body(()).unwrap();
        let event = event(&parts(request), &[0, 159, 146, 150], "127.0.0.1", "r2");
        assert_eq!(event["rawPath"], "/");
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AJ+Slg==");
        let bare = Request::get("/lambda-url/upload").body(()).unwrap();
        assert_eq!(super::event(&parts(bare), b"", "127.0.0.1", "r3")["rawPath"], "/");
    }

    #[test]
    fn an_answer_becomes_the_response_with_its_headers_cookies_and_body() {
        let answer = json!({
            "statusCode": 202,
            "headers": {"content-type": "application/json"},
            "multiValueHeaders": {"content-type": ["application/json"], "x-many": ["a", "b"]},
            "cookies": ["c=1"],
            "body": "eyJvayI6dHJ1ZX0=",
            "isBase64Encoded": true,
        });
        let response = response(answer.to_string().as_bytes()).unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers().get_all("content-type").iter().count(), 1);
        assert_eq!(response.headers().get_all("x-many").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(response.headers()["set-cookie"], "c=1");
        let body = futures_body(response);
        assert_eq!(body, br#"{"ok":true}"#);
        assert!(super::response(b"{\"body\": \"x\"}").is_err(), "no statusCode is no response");
        assert!(super::response(b"not json").is_err());
    }

    fn futures_body(response: Response<Full<Bytes>>) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(response.into_body().collect()).unwrap().to_bytes().to_vec()
    }
}
