//! The wasm REST transport: `worker::Fetch` (the runtime's `fetch()`), which pools and reuses
//! connections to the REST endpoint on its own, so there is nothing to keep alive here.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{select, Either};
use futures_util::stream::{self, LocalBoxStream, StreamExt};
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

use super::rest::{RestConfig, RestRequest, RestResponse, RestStore, Transport};
use super::StoreError;

/// How long one REST round trip may take before the store reports Redis unavailable. The
/// subscription stream (`open_stream`) is only bounded until its headers arrive.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `fetch()` from inside the worker. Stateless: the runtime owns the connection pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct FetchTransport;

fn unavailable(e: worker::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl FetchTransport {
    /// Send `request` and wait for the response headers, giving up after [`REQUEST_TIMEOUT`].
    async fn fetch(&self, request: RestRequest) -> Result<worker::Response, StoreError> {
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.set(name, value).map_err(unavailable)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers);
        if let Some(body) = request.body {
            init.with_body(Some(body.into()));
        }
        let req = Request::new_with_init(&request.url, &init).map_err(unavailable)?;

        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(req);
        let outcome = select(
            Box::pin(fetch.send_with_signal(&signal)),
            Delay::from(REQUEST_TIMEOUT),
        )
        .await;
        match outcome {
            Either::Left((response, _)) => response.map_err(unavailable),
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
        let mut response = self.fetch(request).await?;
        let status = response.status_code();
        let sync_token = response
            .headers()
            .get("upstash-sync-token")
            .map_err(unavailable)?;
        let body = response.bytes().await.map_err(unavailable)?;
        Ok(RestResponse {
            status,
            sync_token,
            body: body.into(),
        })
    }

    async fn open_stream(
        &self,
        request: RestRequest,
    ) -> Result<(u16, Self::ByteStream), StoreError> {
        let mut response = self.fetch(request).await?;
        let status = response.status_code();
        let body = match response.stream() {
            Ok(chunks) => chunks
                .map(|chunk| chunk.map(Bytes::from).map_err(unavailable))
                .boxed_local(),
            // No body at all (e.g. an empty error answer): an empty stream.
            Err(_) => stream::empty().boxed_local(),
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
