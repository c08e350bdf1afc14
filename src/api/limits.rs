//! The `/limit` routes and gateway mode: one atomic decision per request over the named
//! policies, answered with the IETF `RateLimit-Policy` / `RateLimit` headers (and the legacy
//! `X-RateLimit-*`), 429 as `application/problem+json`.

use std::sync::{Mutex, MutexGuard};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::config::{ClientKey, FailMode, BLOCK_CACHE_ENTRIES};
use super::response::{bytes_response, json_response, ApiError, ApiResponse, Extra, Field};
use super::{Call, Config, Platform};
use crate::core::ratelimit::blocks::{self, Blocks};
use crate::core::ratelimit::headers::{
    decision_body, insert_rate_limit_headers, problem_body, EDGECOUNT_REASON, PROBLEM_JSON,
};
use crate::core::ratelimit::{deny, Decision, Mode, Policy, RateLimitError, Reason, Subject};
use crate::service::{Error, RateLimiter};
use crate::store::Store;

/// Says which way a decision went when Redis could not be reached.
pub const FAIL_MODE_HEADER: &str = "edgecount-fail-mode";
const FAIL_MODE: http::HeaderName = http::HeaderName::from_static(FAIL_MODE_HEADER);

/// The refusals this process (this isolate, in the worker) keeps: see
/// [`crate::core::ratelimit::blocks`]. A `Mutex` only for `Sync` (the worker keeps its API in a
/// `static`; wasm has one thread); serve's decisions hold it for a scan, never across I/O.
pub struct Refusals {
    blocks: Mutex<Blocks>,
}

impl Refusals {
    /// As `EDGECOUNT_BLOCK_CACHE` says: [`BLOCK_CACHE_ENTRIES`] refusals, or none.
    pub fn new(config: &Config) -> Self {
        let capacity = if config.block_cache {
            BLOCK_CACHE_ENTRIES
        } else {
            0
        };
        Refusals {
            blocks: Mutex::new(Blocks::new(capacity)),
        }
    }

    fn blocks(&self) -> MutexGuard<'_, Blocks> {
        self.blocks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many refusals are kept now.
    pub fn len(&self) -> usize {
        self.blocks().len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks().is_empty()
    }

    /// Before a request runs (here, or handed to the worker's management module): a change it
    /// makes to what kept refusals rest on drops them — an override, reset or refund of an
    /// identity under some policies, any change of the deny list. Whether or not the request
    /// then succeeds: a refusal dropped for nothing costs one Redis decision.
    pub fn forget_what_changes(&self, method: &Method, path: &str) {
        // Most requests change nothing here (a consume is a POST too): tell them apart without
        // taking the path apart (as the router sees it: empty segments do not count).
        let path = path.trim_matches('/');
        let may_change = path.starts_with("deny")
            || (path.starts_with("limit/")
                && (*method == Method::DELETE
                    || path.ends_with("/refund")
                    || path.ends_with("/override")));
        if !may_change || matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return;
        }
        let segments = super::path_segments(path);
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        match parts.as_slice() {
            ["deny", ..] => self.blocks().clear(),
            ["limit", policies, id] if *method == Method::DELETE => self
                .blocks()
                .forget(id, &policies.split('+').collect::<Vec<_>>()),
            ["limit", policies, id, "refund" | "override"] => self
                .blocks()
                .forget(id, &policies.split('+').collect::<Vec<_>>()),
            _ => {}
        }
    }
}

/// What a decision needs beyond the store: the configuration, the platform (its clock) and the
/// process's kept refusals.
#[derive(Clone, Copy)]
pub struct Limiting<'a> {
    pub config: &'a Config,
    pub platform: Platform,
    pub refusals: &'a Refusals,
}

impl From<RateLimitError> for ApiError {
    fn from(e: RateLimitError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

/// One configured policy, as `GET /limit` lists it.
#[derive(Serialize)]
struct PolicyView<'a> {
    name: &'a str,
    algorithm: &'static str,
    limit: u64,
    window_ms: u64,
}

#[derive(Serialize)]
struct PolicyList<'a> {
    policies: Vec<PolicyView<'a>>,
}

/// `GET /limit`: the configured policies (what `RateLimit-Policy` headers tell anyway), so a
/// client — the dashboard's playground — can offer them.
pub fn policies<M>(config: &Config, call: &Call<'_>) -> Result<ApiResponse<M>, ApiError> {
    if !matches!(call.method, &Method::GET | &Method::HEAD) {
        return Err(ApiError::method_not_allowed(&[Method::GET, Method::HEAD]));
    }
    let policies = config
        .rate_limits
        .iter()
        .map(|p| PolicyView {
            name: p.name(),
            algorithm: p.algorithm().as_str(),
            limit: p.limit(),
            window_ms: p.window_ms(),
        })
        .collect();
    Ok(json_response(StatusCode::OK, &PolicyList { policies }))
}

