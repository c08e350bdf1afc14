//! The `/lease` routes: concurrency limits (at most N holders at once per identity, each lease
//! expiring unless renewed or released), one atomic script step per request.
//!
//! - `POST /lease/{policy}/{id}`: take a lease → 200 `{"lease","expires_ms","limit","holders",
//!   "remaining","reason"}`, 429 problem+json (`Retry-After`: until the soonest lease expires),
//!   403 problem+json on the deny list.
//! - `DELETE /lease/{policy}/{id}/{lease}`: give it back → 200 `{"released":true}`, 404 when not
//!   held (released already, expired, or never this holder's).
//! - `POST /lease/{policy}/{id}/{lease}/renew`: a new expiry → 200 like an acquire, or 404.
//!
//! Every answer that reached Redis carries `RateLimit-Policy`, `RateLimit` and
//! `EdgeCount-Reason`. The whole request (route, method, policy, identity, lease id) is checked
//! before the script runs: a malformed one never reaches Redis.

use http::{HeaderName, HeaderValue, Method, StatusCode};

use super::limits::{decision_response, failed_closed, FAIL_MODE_HEADER};
use super::response::{bytes_response, json_response, ApiError, ApiResponse, Extra, Field};
use super::{Call, Config, Platform};
use crate::core::command::{Reply, ScriptCall};
use crate::core::ratelimit::headers::insert_rate_limit_headers;
use crate::core::ratelimit::lease::{
    self, lease_body, LeaseDecision, LeaseError, LeaseId, LeaseOp, LEASE_ID_BYTES,
};
use crate::core::ratelimit::{FailMode, Mode, Policy, RateLimitError, Reason};
use crate::store::{Store, StoreError};

const FAIL_MODE: HeaderName = HeaderName::from_static(FAIL_MODE_HEADER);

impl From<LeaseError> for ApiError {
    fn from(e: LeaseError) -> Self {
        // Fixed messages: the error's `Display` would cost the worker's wasm more.
        match e {
            LeaseError::Limit(e) => e.into(),
            LeaseError::InvalidLease => ApiError::bad_request(lease::INVALID_LEASE),
            LeaseError::Random => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no randomness for a lease id",
            ),
        }
    }
}

/// `/lease/{rest…}`: `rest` is the path after `lease`.
pub async fn route<S: Store>(
    store: &S,
    config: &Config,
    platform: Platform,
    rest: &[&str],
    call: &Call<'_>,
) -> Result<ApiResponse<S::Messages>, ApiError> {
    // Only the store call is awaited: the checks before and the answer after are plain
    // functions, which keeps this future small.
    let (policy, op, lease, script) = prepare(config, platform, rest, call)?;
    // Through `&S`, as the rate limiter runs its script: one instance of the store's script
    // call in the wasm instead of two (0.2 KB of gzipped wasm).
    let reply = Store::run(&store, &script).await;
    settle(config, platform, policy, op, lease, reply)
}

/// The whole request checked (route, method, policy, lease id, identity) and the script call
/// built, before Redis is asked: a malformed request never reaches it.
fn prepare<'c>(
    config: &'c Config,
    platform: Platform,
    rest: &[&str],
    call: &Call<'_>,
) -> Result<(&'c Policy, LeaseOp, LeaseId, ScriptCall), ApiError> {
    let (op, policy, id, lease) = match *rest {
        [policy, id] => (LeaseOp::Acquire, policy, id, None),
        [policy, id, lease] => (LeaseOp::Release, policy, id, Some(lease)),
        [policy, id, lease, "renew"] => (LeaseOp::Renew, policy, id, Some(lease)),
        _ => return Err(ApiError::not_found("no such route")),
    };
    let method = if op == LeaseOp::Release {
        Method::DELETE
    } else {
        Method::POST
    };
    if *call.method != method {
        return Err(ApiError::method_not_allowed(&[method]));
    }
    let policy = config
        .rate_limits
        .get(policy)
        .ok_or_else(|| RateLimitError::UnknownPolicy(policy.to_owned()))?;
    let lease = match lease {
        Some(text) => LeaseId::parse(text)?,
        // Drawn before Redis is asked: it is also the fail-open answer's lease.
        None => {
            let mut bytes = [0u8; LEASE_ID_BYTES];
            if !(platform.random)(&mut bytes) {
                return Err(LeaseError::Random.into());
            }
            LeaseId::from_random(bytes)
        }
    };
    let script = lease::lease_call(policy, id, op, &lease)?;
    Ok((policy, op, lease, script))
}

/// The answer to the script's reply, or the policy's fail mode when Redis was unreachable.
fn settle<M>(
    config: &Config,
    platform: Platform,
    policy: &Policy,
    op: LeaseOp,
    lease: LeaseId,
    reply: Result<Reply, StoreError>,
) -> Result<ApiResponse<M>, ApiError> {
    let fail_mode = match reply {
        Ok(reply) => return Ok(answer(&lease::parse_lease(policy, op, &lease, &reply)?)),
        Err(e) if e.is_unavailable() => policy.fail_mode().unwrap_or(config.fail_mode),
        Err(e) => return Err(e.into()),
    };
    let mut response = match fail_mode {
        FailMode::Closed => failed_closed(),
        FailMode::Open => answer(&LeaseDecision::fail_open(
            policy,
            op,
            lease,
            (platform.now_ms)(),
        )),
    };
    response
        .headers_mut()
        .insert(FAIL_MODE, HeaderValue::from_static(fail_mode.as_str()));
    Ok(response)
}

/// The HTTP answer of a lease operation, with the rate-limit headers of its decision.
fn answer<M>(lease: &LeaseDecision) -> ApiResponse<M> {
    let mut response = match (lease.op, lease.ok) {
        (LeaseOp::Release, true) => json_response(StatusCode::OK, &Field("released", true)),
        // Fail-open: nothing was released, and nothing needs to be (nobody could ask Redis).
        (LeaseOp::Release, false) if lease.decision.reason == Reason::FailOpen => bytes_response(
            StatusCode::OK,
            "application/json",
            r#"{"released":false,"reason":"fail-open"}"#,
        ),
        (_, true) => bytes_response(StatusCode::OK, "application/json", lease_body(lease)),
        // Refused: 429 at the limit, 403 on the deny list, as `/limit` refuses.
        (LeaseOp::Acquire, false) => decision_response(&lease.decision, Mode::Consume),
        (op, false) => {
            let error = ApiError::not_found(
                "lease not held: released already, expired, or never this holder's",
            );
            let error = if op == LeaseOp::Release {
                error.with("released", Extra::Bool(false))
            } else {
                error
            };
            // Problem details, as every error of the rate-limit routes.
            error.into_problem()
        }
    };
    insert_rate_limit_headers(&lease.decision, response.headers_mut());
    response
}
