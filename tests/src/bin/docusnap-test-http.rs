//! An HTTP function on `lambda_http`, as the upload function is, for testing the local HTTP
//! API (infra/src/gateway.rs): it answers what it was asked, as `lambda_http` parsed the
//! event, and a response with cookies and a binary body when the path says `/binary`.

use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|request: Request| async move {
        if request.uri().path() == "/binary" {
            return Ok::<_, Error>(
                Response::builder()
                    .status(201)
                    .header("content-type", "application/octet-stream")
                    .header("set-cookie", "a=1")
                    .header("set-cookie", "b=2")
                    .body(Body::Binary(vec![0, 159, 146, 150]))?,
            );
        }
        let body: &[u8] = request.body().as_ref();
        let answer = json!({
            "method": request.method().as_str(),
            "path": request.uri().path(),
            "query": request.query_string_parameters().all("a"),
            "thing": request.headers().get_all("x-thing").iter().map(|v| v.to_str().unwrap_or("")).collect::<Vec<_>>(),
            "cookie": request.headers().get("cookie").and_then(|v| v.to_str().ok()),
            "body": body,
            // The subject of the token the local JWT authorizer verified, if any.
            "sub": match request.request_context_ref() {
                Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => context
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.jwt.as_ref())
                    .and_then(|jwt| jwt.claims.get("sub").cloned()),
                _ => None,
            },
        });
        Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::Text(answer.to_string()))?)
    }))
    .await
}
