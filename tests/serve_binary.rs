//! `edgecount serve` as users run it: the binary, configured by CLI flags or by environment
//! variables (flags first), and `--trust-forwarded` (`EDGECOUNT_TRUST_FORWARDED`): behind a
//! trusted reverse proxy the client address — whom the abuse limit and gateway mode's `ip` key
//! count — is the first `X-Forwarded-For` entry; without it the header is ignored and the socket
//! peer is the client.

mod support;

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use support::edge::spawn_origin;
use support::proxy::{spawn_proxy, spawn_serve, spawn_serve_with, ProxyProcess};
use support::RedisServer;

const TOKEN: &str = "serve-binary-token";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(BROWSER)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn hit(http: &reqwest::Client, serve: &ProxyProcess, path: &str) -> (StatusCode, Value) {
    let response = http
        .post(format!("{}/hit/{path}", serve.url()))
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_its_rest_endpoint_from_flags_or_the_environment_flags_first() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let http = client();
    // The environment alone.
    let from_env = spawn_serve_with(
        &[],
        &[
            ("UPSTASH_REDIS_REST_URL", proxy.url()),
            ("UPSTASH_REDIS_REST_TOKEN", TOKEN),
        ],
    );
    // Flags over an environment that points elsewhere (nothing listens on port 9).
    let flags_first = spawn_serve_with(
        &["--rest-url", proxy.url(), "--rest-token", TOKEN],
        &[
            ("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:9"),
            ("UPSTASH_REDIS_REST_TOKEN", "not-the-token"),
        ],
    );
    for (expected, serve) in [(1, &from_env), (2, &flags_first)] {
        let (status, body) = hit(&http, serve, "cli/page").await;
        assert_eq!(status, 200, "{body}\n{}", serve.log());
        assert_eq!(body["value"], expected, "{body}");
    }
    // A token the proxy refuses: our configuration's fault, not the caller's (502, not 401).
    let wrong_token = spawn_serve_with(
        &[],
        &[
            ("UPSTASH_REDIS_REST_URL", proxy.url()),
            ("UPSTASH_REDIS_REST_TOKEN", "not-the-token"),
        ],
    );
    let (status, body) = hit(&http, &wrong_token, "cli/page").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    assert!(!wrong_token.log().contains("not-the-token"));
    assert_eq!(redis.cli(&["GET", "ec:{cli:page}:v"]), "2");

    // Neither flag nor variable: it does not start, and says what is missing.
    let mut command = Command::new(env!("CARGO_BIN_EXE_edgecount"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("UPSTASH_REDIS_REST_URL")
        .env_remove("UPSTASH_REDIS_REST_TOKEN");
    let output = support::run_with_timeout(command, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--rest-url") && stderr.contains("--rest-token"),
        "{stderr}"
    );
}

/// `addresses` in order through `request`, each as `X-Forwarded-For` (`None`: no header); the
/// statuses.
async fn statuses_from(
    addresses: &[Option<&str>],
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Vec<u16> {
    let mut statuses = Vec::new();
    for address in addresses {
        let mut builder = request();
        if let Some(address) = address {
            builder = builder.header("x-forwarded-for", *address);
        }
        statuses.push(builder.send().await.expect("an answer").status().as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_forwarded_makes_the_first_x_forwarded_for_entry_the_client() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, TOKEN);
    let (origin, _origin_server) = spawn_origin().await;
    // Two counted hits per client per counter and minute; gateway mode: two requests per client
    // address and minute to the origin.
    let env = [
        ("EDGECOUNT_ABUSE_LIMIT", "2"),
        ("EDGECOUNT_RATE_LIMITS", "site=fixed:2/1m"),
        ("EDGECOUNT_ORIGIN", origin.as_str()),
    ];
    let by_flag = spawn_serve_with(
        &[
            "--rest-url",
            proxy.url(),
            "--rest-token",
            TOKEN,
            "--trust-forwarded",
        ],
        &env,
    );
    let mut by_env_vars = env.to_vec();
    by_env_vars.push(("EDGECOUNT_TRUST_FORWARDED", "true"));
    let by_env = spawn_serve(proxy.url(), TOKEN, &by_env_vars);
    let untrusting = spawn_serve(proxy.url(), TOKEN, &env);
    let http = client();
    // Both limits count per clock minute: every step below in one.
    redis.wait_clear_of_minute_boundary(15);

    // Trusted: each forwarded address is a client of its own. (Different addresses per
    // instance: they share Redis, so the same address would share a gateway budget.)
    for (name, serve, a, b) in [
        ("flag", &by_flag, "203.0.113.1", "2001:db8::1"),
        ("env", &by_env, "203.0.113.11", "203.0.113.12"),
    ] {
        let b_first = format!("{b}, 10.0.0.1");
        let hits = statuses_from(
            &[
                Some(a),
                Some(a),
                Some(a),
                Some(b),
                // The first entry is the client; later ones are proxies on the way.
                Some(&b_first),
                Some(b),
                // No header, or one that is no address: the socket peer (its own budget).
                None,
                Some("not-an-address"),
                None,
            ],
            || http.post(format!("{}/hit/forwarded/{name}", serve.url())),
        )
        .await;
        assert_eq!(
            hits,
            [200, 200, 429, 200, 200, 429, 200, 200, 429],
            "hits via {name}"
        );
        let gateway = statuses_from(
            &[Some(a), Some(a), Some(a), Some(b), Some(&b_first), Some(b)],
            || http.get(format!("{}/page", serve.url())),
        )
        .await;
        assert_eq!(
            gateway,
            [200, 200, 429, 200, 200, 429],
            "gateway via {name}"
        );
    }
    let counted = redis.cli(&["GET", "ec:{forwarded:flag}:v"]);
    assert_eq!(counted, "6", "2 per client: a, b and the peer");

    // Not trusted: the header changes nothing, every request is the socket peer's.
    let hits = statuses_from(
        &[
            Some("198.51.100.1"),
            Some("198.51.100.2"),
            Some("198.51.100.3"),
        ],
        || http.post(format!("{}/hit/forwarded/untrusting", untrusting.url())),
    )
    .await;
    assert_eq!(hits, [200, 200, 429]);
    let gateway = statuses_from(
        &[
            Some("198.51.100.1"),
            Some("198.51.100.2"),
            Some("198.51.100.3"),
        ],
        || http.get(format!("{}/page", untrusting.url())),
    )
    .await;
    assert_eq!(gateway, [200, 200, 429]);
    // The origin saw the allowed ones.
    let response = http
        .get(format!("{}/page", by_flag.url()))
        .header("x-forwarded-for", "203.0.113.99")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-origin"], "yes");
    assert_eq!(response.text().await.unwrap(), "origin saw GET /page");
}
