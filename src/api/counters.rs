//! The counter routes every build has (`docs/API.md` §4, §7): hit, get, stats (of one counter
//! and service-wide), stream, badge and shields; creating and administering counters is in
//! `manage.rs` (§6). Every answer about one counter carries `X-Path: <namespace>/<key>`.

use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;

use super::response::{
    bytes_response, json_response, sse_event, ApiBody, ApiError, ApiResponse, Extra, Field,
};
use super::{Call, Config, Platform};
use crate::core::badge::{Badge, BadgeError, BadgeOptions, SPARKLINE_DAYS};
use crate::core::counter::{self, AbuseLimit, CounterError, HitOutcome, HitRequest, Visitor};
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

pub(super) type Answer<S> = Result<ApiResponse<<S as Store>::Messages>, ApiError>;

/// One counter route, already split into its verb and name segments.
pub async fn route<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    platform: Platform,
    verb: &str,
    names: &[&str],
    call: &Call<'_>,
) -> Answer<S> {
    let now_secs = platform.now_secs();
    let context = request_context(call);
    if verb == "stats" && names.is_empty() {
        allow(call, &[Method::GET])?;
        let stats = counters.global_stats(now_secs).await?;
        return Ok(json_response(StatusCode::OK, &stats));
    }
    let mut names = names.to_vec();
    let extension = match verb {
        "badge" => Some(".svg"),
        "shields" => Some(".json"),
        _ => None,
    };
    if let Some(extension) = extension {
        let last = names
            .last_mut()
            .ok_or_else(|| ApiError::not_found("no such route"))?;
        *last = last.strip_suffix(extension).unwrap_or(last);
    }
    let name = Name::from_segments(&names, &context).map_err(CounterError::from)?;
    let mut response = match verb {
        "hit" => hit(counters, config, now_secs, &name, call).await?,
        "get" => {
            allow(call, &[Method::GET])?;
            let value = counters.get(&name).await?;
            json_response(StatusCode::OK, &Field("value", value))
        }
        "stats" => {
            allow(call, &[Method::GET])?;
            let days = counter::parse_days(call.query("days"))?;
            let stats = counters.stats(&name, days, now_secs).await?;
            json_response(StatusCode::OK, &stats)
        }
        "stream" => stream(counters, &name, call).await?,
        "badge" => badge(counters, config, platform, &name, call).await?,
        "shields" => shields(counters, config, platform, &name, call).await?,
        _ => return Err(ApiError::not_found("no such route")),
    };
    with_path(&mut response, &name);
    Ok(response)
}

/// Where placeholders (`:HOST:`, `:PATH:`) in a name are filled from.
pub(super) fn request_context<'a>(call: &'a Call<'_>) -> RequestContext<'a> {
    RequestContext {
        origin: call.header("origin"),
        referer: call.header("referer"),
        host: call.header("host"),
        page: call.query("page"),
    }
}

/// Every answer about one counter says which: `X-Path: <namespace>/<key>`.
pub(super) fn with_path<M>(response: &mut ApiResponse<M>, name: &Name) {
    if let Ok(path) = HeaderValue::from_str(&name.path()) {
        response.headers_mut().insert(X_PATH, path);
    }
}

pub(super) fn allow(call: &Call<'_>, methods: &[Method]) -> Result<(), ApiError> {
    if methods.contains(call.method) {
        return Ok(());
    }
    Err(ApiError::method_not_allowed(methods))
}

/// Everything a hit needs from the request: whether it counts, its idempotency key, the
/// visitor (for uniques) and the abuse limit.
fn hit_request<'a>(
    config: &'a Config,
    call: &'a Call<'_>,
    ip: &'a str,
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
            }),
        abuse: (config.abuse_limit > 0 && known_ip).then(|| AbuseLimit {
            ip,
            limit: config.abuse_limit,
            window_secs: config.abuse_window.as_secs(),
            secret: config.uniques_secret.as_deref().map(str::as_bytes),
        }),
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
    // The header wins over `rid`, but a malformed `rid` is refused all the same: the whole
    // request is checked before anything is written.
    if let Some(rid) = call.query("rid") {
        counter::validate_idempotency_key(rid)?;
    }
    let ip = call.client.ip.clone().unwrap_or_default();
    let request = hit_request(config, call, &ip, count);
    Ok(counters.hit(name, &request, now).await?)
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

