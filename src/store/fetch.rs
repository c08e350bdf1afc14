//! The wasm REST transport: the runtime's `fetch()` through `web_sys` (no `worker::Request`
//! wrappers: they serialise `cf` properties and copy bodies, which costs wasm size for nothing
//! here). The runtime pools and reuses connections to the REST endpoint on its own, so there is
//! nothing to keep alive here.

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::stream::{self, LocalBoxStream, StreamExt};
use js_sys::futures::JsFuture;
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortController, Headers, RequestInit, Response, WorkerGlobalScope};

use super::rest::{RestConfig, RestRequest, RestResponse, RestStore, Transport};
use super::StoreError;

/// How long one REST round trip may take before the store reports Redis unavailable. The
/// subscription stream (`open_stream`) is only bounded until its headers arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `fetch()` from inside the worker. Stateless: the runtime owns the connection pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchTransport;

/// A JavaScript exception as text (`TypeError: …` for errors, the value itself for strings).
pub(crate) fn js_error_text(e: &JsValue) -> String {
    if let Some(text) = e.as_string() {
        return text;
    }
    match e.dyn_ref::<js_sys::Object>() {
        Some(object) => object.to_string().into(),
        None => format!("{e:?}"),
    }
}

fn unavailable(e: JsValue) -> StoreError {
    StoreError::Unavailable(js_error_text(&e))
}

/// Header name/value pairs as [`RestRequest`] carries them.
type HeaderPairs = Vec<(&'static str, String)>;

thread_local! {
    /// The headers every request of one kind sends (all but the sync token, which changes with
    /// every write), as a JS `Headers` built once per isolate: a request copies them with one
    /// call instead of setting each header across the wasm boundary. At most two kinds (JSON
    /// calls and subscriptions), so a short list.
    static BASE_HEADERS: RefCell<Vec<(HeaderPairs, Headers)>> = const { RefCell::new(Vec::new()) };
}

const SYNC_TOKEN: &str = "upstash-sync-token";

/// `headers` as a fresh JS `Headers` (the caller may add to it).
fn js_headers(mut headers: HeaderPairs) -> Result<Headers, JsValue> {
    let token = headers
        .iter()
        .position(|(name, _)| *name == SYNC_TOKEN)
        .map(|i| headers.remove(i).1);
    let js = BASE_HEADERS.with_borrow_mut(|cache| {
        let base = match cache.iter().find(|(key, _)| *key == headers) {
            Some((_, base)) => base,
            None => {
                let base = Headers::new()?;
                for (name, value) in &headers {
                    base.set(name, value)?;
                }
                cache.push((headers, base));
                &cache.last().expect("just pushed").1
            }
        };
        Headers::new_with_headers(base)
    })?;
    if let Some(token) = token {
        js.set(SYNC_TOKEN, &token)?;
    }
    Ok(js)
}

impl FetchTransport {
    /// Send `request` and wait for the response headers, giving up after [`REQUEST_TIMEOUT`].
    async fn fetch(&self, request: RestRequest) -> Result<Response, StoreError> {
        let headers = js_headers(request.headers).map_err(unavailable)?;
        let controller = AbortController::new().map_err(unavailable)?;
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        init.set_body_opt_str(request.body.as_deref());
        init.set_signal(Some(&controller.signal()));
        let global: WorkerGlobalScope = js_sys::global().unchecked_into();
        let fetch = JsFuture::from(global.fetch_with_str_and_init(&request.url, &init));
        match select(fetch, worker::Delay::from(REQUEST_TIMEOUT)).await {
            Either::Left((response, _)) => response
                .and_then(|r| r.dyn_into::<Response>())
                .map_err(unavailable),
            Either::Right(((), _)) => {
                controller.abort();
                Err(StoreError::Unavailable(format!(
                    "no answer from the REST endpoint within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )))
            }
        }
    }
}

impl Transport for FetchTransport {
    type ByteStream = LocalBoxStream<'static, Result<Bytes, StoreError>>;

    async fn send(&self, request: RestRequest) -> Result<RestResponse, StoreError> {
        let response = self.fetch(request).await?;
        let status = response.status();
        let sync_token = response.headers().get(SYNC_TOKEN).map_err(unavailable)?;
        let body = JsFuture::from(response.array_buffer().map_err(unavailable)?)
            .await
            .map_err(unavailable)?;
        Ok(RestResponse {
            status,
            sync_token,
            body: Uint8Array::new(&body).to_vec().into(),
        })
    }

    async fn open_stream(
        &self,
        request: RestRequest,
    ) -> Result<(u16, Self::ByteStream), StoreError> {
        let response = self.fetch(request).await?;
        let status = response.status();
        let body = match response.body() {
            Some(body) => wasm_streams::ReadableStream::from_raw(body)
                .into_stream()
                .map(|chunk| {
                    chunk
                        .map(|chunk| Bytes::from(Uint8Array::new(&chunk).to_vec()))
                        .map_err(unavailable)
                })
                .boxed_local(),
            // No body at all (e.g. an empty error answer): an empty stream.
            None => stream::empty().boxed_local(),
        };
        Ok((status, body))
    }
}

/// The store the worker uses: Upstash REST over `fetch()`.
pub type FetchRestStore = RestStore<FetchTransport>;

/// From `UPSTASH_REDIS_REST_URL` / `UPSTASH_REDIS_REST_TOKEN` values.
pub fn connect(url: &str, token: &str) -> Result<FetchRestStore, StoreError> {
    Ok(RestStore::new(RestConfig::new(url, token)?, FetchTransport))
}
