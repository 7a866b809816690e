//! The upload function's routes, parsed once from (method, path): the handler matches on
//! a [`Route`], the 404 and 405 answers come from [`RouteError`], and the metric label
//! from either. An API version is a path prefix: a new version adds its prefix to
//! [`ApiVersion`] and its routes to [`Route`].

use http::Method;

/// The API versions the function serves, by path prefix. Locally (`cargo lambda watch`)
/// v1's routes also answer at the root, as the original service's did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V2,
}

impl ApiVersion {
    pub const ALL: [ApiVersion; 2] = [ApiVersion::V1, ApiVersion::V2];

    pub fn prefix(self) -> &'static str {
        match self {
            ApiVersion::V1 => "/api/v1",
            ApiVersion::V2 => "/api/v2",
        }
    }
}

/// Every route the function serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /process`.
    Process,
    /// `POST /clear`.
    Clear,
    /// `GET /check_status`.
    CheckStatus,
    /// `GET /public_key`.
    PublicKey,
    /// `GET /` (or `/index.html`): the web page.
    Page,
    /// v2 `POST /tasks`: a task and its pages' upload URLs.
    CreateTask,
    /// v2 `GET /tasks/{task_id}`.
    GetTask,
    /// v2 `DELETE /tasks/{task_id}`.
    DeleteTask,
    /// v2 `GET /public_key`.
    V2PublicKey,
    /// v2 `GET /openapi.json`: the contract, `functions/upload/openapi.json`.
    OpenApi,
}

/// Why a request names no route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    /// The path is this route's, the method is not its method.
    MethodNotAllowed(Route),
}

impl RouteError {
    pub fn status(self) -> u16 {
        match self {
            RouteError::NotFound => 404,
            RouteError::MethodNotAllowed(_) => 405,
        }
    }

    /// The answer's `error` string.
    pub fn code(self) -> &'static str {
        match self {
            RouteError::NotFound => "NOT_FOUND",
            RouteError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
        }
    }
}

impl Route {
    pub const ALL: [Route; 10] = [
        Route::Process,
        Route::Clear,
        Route::CheckStatus,
        Route::PublicKey,
        Route::Page,
        Route::CreateTask,
        Route::GetTask,
        Route::DeleteTask,
        Route::V2PublicKey,
        Route::OpenApi,
    ];

