//! The edge worker's entry point (wasm only): a thin `#[event(fetch)]` that adapts the runtime's
//! request to the shared [`Api`] and back. Configuration is read once per isolate from `[vars]`
//! and secrets; the REST store (over `worker::Fetch`) is built once and reused by every request.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{header, Response, StatusCode};
use http_body::Frame;
use serde_json::json;
use worker::{event, Context, Env, Fetch};

use crate::api::{Api, ApiBody, ApiError, Client, Config, Forward, Handled, Platform};
use crate::store::fetch::{self, FetchRestStore};
use crate::store::{Store, StoreError};

/// Largest request body the API reads (batch requests are the big ones).
const MAX_BODY: usize = 256 * 1024;

type Messages = <FetchRestStore as Store>::Messages;

/// The API, or why it could not be configured; decided on the first request of the isolate.
static API: OnceLock<Result<Api<FetchRestStore>, String>> = OnceLock::new();

fn api(env: &Env) -> &'static Result<Api<FetchRestStore>, String> {
    API.get_or_init(|| {
        // Plain `[vars]` and secrets are both strings on `env`.
        let lookup = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let url = lookup("UPSTASH_REDIS_REST_URL").ok_or("UPSTASH_REDIS_REST_URL is not set")?;
        let token =
            lookup("UPSTASH_REDIS_REST_TOKEN").ok_or("UPSTASH_REDIS_REST_TOKEN is not set")?;
        let store = fetch::connect(&url, &token).map_err(|e| e.to_string())?;
        let config = Config::from_lookup(lookup).map_err(|e| e.to_string())?;
        Ok(Api::new(store, config, PLATFORM))
    })
}

/// The JavaScript runtime's clock and case mapping (Rust's `SystemTime` panics in wasm, and its
/// case tables would add ~16 KB).
const PLATFORM: Platform = Platform {
    now: || (js_sys::Date::now() / 1000.0) as i64,
    uppercase: |text| js_sys::JsString::from(text).to_upper_case().into(),
};

/// Our answers and the origin's (gateway mode) as one body type.
enum WorkerBody {
    Api(ApiBody<Messages>),
    Origin(worker::Body),
}

impl http_body::Body for WorkerBody {
    type Data = Bytes;
    type Error = StoreError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        match self.get_mut() {
            WorkerBody::Api(body) => Pin::new(body).poll_frame(cx),
            WorkerBody::Origin(body) => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| StoreError::Unavailable(format!("origin body: {e}"))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            WorkerBody::Api(body) => body.is_end_stream(),
            WorkerBody::Origin(body) => body.is_end_stream(),
        }
    }
}

fn error_response(e: ApiError) -> Response<WorkerBody> {
    e.into_response::<Messages>().map(WorkerBody::Api)
}

async fn read_body(body: worker::Body) -> Result<Bytes, ApiError> {
    let mut chunks = body;
    let mut collected = BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if collected.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            ));
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// Gateway mode: send the request on to the origin and add the rate-limit headers.
async fn forward(forward: Forward) -> Result<Response<WorkerBody>, ApiError> {
    let unreachable = |e: worker::Error| {
        worker::console_warn!("origin unreachable: {e}");
        ApiError::new(StatusCode::BAD_GATEWAY, "origin unreachable")
    };
    let (mut parts, body) = forward.request.into_parts();
    parts.uri = forward
        .url
        .parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_GATEWAY, "bad origin URL"))?;
    parts.headers.remove(header::HOST);
    let request = http::Request::from_parts(parts, ApiBody::<Messages>::full(body));
    let request = worker::Request::try_from(request).map_err(unreachable)?;
    let answer = Fetch::Request(request).send().await.map_err(unreachable)?;
    let answer: http::Response<worker::Body> = answer.try_into().map_err(unreachable)?;
    let mut response = answer.map(WorkerBody::Origin);
    response.headers_mut().extend(forward.response_headers);
    Ok(response)
}

#[event(fetch)]
async fn fetch(
    req: http::Request<worker::Body>,
    env: Env,
    _ctx: Context,
) -> worker::Result<Response<WorkerBody>> {
    let api = match api(&env) {
        Ok(api) => api,
        Err(e) => {
            worker::console_error!("edgecount is misconfigured: {e}");
            let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "worker misconfigured")
                .with(json!({ "detail": e }));
            return Ok(error_response(e));
        }
    };
    let (parts, body) = req.into_parts();
    // Cloudflare sets CF-Connecting-IP to the real client and does not let clients forge it.
    let client = Client {
        ip: parts
            .headers
            .get("cf-connecting-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|ip| ip.trim().parse().ok()),
    };
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(e) => return Ok(error_response(e)),
    };
    let request = http::Request::from_parts(parts, body);
    Ok(match api.serve(request, client).await {
        Handled::Respond(response) => response.map(WorkerBody::Api),
        Handled::Forward(request) => forward(*request).await.unwrap_or_else(error_response),
    })
}
