//! Administering rate limits (admin token): per-identity overrides
//! (`/limit/{policy}/{id}/override`) and the deny list (`/deny`, `/deny/{target}`).
//!
//! Compiled with the `management` feature, like the counter management routes: the edge
//! worker's main module hands these to its second module (see `manage.rs`). Decisions need
//! nothing from here: they read overrides and deny entries in their own script call.

use http::{Method, StatusCode};
use serde::Serialize;

use super::counters::allow;
use super::limits::require_admin;
use super::response::{json_response, ApiError, ApiResponse, Field};
use super::{Call, Config};
use crate::core::ratelimit::{DenyTarget, Override, Policy, RateLimitError};
use crate::service::deny::DenyEntry;
use crate::service::{DenyList, Error, RateLimiter};
use crate::store::Store;

type Answer<S> = Result<ApiResponse<<S as Store>::Messages>, ApiError>;

impl From<Error<RateLimitError>> for ApiError {
    fn from(e: Error<RateLimitError>) -> Self {
        match e {
            Error::Rule(e) => e.into(),
            Error::Store(e) => e.into(),
        }
    }
}

/// An override as shown: what it sets, and the limit and window it gives the policy.
#[derive(Serialize)]
struct OverrideView<'a> {
    policy: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<&'a str>,
    algorithm: &'static str,
    limit: u64,
    window_ms: u64,
    /// `false` for a stored tier the configuration no longer has: decisions use the policy's
    /// configured limits meanwhile.
    in_effect: bool,
}

fn override_view<'a>(
    policy: &'a Policy,
    config: &'a Config,
    id: &'a str,
    to: &'a Override,
) -> OverrideView<'a> {
    let (tier, effective) = match to {
        Override::Tier(tier) => (Some(tier.as_str()), config.tiers.get(tier, policy.name())),
        Override::Limit { .. } => (None, None),
    };
    let (limit, window_ms) = match (to, effective) {
        (Override::Limit { limit, window_ms }, _) => (*limit, *window_ms),
        (_, Some(p)) => (p.limit(), p.window_ms()),
        (_, None) => (policy.limit(), policy.window_ms()),
    };
    OverrideView {
        policy: policy.name(),
        id,
        tier,
        algorithm: effective.unwrap_or(policy).algorithm().as_str(),
        limit,
        window_ms,
        in_effect: tier.is_none() || effective.is_some(),
    }
}

/// `PUT /limit/{policy}/{id}/override?limit=N&window=60s` (or `?tier=pro`), `GET` (404 without
/// one), `DELETE` (`{"removed":bool}`). Takes effect on the identity's next decision.
pub async fn override_route<S: Store>(
    store: &S,
    config: &Config,
    policy: &str,
    id: &str,
    call: &Call<'_>,
) -> Answer<S> {
    allow(call, &[Method::GET, Method::PUT, Method::DELETE])?;
    require_admin(config, call)?;
    let policy = config
        .rate_limits
        .get(policy)
        .ok_or_else(|| RateLimitError::UnknownPolicy(policy.to_owned()))?;
    crate::core::ratelimit::encode_id(id)?;
    let limiter =
        RateLimiter::with_policies(store, vec![policy.clone()]).with_tiers(config.tiers.clone());
    match *call.method {
        Method::PUT => {
            let to = Override::parse(
                policy,
                &config.tiers,
                call.query("limit"),
                call.query("window"),
                call.query("tier"),
            )?;
            limiter.set_override(id, policy.name(), &to).await?;
            Ok(json_response(
                StatusCode::OK,
                &override_view(policy, config, id, &to),
            ))
        }
        Method::GET => match limiter.override_of(id, policy.name()).await? {
            Some(to) => Ok(json_response(
                StatusCode::OK,
                &override_view(policy, config, id, &to),
            )),
            None => Err(ApiError::not_found(format!(
                "\"{id}\" has no override of policy \"{}\"",
                policy.name()
            ))),
        },
        _ => {
            let removed = limiter.remove_override(id, policy.name()).await?;
            Ok(json_response(StatusCode::OK, &Field("removed", removed)))
        }
    }
}

/// `GET /deny`: every entry. `PUT /deny/{target}[?ttl=1h]`, `GET` (404 when not on the list),
/// `DELETE` (`{"removed":bool}`). The target is an identity, an address or a range; a range's
/// `/` may stay in the path (`/deny/203.0.113.0/24`). `?as=identity` takes address-like text as
/// an identity.
pub async fn deny_route<S: Store>(
    store: &S,
    config: &Config,
    target: &[&str],
    call: &Call<'_>,
) -> Answer<S> {
    let list = DenyList::new(store);
    if target.is_empty() {
        allow(call, &[Method::GET, Method::HEAD])?;
        require_admin(config, call)?;
        return Ok(json_response(StatusCode::OK, &list.list().await?));
    }
    allow(call, &[Method::GET, Method::PUT, Method::DELETE])?;
    require_admin(config, call)?;
    let as_identity = match call.query("as") {
        None => false,
        Some("identity") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "as must be \"identity\", not \"{other}\""
            )))
        }
    };
    let target = DenyTarget::parse(&target.join("/"), as_identity)?;
    match *call.method {
        Method::PUT => {
            let ttl_ms = call
                .query("ttl")
                .map(|ttl| {
                    crate::core::ratelimit::policy::parse_duration_ms(ttl).map_err(|why| {
                        ApiError::bad_request(format!(
                            "ttl {why} (e.g. ttl=90s, 10m, 1h or 7d; none for an entry that \
                             stays)"
                        ))
                    })
                })
                .transpose()?;
            let entry: DenyEntry = list.add(&target, ttl_ms).await?;
            Ok(json_response(StatusCode::OK, &entry))
        }
        Method::GET => match list.get(&target).await? {
            Some(entry) => Ok(json_response(StatusCode::OK, &entry)),
            None => Err(ApiError::not_found(format!(
                "\"{target}\" is not on the deny list"
            ))),
        },
        _ => {
            let removed = list.remove(&target).await?;
            Ok(json_response(StatusCode::OK, &Field("removed", removed)))
        }
    }
}
