//! The edge worker's entry point (wasm only): `#[event(fetch)]` with the worker crate's `http`
//! feature, so requests and responses are plain `http` types.
//!
//! For now this is a thin adapter: `GET /healthz` pings Redis through the REST store, anything
//! else is a JSON 404. The store is built once per isolate from the environment
//! (`UPSTASH_REDIS_REST_URL`, `UPSTASH_REDIS_REST_TOKEN`) and reused by every request.

use std::sync::OnceLock;

use http::{header, Method, Response, StatusCode};
use serde_json::json;
use worker::{event, Context, Env};

use crate::core::command::Command;
use crate::store::fetch::{self, FetchRestStore};
use crate::store::Store;

/// The store, or why it could not be configured; decided on the first request.
static STORE: OnceLock<Result<FetchRestStore, String>> = OnceLock::new();

fn env_value(env: &Env, name: &str) -> Option<String> {
    // Plain `[vars]` and secrets are both strings on `env`.
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

fn store(env: &Env) -> &'static Result<FetchRestStore, String> {
    STORE.get_or_init(|| {
        let url =
            env_value(env, "UPSTASH_REDIS_REST_URL").ok_or("UPSTASH_REDIS_REST_URL is not set")?;
        let token = env_value(env, "UPSTASH_REDIS_REST_TOKEN")
            .ok_or("UPSTASH_REDIS_REST_TOKEN is not set")?;
        fetch::connect(&url, &token).map_err(|e| e.to_string())
    })
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<String> {
    let mut response = Response::new(value.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn healthz(env: &Env) -> Response<String> {
    let outcome = match store(env) {
        Ok(store) => store
            .command(&Command::new("PING"))
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    match outcome {
        Ok(_) => json_response(StatusCode::OK, &json!({"ok": true})),
        Err(error) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ok": false, "error": error}),
        ),
    }
}

#[event(fetch)]
async fn fetch(
    req: http::Request<worker::Body>,
    env: Env,
    _ctx: Context,
) -> worker::Result<Response<String>> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => healthz(&env).await,
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "no such route"})),
    })
}
