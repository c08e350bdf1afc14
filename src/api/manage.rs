//! The management routes: creating and administering counters (`create`, `set`, `update`,
//! `reset`, `delete`, `info`), whole namespaces (`/ns`, `/export`, `/import`), and `/batch`
//! (many hits and updates in one request: a bulk route, not a page's hit).
//!
//! Compiled with the `management` feature (on by default). The edge worker is built twice: its
//! main wasm module, which every request starts in, leaves these routes out and hands them to a
//! second module with them (`Handled::Delegate`), instantiated on the first management request of
//! an isolate. The hot path — hits, reads, badges, streams, limits — stays small (the main module
//! is held under 125 KiB gzipped), and these rarer routes cost nothing until they are used.

use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::counters::{allow, event_stream, request_context, with_path, Answer};
use super::response::{bytes_response, json_response, ApiError, Extra, Field};
use super::{Call, Platform};
use crate::core::counter::{self, namespace, CounterError, CreateSpec, MAX_BATCH_OPS};
use crate::core::names::{Name, Namespace};
use crate::service::{Counters, Error};
use crate::store::Store;

/// The `Authorization: Bearer` token of the request, if any.
fn bearer<'a>(call: &'a Call<'_>) -> Option<&'a str> {
    call.header("authorization").and_then(counter::bearer_token)
}

/// One management route, by its path segments (`super::MANAGEMENT_ROUTES` holds the first).
pub async fn route<S: Store>(
    counters: &Counters<S>,
    platform: Platform,
    parts: &[&str],
    call: &Call<'_>,
) -> Answer<S> {
    let now = platform.now_secs();
    match parts {
        ["create"] => create_countapi(counters, now, call).await,
        ["ns", ns, rest @ ..] if rest.len() <= 1 => {
            namespace(counters, ns, rest.first().copied(), now, call).await
        }
        ["export", ns] => export(counters, ns, now, call).await,
        ["import"] => import(counters, now, call).await,
        ["batch"] => batch(counters, now, call).await,
        [verb, names @ ..] if !names.is_empty() && names.len() <= 2 => {
            counter_route(counters, verb, names, now, call).await
        }
        _ => Err(ApiError::not_found("no such route")),
    }
}

/// `create`, `set`, `update`, `reset`, `delete`, `info` of one counter; `now` is the platform's
/// clock (unix seconds).
async fn counter_route<S: Store>(
    counters: &Counters<S>,
    verb: &str,
    names: &[&str],
    now: i64,
    call: &Call<'_>,
) -> Answer<S> {
    let name = Name::from_segments(names, &request_context(call)).map_err(CounterError::from)?;
    let mut response = match verb {
        "create" => {
            allow(call, &[Method::GET, Method::POST])?;
            // Abacus names the start value `initializer`; CountAPI's options apply here too.
            let spec = create_spec(call, call.query("initializer").or(call.query("value")))?;
            let created = counters.create(&name, &spec, now).await?;
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
            counters.delete(&name, bearer(call), now).await?;
            json_response(StatusCode::OK, &Field("deleted", true))
        }
        "info" => {
            allow(call, &[Method::GET])?;
            let info = counters.info(&name).await?;
            json_response(StatusCode::OK, &info)
        }
        _ => return Err(ApiError::not_found("no such route")),
    };
    with_path(&mut response, &name);
    Ok(response)
}

/// A new counter's settings from the query (both create forms take the same options).
fn create_spec(call: &Call<'_>, value: Option<&str>) -> Result<CreateSpec, CounterError> {
    CreateSpec::parse(
        value,
        call.query("enable_reset"),
        call.query("update_lowerbound"),
        call.query("update_upperbound"),
    )
}

