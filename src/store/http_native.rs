//! The native REST transport: reqwest with a shared connection pool (HTTP/1.1 keep-alive).

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};

use super::rest::{RestConfig, RestRequest, RestResponse, RestStore, Transport};
use super::StoreError;

/// How long a command may take end to end before the store reports Redis unavailable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client with rustls");
        ReqwestTransport { client }
    }

    fn builder(&self, request: RestRequest) -> reqwest::RequestBuilder {
        let mut builder = self.client.post(&request.url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        // Inside a request of `edgecount serve`: the REST endpoint logs under the same id.
        if let Some(id) = crate::request_id::current() {
            builder = builder.header(&crate::request_id::X_REQUEST_ID, id);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        builder
    }
}

impl Default for ReqwestTransport {
    fn default() -> Self {
        Self::new()
    }
}

fn unavailable(e: reqwest::Error) -> StoreError {
    StoreError::Unavailable(e.without_url().to_string())
}

impl Transport for ReqwestTransport {
    type ByteStream = BoxStream<'static, Result<Bytes, StoreError>>;

    async fn send(&self, request: RestRequest) -> Result<RestResponse, StoreError> {
        let response = self
            .builder(request)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status().as_u16();
        let sync_token = response
            .headers()
            .get("upstash-sync-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(unavailable)?;
        Ok(RestResponse {
            status,
            sync_token,
            body,
        })
    }

    async fn open_stream(
        &self,
        request: RestRequest,
    ) -> Result<(u16, Self::ByteStream), StoreError> {
        let response = self.builder(request).send().await.map_err(unavailable)?;
        let status = response.status().as_u16();
        Ok((
            status,
            response
                .bytes_stream()
                .map(|r| r.map_err(unavailable))
                .boxed(),
        ))
    }
}

/// The store native code uses: Upstash REST over reqwest.
pub type NativeRestStore = RestStore<ReqwestTransport>;

impl NativeRestStore {
    /// From `UPSTASH_REDIS_REST_URL` / `UPSTASH_REDIS_REST_TOKEN` values.
    pub fn connect(url: &str, token: &str) -> Result<Self, StoreError> {
        Ok(RestStore::new(
            RestConfig::new(url, token)?,
            ReqwestTransport::new(),
        ))
    }
}