    /// The route's version, method and paths (after the version prefix, trailing `/`
    /// removed; `{task_id}` matches one segment).
    pub fn spec(self) -> (ApiVersion, Method, &'static [&'static str]) {
        use ApiVersion::{V1, V2};
        match self {
            Route::Process => (V1, Method::POST, &["/process"]),
            Route::Clear => (V1, Method::POST, &["/clear"]),
            Route::CheckStatus => (V1, Method::GET, &["/check_status"]),
            Route::PublicKey => (V1, Method::GET, &["/public_key"]),
            Route::Page => (V1, Method::GET, &["", "/index.html"]),
            Route::CreateTask => (V2, Method::POST, &["/tasks"]),
            Route::GetTask => (V2, Method::GET, &["/tasks/{task_id}"]),
            Route::DeleteTask => (V2, Method::DELETE, &["/tasks/{task_id}"]),
            Route::V2PublicKey => (V2, Method::GET, &["/public_key"]),
            Route::OpenApi => (V2, Method::GET, &["/openapi.json"]),
        }
    }

    /// The `{task_id}` segment of a path this route matched.
    pub fn task_id(path: &str) -> Option<&str> {
        path.trim_end_matches('/')
            .strip_prefix(ApiVersion::V2.prefix())?
            .strip_prefix("/tasks/")
            .filter(|id| !id.contains('/'))
    }

    /// The route `method` and `path` name. v2's routes answer under `/api/v2` only; v1's
    /// under `/api/v1` and at the root.
    pub fn parse(method: &Method, path: &str) -> Result<Route, RouteError> {
        let (version, rest) = ApiVersion::ALL
            .iter()
            .find_map(|v| {
                path.strip_prefix(v.prefix())
                    .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                    .map(|rest| (*v, rest))
            })
            .unwrap_or((ApiVersion::V1, path));
        let rest = rest.trim_end_matches('/');
        let matches = |pattern: &str| match pattern.strip_suffix("{task_id}") {
            Some(head) => rest.strip_prefix(head).is_some_and(|id| !id.is_empty() && !id.contains('/')),
            None => pattern == rest,
        };
        let mut refused = RouteError::NotFound;
        for route in Route::ALL {
            let (route_version, route_method, paths) = route.spec();
            if route_version == version && paths.iter().any(|p| matches(p)) {
                if *method == route_method {
                    return Ok(route);
                }
                // v1 answered a wrong method with 405 on its API routes only; the page
                // is not one of them.
                if route != Route::Page {
                    refused = RouteError::MethodNotAllowed(route);
                }
            }
        }
        Err(refused)
    }

    /// The `Route` dimension of the Requests metric: a refused method still names its route.
    pub fn label_of(parsed: Result<Route, RouteError>) -> &'static str {
        match parsed {
            Ok(route) | Err(RouteError::MethodNotAllowed(route)) => route.label(),
            Err(RouteError::NotFound) => "other",
        }
    }

    /// The `Route` dimension of the Requests metric.
    pub fn label(self) -> &'static str {
        match self {
            Route::Process => "process",
            Route::Clear => "clear",
            Route::CheckStatus => "check_status",
            Route::PublicKey => "public_key",
            Route::Page => "page",
            Route::CreateTask => "v2_create_task",
            Route::GetTask => "v2_get_task",
            Route::DeleteTask => "v2_delete_task",
            Route::V2PublicKey => "v2_public_key",
            Route::OpenApi => "v2_openapi",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_answer_at_the_root_and_under_their_version() {
        for prefix in ["", "/api/v1"] {
            assert_eq!(Route::parse(&Method::POST, &format!("{prefix}/process")), Ok(Route::Process));
            assert_eq!(Route::parse(&Method::POST, &format!("{prefix}/clear/")), Ok(Route::Clear));
            assert_eq!(Route::parse(&Method::GET, &format!("{prefix}/check_status")), Ok(Route::CheckStatus));
            assert_eq!(Route::parse(&Method::GET, &format!("{prefix}/public_key")), Ok(Route::PublicKey));
            assert_eq!(Route::parse(&Method::GET, &format!("{prefix}/")), Ok(Route::Page));
            assert_eq!(
                Route::parse(&Method::GET, &format!("{prefix}/process")),
                Err(RouteError::MethodNotAllowed(Route::Process))
            );
            assert_eq!(Route::parse(&Method::GET, &format!("{prefix}/nope")), Err(RouteError::NotFound));
        }
        assert_eq!(Route::parse(&Method::GET, "/api/v1x/process"), Err(RouteError::NotFound));
        assert_eq!(Route::parse(&Method::POST, "/index.html"), Err(RouteError::NotFound));
        assert_eq!(Route::parse(&Method::POST, "/"), Err(RouteError::NotFound));
    }

    #[test]
    fn v2_routes_answer_under_their_prefix_only() {
        let task = "/api/v2/tasks/doc_00112233445566778899aabbccddeeff";
        assert_eq!(Route::parse(&Method::POST, "/api/v2/tasks"), Ok(Route::CreateTask));
        assert_eq!(Route::parse(&Method::GET, task), Ok(Route::GetTask));
        assert_eq!(Route::parse(&Method::DELETE, &format!("{task}/")), Ok(Route::DeleteTask));
        assert_eq!(Route::parse(&Method::PUT, task), Err(RouteError::MethodNotAllowed(Route::DeleteTask)));
        assert_eq!(Route::task_id(task), Some("doc_00112233445566778899aabbccddeeff"));
        assert_eq!(Route::parse(&Method::GET, "/api/v2/public_key"), Ok(Route::V2PublicKey));
        assert_eq!(Route::parse(&Method::GET, "/api/v2/openapi.json"), Ok(Route::OpenApi));
        assert_eq!(Route::parse(&Method::GET, "/api/v2/tasks/a/b"), Err(RouteError::NotFound));
        assert_eq!(Route::parse(&Method::GET, "/api/v2/tasks/"), Err(RouteError::MethodNotAllowed(Route::CreateTask)));
        assert_eq!(Route::parse(&Method::POST, "/tasks"), Err(RouteError::NotFound));
        assert_eq!(Route::parse(&Method::POST, "/api/v2/process"), Err(RouteError::NotFound));
    }
}

/// The path `functions/upload/openapi.json` documents a route at: v1's API under its
/// prefix (it answers at the root too), the page at the root.
pub fn documented_path(route: Route) -> String {
    let (version, _, paths) = route.spec();
    if route == Route::Page {
        return "/".to_owned();
    }
    format!("{}{}", version.prefix(), paths[0])
}

#[cfg(test)]
mod contract {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_route_served_is_in_the_openapi_document_and_every_documented_route_is_served() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "parameters")
                    .map(move |(method, _)| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> =
            Route::ALL.iter().map(|r| (r.spec().1.to_string(), documented_path(*r))).collect();
        assert_eq!(documented, served);
        // And each documented path, with a concrete id, reaches its own route.
        for (method, path) in &documented {
            let concrete = path.replace("{task_id}", "doc_00112233445566778899aabbccddeeff");
            let route =
                Route::parse(&method.parse().unwrap(), &concrete).unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
            assert_eq!(&documented_path(route), path);
        }
    }

    #[test]
    fn the_documented_error_codes_are_the_service_codes() {
        let doc: serde_json::Value = serde_json::from_str(crate::OPENAPI).unwrap();
        let codes = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"].as_array().unwrap();
        for code in codes {
            assert!(docusnap_core::ErrorCode::parse(code.as_str().unwrap()).is_some(), "{code}");
        }
        for v2_only in
            ["UNAUTHORIZED", "UPLOAD_EXPIRED", "PAGE_MISMATCH", "PAGE_AUTHENTICATION_FAILED", "CALLBACK_URL_REFUSED"]
        {
            assert!(codes.iter().any(|c| c == v2_only), "{v2_only} is documented");
        }
    }
}
