//! The counter and rate-limit HTTP API, free of any HTTP framework: an [`ApiRequest`] in, an
//! `http::Response` out, given a [`Store`]. The worker (`driver.rs`) and `edgecount serve`
//! (`serve/`) only adapt their runtime's types to these.

pub mod assets;
pub mod config;
pub mod counters;
pub mod leases;
#[cfg(feature = "management")]
pub mod limit_admin;
pub mod limits;
#[cfg(feature = "management")]
pub mod manage;
pub mod response;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

pub use crate::core::headers::RequestHeaders;
use crate::service::Counters;
use crate::store::Store;
pub use assets::Asset;
use config::AllowedOrigins;
pub use config::{Config, FailMode};
pub use response::{ApiBody, ApiError, ApiResponse, Extra, Field};

/// Largest request body the API reads. Imports are the big ones (an export is a namespace's
/// counters with their history); a batch is bounded by its operation count anyway.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// What the API needs from the platform it runs on; each adapter supplies its own, so no
/// target-specific code lives here.
#[derive(Clone, Copy)]
pub struct Platform {
    /// Unix time in milliseconds (the worker has no `SystemTime`): the process's one clock. It
    /// names every counter's day and hour buckets (so the scripts declare every key they touch),
    /// stamps `created`, times the read caches and names the windows of `upstash-*` limits; the
    /// native rate-limit algorithms decide on Redis `TIME`, one clock for every edge.
    pub now_ms: fn() -> u64,
    /// Unicode upper-casing (`for-the-badge` badges). The worker uses the JavaScript engine's
    /// `toUpperCase`: Rust's case tables would add ~16 KB to the wasm.
    pub uppercase: fn(&str) -> String,
    /// Fills the buffer with cryptographically secure random bytes (lease ids); false when the
    /// platform has none. The worker calls the runtime's `crypto.getRandomValues` itself:
    /// `getrandom`'s JavaScript backend would add ~1.7 KB to the gzipped wasm.
    pub random: fn(&mut [u8]) -> bool,
}

impl Platform {
    /// The standard library's clock and case mapping (native adapters).
    pub fn std() -> Self {
        Platform {
            now_ms: crate::service::system_clock_ms,
            uppercase: str::to_uppercase,
            random: |buffer| getrandom::getrandom(buffer).is_ok(),
        }
    }

    /// [`Platform::now_ms`] in whole unix seconds (what counters name their buckets by).
    pub fn now_secs(&self) -> i64 {
        ((self.now_ms)() / 1000) as i64
    }
}

/// The API over one store and one configuration; build once, share across requests.
pub struct Api<S> {
    counters: Counters<S>,
    config: Config,
    platform: Platform,
    /// Consumes Redis refused, answered from memory while they stand.
    refusals: limits::Refusals,
}

/// What the adapter knows about the caller beyond the request itself.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// The caller's IP as the platform reports it, in its canonical text form (`CF-Connecting-IP`
    /// in the worker, the socket peer natively). Used for uniques (hashed), the abuse limit and
    /// gateway keys; never stored. Text rather than `IpAddr`: the worker gets it as text from
    /// Cloudflare already, and parsing and printing addresses costs ~4 KB of wasm.
    pub ip: Option<String>,
}

impl Client {
    /// A client at `ip`.
    pub fn at(ip: std::net::IpAddr) -> Self {
        Client {
            ip: Some(ip.to_string()),
        }
    }
}

/// One request as the API reads it: what every runtime can hand over as it is.
#[derive(Clone, Debug)]
pub struct ApiRequest {
    pub method: Method,
    /// The path and query as received (`/hit/docs/home?callback=cb`), still percent-encoded.
    pub target: String,
    pub headers: RequestHeaders,
    pub body: Bytes,
}

impl ApiRequest {
    fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(&self.target, |(path, _)| path)
    }

    fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, query)| query)
    }
}

/// The parts of a request every route reads.
pub struct Call<'a> {
    pub method: &'a Method,
    pub headers: &'a RequestHeaders,
    pub query: Vec<(String, String)>,
    pub body: &'a Bytes,
    pub client: Client,
}

