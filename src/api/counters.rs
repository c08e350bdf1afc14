//! The counter routes of `API.md`: hit, get, create (Abacus and CountAPI forms), set, update,
//! reset, delete, info, stats, stream, badge and batch. Every answer about one counter carries
//! `X-Path: <namespace>/<key>`.

use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::response::{
    bytes_response, json_response, sse_event, ApiBody, ApiError, ApiResponse, Extra, Field,
};
use super::{Call, Config, Platform};
use crate::core::badge::{Badge, BadgeError, BadgeStyle, Color};
use crate::core::counter::{
    self, AbuseLimit, CounterError, CreateSpec, HitOutcome, HitRequest, Visitor, MAX_BATCH_OPS,
};
use crate::core::names::{Name, RequestContext};
use crate::core::visit;
use crate::service::{Counters, Error};
use crate::store::Store;

impl From<CounterError> for ApiError {
    fn from(e: CounterError) -> Self {
        let error = ApiError::new(e.status(), e.to_string());
        match e {
            CounterError::NotFound => error.with("value", Extra::Null),
            _ => error,
        }
    }
}

impl From<Error<CounterError>> for ApiError {
    fn from(e: Error<CounterError>) -> Self {
        match e {
            Error::Rule(e) => e.into(),
            Error::Store(e) => e.into(),
        }
    }
}

impl From<BadgeError> for ApiError {
    fn from(e: BadgeError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

const X_PATH: http::HeaderName = http::HeaderName::from_static("x-path");

type Answer<S> = Result<ApiResponse<<S as Store>::Messages>, ApiError>;

/// One counter route, already split into its verb and name segments.
pub async fn route<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    platform: Platform,
    verb: &str,
    names: &[&str],
    call: &Call<'_>,
) -> Answer<S> {
    let now_secs = (platform.now)();
    let context = RequestContext {
        origin: call.header("origin"),
        referer: call.header("referer"),
        host: call.header("host"),
    };
    if verb == "create" && names.is_empty() {
        return create_countapi(counters, call, &context).await;
    }
    if verb == "stats" && names.is_empty() {
        allow(call, &[Method::GET])?;
        let stats = counters.global_stats(now_secs).await?;
        return Ok(json_response(StatusCode::OK, &stats));
    }
    let mut names = names.to_vec();
    if verb == "badge" {
        let last = names
            .last_mut()
            .ok_or_else(|| ApiError::not_found("no such route"))?;
        *last = last.strip_suffix(".svg").unwrap_or(last);
    }
    let name = Name::from_segments(&names, &context).map_err(CounterError::from)?;
    let mut response = match verb {
        "hit" => hit(counters, config, now_secs, &name, call).await?,
        "get" => {
            allow(call, &[Method::GET])?;
            let value = counters.get(&name).await?;
            json_response(StatusCode::OK, &Field("value", value))
        }
        "create" => {
            allow(call, &[Method::GET, Method::POST])?;
            let spec = CreateSpec::abacus(call.query("initializer"))?;
            let created = counters.create(&name, &spec).await?;
            json_response(StatusCode::CREATED, &created)
        }
        "set" => {
            allow(call, &[Method::GET, Method::POST])?;
            let raw = call
                .query("value")
                .ok_or_else(|| ApiError::bad_request("value is required"))?;
            let value = counter::parse_integer("value", raw)?;
            let set = counters.set(&name, value, bearer(call)).await?;
            json_response(StatusCode::OK, &set)
        }
        "update" => {
            allow(call, &[Method::GET, Method::POST])?;
            let raw = call
                .query("amount")
                .or_else(|| call.query("value"))
                .ok_or_else(|| ApiError::bad_request("amount is required"))?;
            let amount = counter::parse_integer("amount", raw)?;
            let value = counters.update(&name, amount, bearer(call)).await?;
            json_response(StatusCode::OK, &Field("value", value))
        }
        "reset" => {
            allow(call, &[Method::POST])?;
            let value = counters.reset(&name, bearer(call)).await?;
            json_response(StatusCode::OK, &Field("value", value))
        }
        "delete" => {
            allow(call, &[Method::POST, Method::DELETE])?;
            counters.delete(&name, bearer(call)).await?;
            json_response(StatusCode::OK, &Field("deleted", true))
        }
        "info" => {
            allow(call, &[Method::GET])?;
            let info = counters.info(&name).await?;
            json_response(StatusCode::OK, &info)
        }
        "stats" => {
            allow(call, &[Method::GET])?;
            let days = counter::parse_days(call.query("days"))?;
            let stats = counters.stats(&name, days).await?;
            json_response(StatusCode::OK, &stats)
        }
        "stream" => stream(counters, &name, call).await?,
        "badge" => badge(counters, config, platform, &name, call).await?,
        _ => return Err(ApiError::not_found("no such route")),
    };
    if let Ok(path) = HeaderValue::from_str(&name.path()) {
        response.headers_mut().insert(X_PATH, path);
    }
    Ok(response)
}

/// `POST /batch`: `[{"op":"hit","namespace":"blog","key":"home"}, {"op":"update",…}, …]`.
pub async fn batch<S: Store>(counters: &Counters<S>, call: &Call<'_>) -> Answer<S> {
    allow(call, &[Method::POST])?;
    let items: Vec<Value> = serde_json::from_slice(call.body).map_err(|e| {
        ApiError::bad_request(format!("the body must be a JSON array of operations: {e}"))
    })?;
    if items.is_empty() || items.len() > MAX_BATCH_OPS {
        return Err(CounterError::BatchSize { max: MAX_BATCH_OPS }.into());
    }
    let results = counters.batch(&items, bearer(call)).await?;
    let failed: Vec<usize> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.is_err().then_some(i))
        .collect();
    let results: Vec<BatchEntry<_>> = results
        .into_iter()
        .map(|r| match r {
            Ok(outcome) => BatchEntry::Done(outcome),
            Err(e) => BatchEntry::Failed {
                error: e.to_string(),
                status: e.status().as_u16(),
            },
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &BatchAnswer { results, failed },
    ))
}

