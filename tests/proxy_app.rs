//! The proxy's axum app driven in-process with `tower::ServiceExt::oneshot` (no socket), and a
//! few wire-level checks on the real binary (keep-alive, MONITOR). Run: `cargo test --test proxy_app`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axum::body::Body;
use edgecount::proxy::{app, ProxyArgs, ProxyState};
use http::{Request, StatusCode};
use serde_json::{json, Value};
use support::proxy::spawn_proxy;
use support::RedisServer;
use tower::ServiceExt;

async fn call(router: axum::Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn the_router_answers_without_a_socket() {
    let redis = RedisServer::start();
    let state = ProxyState::new(&ProxyArgs::new(redis.url(), "in-process")).unwrap();
    let router = app(state);
    let req = |body: &str| {
        Request::post("/")
            .header("authorization", "Bearer in-process")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, headers, body) = call(router.clone(), req(r#"["SET","k","v"]"#)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"result": "OK"})));
    assert!(headers.contains_key("upstash-sync-token"));
    let (_, _, body) = call(router.clone(), req(r#"["GET","k"]"#)).await;
    assert_eq!(body, json!({"result": "v"}));
    let (status, _, body) = call(
        router.clone(),
        Request::get("/get/k").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error": "WRONGPASS invalid or missing auth token"})
    );
    let (status, _, body) = call(
        router,
        Request::delete("/get/k?_token=in-process")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string());
}

#[test]
fn empty_or_equal_tokens_are_refused_at_startup() {
    let mut args = ProxyArgs::new("redis://127.0.0.1:1", "");
    assert!(ProxyState::new(&args).is_err());
    args.token = "t".into();
    args.read_only_token = Some("t".into());
    assert!(ProxyState::new(&args).is_err());
}

/// Read one HTTP/1.1 response with a Content-Length body from a raw socket.
fn read_response(reader: &mut BufReader<TcpStream>) -> (String, String) {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, "ka-token");
    let addr = proxy.url().trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for i in 0..3 {
        let body = format!(r#"["INCR","n{i}"]"#);
        write!(
            writer,
            "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ka-token\r\nContent-Length: {}\r\n\r\n{}",
            body.len(),
            body
        )
        .unwrap();
        let (status, body) = read_response(&mut reader);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert_eq!(body, r#"{"result":1}"#);
    }
}

#[tokio::test]
async fn monitor_streams_commands() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, "mon-token");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/monitor", proxy.url()))
        .bearer_auth("mon-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = Box::pin(resp.bytes_stream());
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut sent = false;
    use futures_util::StreamExt;
    while !seen.contains("monitored-key") {
        if seen.contains("data: \"OK\"") && !sent {
            redis.cli(&["SET", "monitored-key", "1"]);
            sent = true;
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("monitor stream ended or timed out: {other:?}; got {seen:?}"),
        }
    }
    assert!(seen.starts_with("data: \"OK\""), "{seen}");
}
