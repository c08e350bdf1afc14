//! The edge worker's entry point (wasm only): a thin `fetch` export that adapts the runtime's
//! request to the shared [`Api`] and back. Configuration is read once per isolate from `[vars]`
//! and secrets; the REST store (over `fetch()`) is built once and reused by every request.
//!
//! The request and response are converted here, straight between `web_sys` and `http` (not
//! through the worker crate's `http` feature, whose generic conversions cost ~25 KB of wasm).

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Poll};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use http_body::Body as _;
use js_sys::futures::JsFuture;
use js_sys::Uint8Array;
use serde_json::json;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Headers, RequestInit, ResponseInit, WorkerGlobalScope};
use worker::Env;

use crate::api::{Api, ApiBody, ApiError, ApiResponse, Client, Config, Forward, Handled, Platform};
use crate::store::fetch::{self, js_error_text, FetchRestStore};
use crate::store::Store;

/// Talc instead of std's dlmalloc: the same job in a few KB less wasm (single-threaded wasm, no
/// atomics).
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

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

/// The incoming request as the API takes it, without the body: method, URL and every header.
/// A URL, method or header the `http` crate refuses is an error (500), as it always was.
fn request_head(req: &web_sys::Request) -> Result<http::Request<()>, String> {
    let mut request = http::Request::new(());
    *request.method_mut() =
        Method::from_bytes(req.method().as_bytes()).map_err(|e| e.to_string())?;
    *request.uri_mut() = req.url().parse::<Uri>().map_err(|e| e.to_string())?;
    let headers = request.headers_mut();
    for entry in req.headers().entries() {
        let entry: js_sys::Array = entry.map_err(js)?.unchecked_into();
        let name = entry.get(0).as_string().unwrap_or_default();
        let value = entry.get(1).as_string().unwrap_or_default();
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(&value).map_err(|e| e.to_string())?;
        headers.append(name, value);
    }
    Ok(request)
}

/// The request body, up to [`MAX_BODY`] bytes.
async fn read_body(req: &web_sys::Request) -> Result<Bytes, ApiError> {
    let Some(body) = req.body() else {
        return Ok(Bytes::new());
    };
    let mut chunks = wasm_streams::ReadableStream::from_raw(body).into_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!("reading the body: {}", js_error_text(&e)))
        })?;
        let chunk = Uint8Array::new(&chunk);
        if collected.len() + chunk.length() as usize > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            ));
        }
        let start = collected.len();
        collected.resize(start + chunk.length() as usize, 0);
        chunk.copy_to(&mut collected[start..]);
    }
    Ok(collected.into())
}

/// `headers` as a JavaScript `Headers` object.
fn js_headers(headers: &HeaderMap, skip: Option<&HeaderName>) -> Result<Headers, JsValue> {
    let js = Headers::new()?;
    for (name, value) in headers {
        if Some(name) != skip {
            let value = std::str::from_utf8(value.as_bytes())
                .map_err(|_| JsValue::from_str("a header value is not UTF-8"))?;
            js.append(name.as_str(), value)?;
        }
    }
    Ok(js)
}

fn response_init(status: u16, headers: &Headers) -> ResponseInit {
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(headers);
    init
}

/// Our answer as the runtime's `Response`; an event stream stays a stream.
fn into_js(response: ApiResponse<Messages>) -> Result<web_sys::Response, JsValue> {
    let (parts, body) = response.into_parts();
    let init = response_init(parts.status.as_u16(), &js_headers(&parts.headers, None)?);
    match body {
        ApiBody::Full(None) => web_sys::Response::new_with_opt_js_u8_array_and_init(None, &init),
        ApiBody::Full(Some(bytes)) => web_sys::Response::new_with_opt_js_u8_array_and_init(
            Some(&Uint8Array::from(&bytes[..])),
            &init,
        ),
        mut events => {
            // Data frames as `Uint8Array` chunks (ApiBody sends no other kind of frame).
            let chunks = stream::poll_fn(move |cx| loop {
                return Poll::Ready(match ready!(Pin::new(&mut events).poll_frame(cx)) {
                    None => None,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => Some(Ok(Uint8Array::from(&data[..]).into())),
                        Err(_) => continue,
                    },
                    Some(Err(e)) => Some(Err(JsValue::from_str(&e.to_string()))),
                });
            });
            let stream = wasm_streams::ReadableStream::from_stream(chunks).into_raw();
            web_sys::Response::new_with_opt_readable_stream_and_init(Some(&stream), &init)
        }
    }
}