/// `/limit/{policies}/{id}[/refund]`.
pub async fn route<S: Store>(
    store: &S,
    limiting: Limiting<'_>,
    policies: &str,
    id: &str,
    refund: bool,
    call: &Call<'_>,
) -> Result<ApiResponse<S::Messages>, ApiError> {
    let config = limiting.config;
    let policies = config.rate_limits.select(policies)?;
    let mode = match (call.method, refund) {
        (&Method::POST, false) => Mode::Consume,
        (&Method::GET | &Method::HEAD, false) => Mode::Peek,
        (&Method::POST, true) => Mode::Refund,
        (&Method::DELETE, false) => {
            require_admin(config, call)?;
            Mode::Reset
        }
        _ => {
            let methods: &[Method] = if refund {
                &[Method::POST]
            } else {
                &[Method::GET, Method::HEAD, Method::POST, Method::DELETE]
            };
            return Err(ApiError {
                message:
                    "use POST to consume, GET to peek, POST …/refund to refund, DELETE to reset"
                        .to_owned(),
                ..ApiError::method_not_allowed(methods)
            });
        }
    };
    let cost = match call.query("cost") {
        None => 1,
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("cost must be a whole number ≥ 0"))?,
    };
    // The client's address for the deny list's ranges: `?ip=` (a backend deciding for its own
    // client), else the identity itself when it is an address (`203.0.113.7`, `ip:203.0.113.7`).
    let address = call.query("ip").or_else(|| {
        let bare = id.strip_prefix("ip:").unwrap_or(id);
        deny::address_text_hex(bare).map(|_| bare)
    });
    let subject = Subject::at(id, address);
    let decided = decide(store, limiting, policies, subject, cost, mode).await?;
    let mut response = match (&decided, mode) {
        (Decided::Redis(_), Mode::Reset) => json_response(StatusCode::OK, &Field("reset", true)),
        (Decided::Redis(d), _) => decision_response(d, mode),
        (Decided::FailedOpen(d), _) => decision_response(d, Mode::Peek),
        (Decided::FailedClosed, _) => failed_closed(),
    };
    decided.annotate(response.headers_mut());
    Ok(response)
}

/// A decision, and whether Redis took it or the fail mode did (Redis unreachable).
pub enum Decided {
    Redis(Decision),
    /// `EDGECOUNT_FAIL_MODE=open`: allowed, with the policies' full limits.
    FailedOpen(Decision),
    /// `EDGECOUNT_FAIL_MODE=closed`: refused with 503.
    FailedClosed,
}

impl Decided {
    /// The decision to act on; `None` when failed closed.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Decided::Redis(d) | Decided::FailedOpen(d) => Some(d),
            Decided::FailedClosed => None,
        }
    }

    /// The rate-limit headers, and `EdgeCount-Fail-Mode` when Redis did not decide.
    pub fn annotate(&self, headers: &mut HeaderMap) {
        if let Some(decision) = self.decision() {
            insert_rate_limit_headers(decision, headers);
        }
        let fail_mode = match self {
            Decided::Redis(_) => return,
            Decided::FailedOpen(_) => "open",
            Decided::FailedClosed => "closed",
        };
        headers.insert(FAIL_MODE, HeaderValue::from_static(fail_mode));
    }
}

/// The answer when Redis is unreachable and the fail mode is `closed`.
pub fn failed_closed<M>() -> ApiResponse<M> {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "rate limiter unavailable (fail mode: closed)",
    )
    .with(
        "reason",
        Extra::Text(Reason::FailClosed.as_str().to_owned()),
    )
    .into_problem();
    response.headers_mut().insert(
        EDGECOUNT_REASON,
        HeaderValue::from_static(Reason::FailClosed.as_str()),
    );
    response
}