impl Call<'_> {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

type Response<S> = ApiResponse<<S as Store>::Messages>;

impl<S: Store> Api<S> {
    pub fn new(store: S, config: Config, platform: Platform) -> Self {
        Api {
            counters: Counters::new(store).with_admin_token(config.admin_token.clone()),
            refusals: limits::Refusals::new(&config),
            config,
            platform,
        }
    }

    pub fn store(&self) -> &S {
        self.counters.store()
    }

    /// The same API over `wrap(store)`: a native adapter putting a layer around its store
    /// (serve's read cache and shared subscriptions).
    pub fn map_store<T: Store>(self, wrap: impl FnOnce(S) -> T) -> Api<T> {
        Api::new(wrap(self.counters.into_store()), self.config, self.platform)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The consumes Redis refused that this API answers from memory while they stand.
    pub fn refusals(&self) -> &limits::Refusals {
        &self.refusals
    }

    fn limiting(&self) -> limits::Limiting<'_> {
        limits::Limiting {
            config: &self.config,
            platform: self.platform,
            refusals: &self.refusals,
        }
    }

    /// Answer one request. Never fails: every error becomes a JSON answer.
    pub async fn handle(&self, request: ApiRequest, client: Client) -> Response<S> {
        let origin = request.headers.get("origin").map(str::to_owned);
        let mut response = if request.method == Method::OPTIONS {
            preflight()
        } else {
            let call = Call {
                method: &request.method,
                headers: &request.headers,
                query: parse_query(request.query()),
                body: &request.body,
                client,
            };
            let segments = path_segments(request.path());
            // The rate-limit routes answer errors as RFC 9457 problem details.
            let problem = matches!(
                segments.first().map(String::as_str),
                Some("limit" | "lease" | "deny")
            );
            let refuse = |e: ApiError| {
                if problem {
                    e.into_problem()
                } else {
                    e.into_response()
                }
            };
            // The callback is part of the request: checked before the route runs, so a refused
            // request has changed nothing.
            let allowed = &self.config.allowed_origins;
            match unique_parameters(&call.query).and_then(|()| jsonp_callback(&call, allowed)) {
                Err(e) => refuse(e),
                Ok(callback) => {
                    let routed = if Asset::at(request.path()).is_some() {
                        // A static file's path with another method than GET or HEAD.
                        Err(ApiError::method_not_allowed(&[Method::GET, Method::HEAD]))
                    } else {
                        self.route(&segments, &call).await
                    };
                    let response = routed.unwrap_or_else(refuse);
                    match callback {
                        Some(callback) => response::into_jsonp(response, callback),
                        None => response,
                    }
                }
            }
        };
        let headers = response.headers_mut();
        if let Some(allow) = self.config.allowed_origins.allow(origin.as_deref()) {
            if let Ok(value) = HeaderValue::from_str(&allow) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
        // With an allow-list the answer depends on Origin whether or not this one was allowed:
        // a shared cache must not hand an answer without the CORS headers (or with another
        // origin's) to an allowed origin.
        if matches!(self.config.allowed_origins, AllowedOrigins::List(_)) {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        response
    }

    async fn route(&self, segments: &[String], call: &Call<'_>) -> Result<Response<S>, ApiError> {
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        let store = self.store();
        match parts.as_slice() {
            ["healthz"] if matches!(*call.method, Method::GET | Method::HEAD) => {
                Ok(self.healthz().await)
            }
            ["healthz"] => Err(ApiError::method_not_allowed(&[Method::GET, Method::HEAD])),
            ["limit"] => limits::policies(&self.config, call),
            ["limit", policies, id] => {
                limits::route(store, self.limiting(), policies, id, false, call).await
            }
            ["limit", policies, id, "refund"] => {
                limits::route(store, self.limiting(), policies, id, true, call).await
            }
            #[cfg(feature = "management")]
            ["limit", policy, id, "override"] => {
                limit_admin::override_route(store, &self.config, policy, id, call).await
            }
            #[cfg(feature = "management")]
            ["deny", target @ ..] => {
                limit_admin::deny_route(store, &self.config, target, call).await
            }
            ["lease", rest @ ..] => {
                leases::route(store, &self.config, self.platform, rest, call).await
            }
            #[cfg(feature = "management")]
            [first, ..] if MANAGEMENT_ROUTES.contains(first) => {
                manage::route(&self.counters, self.platform, &parts, call).await
            }
            [verb, names @ ..] if COUNTER_ROUTES.contains(verb) && names.len() <= 2 => {
                counters::route(
                    &self.counters,
                    &self.config,
                    self.platform,
                    verb,
                    names,
                    call,
                )
                .await
            }
            _ => Err(ApiError::not_found("no such route")),
        }
    }

    /// Answer one request, or — in gateway mode (`EDGECOUNT_ORIGIN`), for paths that are not
    /// API routes — decide the client's limit and tell the adapter to forward it to the origin.
    pub async fn serve(&self, request: ApiRequest, client: Client) -> Handled<S::Messages> {
        // Before the request runs anywhere (a management route runs in another wasm module in
        // the worker, with its own memory): what it changes must not be answered from memory.
        self.refusals
            .forget_what_changes(&request.method, request.path());
        let first = request
            .path()
            .split('/')
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        if !cfg!(feature = "management")
            && request.method != Method::OPTIONS
            && is_management_path(request.path())
        {
            return Handled::Delegate;
        }
        let Some(origin) = &self.config.origin else {
            if matches!(request.method, Method::GET | Method::HEAD) {
                if let Some(asset) = Asset::at(request.path()) {
                    return Handled::Asset(asset);
                }
            }
            return Handled::Respond(self.handle(request, client).await);
        };
        if is_api_route(first) {
            return Handled::Respond(self.handle(request, client).await);
        }
        let call = Call {
            method: &request.method,
            headers: &request.headers,
            query: Vec::new(),
            body: &request.body,
            client,
        };
        let response_headers =
            match limits::gateway(self.store(), self.limiting(), request.path(), &call).await {
                Ok(headers) => headers,
                Err(answer) => return Handled::Respond(answer),
            };
        let target = if request.target.starts_with('/') {
            request.target.as_str()
        } else {
            "/"
        };
        Handled::Forward(Box::new(Forward {
            url: format!("{origin}{target}"),
            response_headers,
        }))
    }

    async fn healthz(&self) -> Response<S> {
        match self.counters.ping().await {
            Ok(_) => response::json_response(StatusCode::OK, &Field("ok", true)),
            Err(e) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..ApiError::from(e)
            }
            .with("ok", Extra::Bool(false))
            .into_response(),
        }
    }
}

/// Routes about one counter (`/{verb}/{ns}/{key}` or `/{verb}/{key}`) that every build has.
const COUNTER_ROUTES: &[&str] = &["hit", "get", "stats", "stream", "badge", "shields"];

/// First path segments of the management routes (`manage.rs`, `limit_admin.rs`): creating and
/// administering counters and namespaces, and the deny list. A build without the `management`
/// feature hands them on ([`Handled::Delegate`]), and `/limit/{policy}/{id}/override` too.
pub const MANAGEMENT_ROUTES: &[&str] = &[
    "create", "set", "update", "reset", "delete", "info", "ns", "export", "import", "deny", "batch",
];

/// Whether `path` is a management route (see [`MANAGEMENT_ROUTES`]).
pub fn is_management_path(path: &str) -> bool {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let first = segments.next().unwrap_or_default();
    if first == "limit" {
        let rest: Vec<&str> = segments.collect();
        return rest.len() == 3 && rest[2] == "override";
    }
    MANAGEMENT_ROUTES.contains(&first)
}

/// First path segments of the other API routes.
const SERVICE_ROUTES: &[&str] = &["healthz", "limit", "lease"];

/// Every first path segment the API answers (static files aside): gateway mode forwards every
/// other path to the origin, and the OpenAPI document must describe each.
pub fn route_prefixes() -> impl Iterator<Item = &'static str> {
    COUNTER_ROUTES
        .iter()
        .chain(MANAGEMENT_ROUTES)
        .chain(SERVICE_ROUTES)
        .copied()
}