fn error_response(e: ApiError) -> Result<web_sys::Response, JsValue> {
    into_js(e.into_response())
}

/// Gateway mode: send the request on to the origin (every header but `Host`, with the incoming
/// request's redirect mode and abort signal) and add the rate-limit headers to its answer, whose
/// status, headers and streamed body are passed through.
async fn forward(
    incoming: &web_sys::Request,
    forward: Forward,
) -> Result<web_sys::Response, ApiError> {
    let unreachable = |e: JsValue| {
        worker::console_warn!("origin unreachable: {}", js_error_text(&e));
        ApiError::new(StatusCode::BAD_GATEWAY, "origin unreachable")
    };
    if forward.url.parse::<Uri>().is_err() {
        return Err(ApiError::new(StatusCode::BAD_GATEWAY, "bad origin URL"));
    }
    let (parts, body) = forward.request.into_parts();
    let headers = js_headers(&parts.headers, Some(&header::HOST)).map_err(unreachable)?;
    let init = RequestInit::new();
    init.set_method(parts.method.as_str());
    init.set_headers(&headers);
    init.set_redirect(incoming.redirect());
    init.set_signal(Some(&incoming.signal()));
    if !body.is_empty() {
        init.set_body(&Uint8Array::from(&body[..]));
    }
    let global: WorkerGlobalScope = js_sys::global().unchecked_into();
    let answer: web_sys::Response =
        JsFuture::from(global.fetch_with_str_and_init(&forward.url, &init))
            .await
            .and_then(|r| r.dyn_into())
            .map_err(unreachable)?;
    let headers = Headers::new_with_headers(&answer.headers()).map_err(unreachable)?;
    for name in forward.response_headers.keys() {
        headers.delete(name.as_str()).map_err(unreachable)?;
        for value in forward.response_headers.get_all(name) {
            let value = value.to_str().unwrap_or_default();
            headers.append(name.as_str(), value).map_err(unreachable)?;
        }
    }
    web_sys::Response::new_with_opt_readable_stream_and_init(
        answer.body().as_ref(),
        &response_init(answer.status(), &headers),
    )
    .map_err(unreachable)
}

/// The `fetch` export the worker-build shim calls: what `#[worker::event(fetch)]` generates, without
/// its generic error plumbing (which alone costs a few KB of wasm). A request that cannot be
/// converted, or a response the runtime refuses, is a 500 as it was under the macro.
#[wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen_futures = ::worker::wasm_bindgen_futures)]
pub async fn fetch(req: web_sys::Request, env: Env, _ctx: JsValue) -> Result<JsValue, JsValue> {
    std::panic::AssertUnwindSafe(async move {
        let response = match respond(req, &env).await {
            Ok(response) => response,
            Err(e) => {
                worker::console_error!("{e}");
                let init = ResponseInit::new();
                init.set_status(500);
                let body = Uint8Array::from(&b"INTERNAL SERVER ERROR"[..]);
                web_sys::Response::new_with_opt_js_u8_array_and_init(Some(&body), &init)?
            }
        };
        Ok(response.into())
    })
    .await
}

async fn respond(req: web_sys::Request, env: &Env) -> Result<web_sys::Response, String> {
    let head = request_head(&req).map_err(|e| format!("Error converting request: {e}"))?;
    let api = match api(env) {
        Ok(api) => api,
        Err(e) => {
            worker::console_error!("edgecount is misconfigured: {e}");
            let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "worker misconfigured")
                .with(json!({ "detail": e }));
            return error_response(e).map_err(js);
        }
    };
    // Cloudflare sets CF-Connecting-IP to the real client and does not let clients forge it.
    let client = Client {
        ip: head
            .headers()
            .get("cf-connecting-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|ip| ip.trim().parse().ok()),
    };
    let body = match read_body(&req).await {
        Ok(body) => body,
        Err(e) => return error_response(e).map_err(js),
    };
    let (parts, ()) = head.into_parts();
    let response = match api
        .serve(http::Request::from_parts(parts, body), client)
        .await
    {
        Handled::Respond(response) => into_js(response),
        Handled::Forward(request) => match forward(&req, *request).await {
            Ok(response) => Ok(response),
            Err(e) => error_response(e),
        },
    };
    response.map_err(|e| format!("Error converting response: {}", js_error_text(&e)))
}

fn js(e: JsValue) -> String {
    js_error_text(&e)
}