/// Decide, applying the fail modes when Redis is unreachable: closed if any policy fails
/// closed (its own `fail=` option, else `EDGECOUNT_FAIL_MODE`), open otherwise. A consume that
/// Redis refused earlier, whose refusal still stands, is answered from the kept refusals without
/// asking Redis (see [`crate::core::ratelimit::blocks`]).
pub async fn decide<S: Store>(
    store: &S,
    limiting: Limiting<'_>,
    policies: Vec<Policy>,
    subject: Subject<'_>,
    cost: u64,
    mode: Mode,
) -> Result<Decided, ApiError> {
    let config = limiting.config;
    let clock = limiting.platform.now_ms;
    let keep = mode == Mode::Consume && blocks::cacheable(&policies);
    if keep {
        let kept = limiting
            .refusals
            .blocks()
            .refusal(&policies, subject, cost, clock());
        if let Some(decision) = kept {
            return Ok(Decided::Redis(decision));
        }
    }
    let limiter = RateLimiter::with_policies(store, policies)
        .with_tiers(config.tiers.clone())
        .with_clock(clock);
    let decided_at = clock();
    match limiter.decide(subject, cost, mode).await {
        Ok(decision) => {
            if keep && !decision.allowed {
                limiting.refusals.blocks().remember(
                    limiter.policies(),
                    subject,
                    cost,
                    decided_at,
                    &decision,
                );
            }
            Ok(Decided::Redis(decision))
        }
        Err(Error::Rule(e)) => Err(e.into()),
        Err(Error::Store(e)) if e.is_unavailable() => {
            let closed = limiter
                .policies()
                .iter()
                .any(|p| p.fail_mode().unwrap_or(config.fail_mode) == FailMode::Closed);
            if closed {
                Ok(Decided::FailedClosed)
            } else {
                Ok(Decided::FailedOpen(Decision::fail_open(limiter.policies())))
            }
        }
        Err(Error::Store(e)) => Err(e.into()),
    }
}

/// Problem details for a refused consume (429 over a limit, 403 on the deny list), the
/// decision as JSON otherwise (a peek never refuses).
pub fn decision_response<M>(decision: &Decision, mode: Mode) -> ApiResponse<M> {
    if mode == Mode::Consume && !decision.allowed {
        let problem = problem_body(decision);
        let status =
            StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
        bytes_response(
            status,
            PROBLEM_JSON,
            serde_json::to_vec(&problem).expect("answers always serialise"),
        )
    } else {
        json_response(StatusCode::OK, &decision_body(decision))
    }
}

/// `Authorization: Bearer <EDGECOUNT_ADMIN_TOKEN>`, compared in constant time.
pub(super) fn require_admin(config: &Config, call: &Call<'_>) -> Result<(), ApiError> {
    let Some(expected) = config.admin_token.as_deref() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "administering limits needs EDGECOUNT_ADMIN_TOKEN to be configured",
        ));
    };
    let presented = call
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "admin token required (Authorization: Bearer …)",
        ))
    }
}

/// Gateway mode: one consume for the client under the policies of `path`'s gateway route. `Ok` holds the
/// rate-limit headers to add to the origin's answer; `Err` the answer to give instead (429, or
/// 503 when failing closed).
pub async fn gateway<S: Store>(
    store: &S,
    limiting: Limiting<'_>,
    path: &str,
    call: &Call<'_>,
) -> Result<HeaderMap, ApiResponse<S::Messages>> {
    let config = limiting.config;
    let mut headers = HeaderMap::new();
    let Some(list) = config.gateway_routes.policies_for(path) else {
        return Ok(headers);
    };
    let policies = config
        .rate_limits
        .select(list)
        .map_err(|e| ApiError::from(e).into_problem())?;
    let identity = client_identity(&config.gateway_key, call);
    let address = call
        .client
        .ip
        .as_deref()
        .filter(|ip| deny::address_text_hex(ip).is_some());
    let subject = Subject::at(&identity, address);
    let decided = decide(store, limiting, policies, subject, 1, Mode::Consume)
        .await
        .map_err(ApiError::into_response)?;
    let refusal = match decided.decision() {
        None => Some(failed_closed()),
        Some(decision) if !decision.allowed => Some(decision_response(decision, Mode::Consume)),
        Some(_) => None,
    };
    if let Some(mut refusal) = refusal {
        decided.annotate(refusal.headers_mut());
        return Err(refusal);
    }
    decided.annotate(&mut headers);
    Ok(headers)
}

/// Whom gateway mode limits for this request.
pub fn client_identity(key: &ClientKey, call: &Call<'_>) -> String {
    let ip = || {
        call.client
            .ip
            .as_ref()
            .map(|ip| format!("ip:{ip}"))
            .unwrap_or_else(|| "ip:unknown".to_owned())
    };
    match key {
        ClientKey::Ip => ip(),
        ClientKey::Header(name) => call
            .header(name)
            .filter(|v| !v.is_empty())
            .map(|v| format!("h:{v}"))
            .unwrap_or_else(ip),
        ClientKey::Cookie(name) => call
            .headers
            .cookies(name)
            .find(|v| !v.is_empty())
            .map(|v| format!("c:{v}"))
            .unwrap_or_else(ip),
    }
}