/// `GET /stream/{ns}/{key}`: the current value, then every change, as SSE.
async fn stream<S: Store>(counters: &Counters<S>, name: &Name, call: &Call<'_>) -> Answer<S> {
    allow(call, &[Method::GET])?;
    // Subscribe before reading, so no change between the two is missed.
    let messages = counters.subscribe(name).await?;
    let value = counters.get(name).await?;
    let first = serde_json::to_vec(&Field("value", value)).expect("a number serialises");
    Ok(event_stream(Some(sse_event(&first)), messages))
}

/// An SSE answer: `first` (already an event or a comment), then each message as an event.
pub(super) fn event_stream<M>(first: Option<bytes::Bytes>, messages: M) -> ApiResponse<M> {
    let mut response = http::Response::new(ApiBody::Events { first, messages });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The count a badge shows: with `count=1` a hit (counted as any other), else a read where a
/// missing counter reads 0. `count` is checked with the rest of the request, before this runs.
async fn badge_count<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    now: i64,
    name: &Name,
    call: &Call<'_>,
    count: bool,
) -> Result<i64, ApiError> {
    if count {
        return Ok(do_hit(counters, config, now, name, call, true).await?.value);
    }
    match counters.get(name).await {
        Err(Error::Rule(CounterError::NotFound)) => Ok(0),
        other => Ok(other?),
    }
}

/// `count=1` (also hit) or `count=0`/absent (only read).
fn count_parameter(call: &Call<'_>) -> Result<bool, ApiError> {
    match call.query("count") {
        Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") | None => Ok(false),
        Some(_) => Err(ApiError::bad_request("count must be 0 or 1")),
    }
}

/// `GET /badge/{ns}/{key}.svg?label=&color=&style=&theme=&abbreviate=&graph=30d&count=1`
async fn badge<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    platform: Platform,
    name: &Name,
    call: &Call<'_>,
) -> Answer<S> {
    let now = platform.now_secs();
    allow(call, &[Method::GET, Method::HEAD])?;
    let options = BadgeOptions::parse(
        call.query("color"),
        call.query("style"),
        call.query("theme"),
        call.query("abbreviate"),
        call.query("graph"),
    )?;
    let count = count_parameter(call)?;
    let value = badge_count(counters, config, now, name, call, count).await?;
    let sparkline = if options.graph {
        let days = match counters.stats(name, SPARKLINE_DAYS, now).await {
            Ok(stats) => stats.days.iter().map(|d| d.hits).collect(),
            Err(Error::Rule(CounterError::NotFound)) => vec![0; SPARKLINE_DAYS as usize],
            Err(e) => return Err(e.into()),
        };
        Some(days)
    } else {
        None
    };
    let svg = Badge::counter(call.query("label"), value, &options, sparkline)
        .render_with(platform.uppercase);
    let mut response = bytes_response(StatusCode::OK, "image/svg+xml", svg);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    Ok(response)
}

/// shields.io's endpoint badge: `{"schemaVersion":1,"label","message","color"}`.
#[derive(Serialize)]
struct ShieldsEndpoint<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u8,
    label: &'a str,
    message: String,
    color: &'a str,
}

/// `GET /shields/{ns}/{key}.json?label=&color=&abbreviate=1&count=1`, for
/// `https://img.shields.io/endpoint?url=…`.
async fn shields<S: Store>(
    counters: &Counters<S>,
    config: &Config,
    platform: Platform,
    name: &Name,
    call: &Call<'_>,
) -> Answer<S> {
    let now = platform.now_secs();
    allow(call, &[Method::GET])?;
    let options = BadgeOptions::parse(
        call.query("color"),
        None,
        None,
        call.query("abbreviate"),
        None,
    )?;
    let count = count_parameter(call)?;
    let value = badge_count(counters, config, now, name, call, count).await?;
    let mut response = json_response(
        StatusCode::OK,
        &ShieldsEndpoint {
            schema_version: 1,
            label: call.query("label").unwrap_or("views"),
            message: options.number(value),
            color: options.color.shields(),
        },
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    Ok(response)
}