/// `{"results": [...], "failed": [indexes]}`
#[derive(Serialize)]
struct BatchAnswer<T> {
    results: Vec<BatchEntry<T>>,
    failed: Vec<usize>,
}

/// One operation's result: its outcome, or `{"error", "status"}`.
#[derive(Serialize)]
#[serde(untagged)]
enum BatchEntry<T> {
    Done(T),
    Failed { error: String, status: u16 },
}

fn allow(call: &Call<'_>, methods: &[Method]) -> Result<(), ApiError> {
    if methods.contains(call.method) {
        return Ok(());
    }
    let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("use {}", names.join(" or ")),
    ))
}

fn bearer<'a>(call: &'a Call<'_>) -> Option<&'a str> {
    call.header("authorization").and_then(counter::bearer_token)
}

/// Everything a hit needs from the request: whether it counts, its idempotency key, the
/// visitor (for uniques) and the abuse limit.
fn hit_request<'a>(
    config: &'a Config,
    call: &'a Call<'_>,
    ip: &'a str,
    now: i64,
    count: bool,
) -> HitRequest<'a> {
    let user_agent = call.header("user-agent").unwrap_or_default();
    let known_ip = call.client.ip.is_some();
    HitRequest {
        count: count && visit::counts(call.method, call.headers),
        idempotency_key: call.header("idempotency-key").or_else(|| call.query("rid")),
        visitor: config
            .uniques_secret
            .as_deref()
            .filter(|_| known_ip)
            .map(|secret| Visitor {
                secret: secret.as_bytes(),
                ip,
                user_agent,
                edge_now_secs: now,
            }),
        abuse: (config.abuse_limit > 0 && known_ip).then(|| AbuseLimit {
            ip,
            limit: config.abuse_limit,
            window_secs: config.abuse_window.as_secs(),
            secret: config.uniques_secret.as_deref().map(str::as_bytes),
        }),
        ..Default::default()
    }
}

async fn do_hit<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    now: i64,
    name: &Name,
    call: &Call<'_>,
    count: bool,
) -> Result<HitOutcome, ApiError> {
    let ip = call.client.ip.clone().unwrap_or_default();
    let request = hit_request(config, call, &ip, now, count);
    Ok(counters.hit(name, &request, Some(now)).await?)
}

async fn hit<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    now: i64,
    name: &Name,
    call: &Call<'_>,
) -> Answer<S> {
    allow(call, &[Method::GET, Method::POST, Method::HEAD])?;
    let outcome = do_hit(counters, config, now, name, call, true).await?;
    if outcome.limited {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many hits from this client on this counter",
        )
        .with("value", Extra::Int(outcome.value))
        .with("counted", Extra::Bool(false))
        .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(config.abuse_window.as_secs()),
        );
        return Ok(response);
    }
    Ok(json_response(StatusCode::OK, &outcome))
}

/// `GET /create?namespace=&key=&value=&enable_reset=&update_lowerbound=&update_upperbound=`
async fn create_countapi<S: Store>(
    counters: &Counters<S>,
    call: &Call<'_>,
    context: &RequestContext<'_>,
) -> Answer<S> {
    allow(call, &[Method::GET, Method::POST])?;
    let name = counter::countapi_create_name(call.query("namespace"), call.query("key"), context)?;
    let spec = CreateSpec::countapi(
        call.query("value"),
        call.query("enable_reset"),
        call.query("update_lowerbound"),
        call.query("update_upperbound"),
    )?;
    let created = counters.create(&name, &spec).await?;
    let mut response = json_response(StatusCode::OK, &created);
    if let Ok(path) = HeaderValue::from_str(&name.path()) {
        response.headers_mut().insert(X_PATH, path);
    }
    Ok(response)
}

/// `GET /stream/{ns}/{key}`: the current value, then every change, as SSE.
async fn stream<S: Store>(counters: &Counters<S>, name: &Name, call: &Call<'_>) -> Answer<S> {
    allow(call, &[Method::GET])?;
    // Subscribe before reading, so no change between the two is missed.
    let messages = counters.subscribe(name).await?;
    let value = counters.get(name).await?;
    let first = serde_json::to_vec(&Field("value", value)).expect("a number serialises");
    let first = sse_event(&first);
    let mut response = http::Response::new(ApiBody::Events {
        first: Some(first),
        messages,
    });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `GET /badge/{ns}/{key}.svg?label=&color=&style=&count=1`
async fn badge<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    platform: Platform,
    name: &Name,
    call: &Call<'_>,
) -> Answer<S> {
    let now = (platform.now)();
    allow(call, &[Method::GET, Method::HEAD])?;
    let color = Color::parse(call.query("color").unwrap_or("blue"))?;
    let style = BadgeStyle::parse(call.query("style").unwrap_or("flat"))?;
    let value = match call.query("count") {
        Some("1") | Some("true") => do_hit(counters, config, now, name, call, true).await?.value,
        Some("0") | Some("false") | None => match counters.get(name).await {
            Err(Error::Rule(CounterError::NotFound)) => 0,
            other => other?,
        },
        Some(_) => return Err(ApiError::bad_request("count must be 0 or 1")),
    };
    let svg =
        Badge::counter(call.query("label"), value, color, style).render_with(platform.uppercase);
    let mut response = bytes_response(StatusCode::OK, "image/svg+xml", svg);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    Ok(response)
}
