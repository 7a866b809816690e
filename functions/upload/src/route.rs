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
}

impl ApiVersion {
    pub const ALL: [ApiVersion; 1] = [ApiVersion::V1];

    pub fn prefix(self) -> &'static str {
        match self {
            ApiVersion::V1 => "/api/v1",
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
    pub const ALL: [Route; 5] = [Route::Process, Route::Clear, Route::CheckStatus, Route::PublicKey, Route::Page];

    /// The route's method and its paths (after the version prefix, trailing `/` removed).
    fn spec(self) -> (Method, &'static [&'static str]) {
        match self {
            Route::Process => (Method::POST, &["/process"]),
            Route::Clear => (Method::POST, &["/clear"]),
            Route::CheckStatus => (Method::GET, &["/check_status"]),
            Route::PublicKey => (Method::GET, &["/public_key"]),
            Route::Page => (Method::GET, &["", "/index.html"]),
        }
    }

    /// The route `method` and `path` name.
    pub fn parse(method: &Method, path: &str) -> Result<Route, RouteError> {
        let rest = ApiVersion::ALL
            .iter()
            .find_map(|v| path.strip_prefix(v.prefix()).filter(|rest| rest.is_empty() || rest.starts_with('/')))
            .unwrap_or(path);
        let rest = rest.trim_end_matches('/');
        let mut refused = RouteError::NotFound;
        for route in Route::ALL {
            let (route_method, paths) = route.spec();
            if paths.contains(&rest) {
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
            assert_eq!(Route::parse(&Method::GET, &format!("{prefix}/process")), Err(RouteError::MethodNotAllowed(Route::Process)));
            assert_eq!(Route::parse(&Method::GET, &format!("{prefix}/nope")), Err(RouteError::NotFound));
        }
        assert_eq!(Route::parse(&Method::GET, "/api/v1x/process"), Err(RouteError::NotFound));
        assert_eq!(Route::parse(&Method::POST, "/index.html"), Err(RouteError::NotFound));
        assert_eq!(Route::parse(&Method::POST, "/"), Err(RouteError::NotFound));
    }
}