/// First path segments that belong to the API; gateway mode forwards everything else.
fn is_api_route(first: &str) -> bool {
    route_prefixes().any(|prefix| prefix == first)
}

/// What to do with a request: answer it, serve a static file (the adapter has its bytes), or
/// forward it to the origin (gateway mode, where every path that is not an API route belongs to
/// the origin, static-file paths included).
pub enum Handled<M> {
    Respond(ApiResponse<M>),
    Asset(&'static Asset),
    Forward(Box<Forward>),
    /// A management route in a build without them: run the request again in one with them
    /// (the edge worker's second wasm module, see `manage.rs`).
    Delegate,
}

/// Forward the request (as the adapter received it) to `url` with the adapter's own HTTP client,
/// adding `response_headers` (the rate-limit headers) to the origin's answer.
pub struct Forward {
    pub url: String,
    pub response_headers: HeaderMap,
}

/// A query parameter given twice is ambiguous (which `value`?): refused rather than guessed.
fn unique_parameters(query: &[(String, String)]) -> Result<(), ApiError> {
    for (i, (name, _)) in query.iter().enumerate() {
        if query[..i].iter().any(|(seen, _)| seen == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name} is given more than once"
            )));
        }
    }
    Ok(())
}

/// `?callback=` of a `GET` (JSONP), validated; other methods answer plain JSON.
/// With an allow-list, a JSONP answer (which a `<script>` of any site can load: CORS does not
/// apply to it) goes only to the sites the list names, known by `Origin` or else by `Referer`; a
/// request that says neither is refused too (`Referrer-Policy: no-referrer` sites can use `fetch`
/// with CORS instead).
fn jsonp_callback<'a>(
    call: &'a Call<'_>,
    allowed: &AllowedOrigins,
) -> Result<Option<&'a str>, ApiError> {
    match call.query("callback") {
        Some(callback) if call.method == Method::GET => {
            if !response::valid_callback(callback) {
                return Err(ApiError::bad_request(
                    "callback must be a JavaScript identifier",
                ));
            }
            if let AllowedOrigins::List(_) = allowed {
                let site = call
                    .header("origin")
                    .or_else(|| call.header("referer").and_then(referer_origin));
                if allowed.allow(site).is_none() {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "JSONP is answered only for the sites EDGECOUNT_ALLOWED_ORIGINS lists \
                         (by Origin or Referer)",
                    ));
                }
            }
            Ok(Some(callback))
        }
        _ => Ok(None),
    }
}

/// `https://site.example:8443/page?x` → `https://site.example:8443`.
fn referer_origin(referer: &str) -> Option<&str> {
    let authority = referer.find("://")? + 3;
    let end = referer[authority..]
        .find(['/', '?', '#'])
        .map_or(referer.len(), |i| authority + i);
    Some(&referer[..end])
}

/// Headers a browser script may read from our answers.
const EXPOSED_HEADERS: &str = "X-Path, RateLimit, RateLimit-Policy, Retry-After, \
X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, EdgeCount-Fail-Mode, EdgeCount-Reason";

fn preflight<M>() -> ApiResponse<M> {
    let mut response = http::Response::new(ApiBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, Idempotency-Key"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// Percent-decoded, non-empty path segments.
pub fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referer_gives_its_origin() {
        assert_eq!(
            referer_origin("https://my.site/blog/post?x=1"),
            Some("https://my.site")
        );
        assert_eq!(
            referer_origin("http://my.site:8443?x"),
            Some("http://my.site:8443")
        );
        assert_eq!(referer_origin("https://my.site"), Some("https://my.site"));
        assert_eq!(referer_origin("my.site/page"), None);
    }
}