/// `GET /create?namespace=&key=&value=&enable_reset=&update_lowerbound=&update_upperbound=`
async fn create_countapi<S: Store>(counters: &Counters<S>, now: i64, call: &Call<'_>) -> Answer<S> {
    allow(call, &[Method::GET, Method::POST])?;
    let name = counter::countapi_create_name(
        call.query("namespace"),
        call.query("key"),
        &request_context(call),
    )?;
    let spec = create_spec(call, call.query("value"))?;
    let created = counters.create(&name, &spec, now).await?;
    let mut response = json_response(StatusCode::OK, &created);
    with_path(&mut response, &name);
    Ok(response)
}

/// `/ns/{ns}` (GET: the listing), `/ns/{ns}/stream` (GET: every change, as SSE) and
/// `/ns/{ns}/token` (POST, admin: a new namespace token).
async fn namespace<S: Store>(
    counters: &Counters<S>,
    ns: &str,
    action: Option<&str>,
    now: i64,
    call: &Call<'_>,
) -> Answer<S> {
    let ns = Namespace::parse(ns).map_err(CounterError::from)?;
    match action {
        None => {
            allow(call, &[Method::GET])?;
            let limit = namespace::parse_listing_limit(call.query("limit"))?;
            let listing = counters.namespace(&ns, bearer(call), limit, now).await?;
            Ok(json_response(StatusCode::OK, &listing))
        }
        Some("stream") => {
            allow(call, &[Method::GET])?;
            let messages = counters.subscribe_namespace(&ns, bearer(call)).await?;
            // A comment first, so a reader knows it is live before the first change.
            Ok(event_stream(
                Some(bytes::Bytes::from_static(b": live\n\n")),
                messages,
            ))
        }
        Some("token") => {
            allow(call, &[Method::POST])?;
            let minted = counters.mint_namespace_token(&ns, bearer(call)).await?;
            Ok(json_response(StatusCode::OK, &minted))
        }
        Some(_) => Err(ApiError::not_found("no such route")),
    }
}

/// `GET /export/{ns}`: the namespace as NDJSON, one counter a line.
async fn export<S: Store>(
    counters: &Counters<S>,
    ns: &str,
    now: i64,
    call: &Call<'_>,
) -> Answer<S> {
    allow(call, &[Method::GET])?;
    let ns = Namespace::parse(ns).map_err(CounterError::from)?;
    let exported = counters.export(&ns, bearer(call), now).await?;
    let mut body = Vec::with_capacity(exported.len() * 256);
    for counter in &exported {
        serde_json::to_writer(&mut body, counter).expect("an export serialises");
        body.push(b'\n');
    }
    let mut response = bytes_response(StatusCode::OK, "application/x-ndjson", body);
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"edgecount-{ns}.ndjson\""))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// `POST /import` (admin): an export's NDJSON; `{"imported":N,"skipped":M}`.
async fn import<S: Store>(counters: &Counters<S>, now: i64, call: &Call<'_>) -> Answer<S> {
    allow(call, &[Method::POST])?;
    let summary = counters
        .import(call.body, bearer(call), now)
        .await
        .map_err(|e| match e {
            Error::Rule(CounterError::Import(e)) => {
                ApiError::bad_request(e.to_string()).with("line", Extra::Int(e.line as i64))
            }
            other => other.into(),
        })?;
    Ok(json_response(StatusCode::OK, &summary))
}

/// `POST /batch`: `[{"op":"hit","namespace":"blog","key":"home"}, {"op":"update",…}, …]`; `now`
/// (unix seconds) names the hits' buckets.
pub async fn batch<S: Store>(counters: &Counters<S>, now: i64, call: &Call<'_>) -> Answer<S> {
    allow(call, &[Method::POST])?;
    let items: Vec<Value> = serde_json::from_slice(call.body).map_err(|e| {
        ApiError::bad_request(format!("the body must be a JSON array of operations: {e}"))
    })?;
    if items.is_empty() || items.len() > MAX_BATCH_OPS {
        return Err(CounterError::BatchSize { max: MAX_BATCH_OPS }.into());
    }
    let results = counters.batch(&items, bearer(call), now).await?;
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
