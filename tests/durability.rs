//! Durability as the dev setup runs Redis: with AOF on, every acknowledged hit survives a crash
//! (SIGKILL) of redis-server. With `appendfsync always` that holds even for a power loss; the
//! default `everysec` (scripts/dev.sh) can lose up to the last second on power loss, not on a
//! process crash, since the kernel still holds the written file.

mod support;

use std::time::Duration;

use edgecount::core::counter::HitRequest;
use edgecount::core::names::Name;
use edgecount::service::Counters;
use edgecount::store::http_native::NativeRestStore;
use support::proxy::spawn_proxy;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_hits_survive_a_redis_crash_with_aof() {
    let mut redis = RedisServer::with_args(&["--appendonly", "yes", "--appendfsync", "always"]);
    let proxy = spawn_proxy(&redis, "durability-token");
    let store = NativeRestStore::connect(proxy.url(), "durability-token").unwrap();
    let counters = Counters::new(&store);
    let name = Name::parse("blog", "durable").unwrap();
    // One clock for every hit: the hourly bucket checked below is the one they all wrote, even
    // when the test runs across an hour.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for expected in 1..=200 {
        let hit = counters
            .hit(&name, &HitRequest::default(), now)
            .await
            .unwrap();
        assert_eq!(hit.value, expected);
    }
    redis.kill(); // SIGKILL: no shutdown save, only the AOF on disk remains
    redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let value = loop {
        match counters.get(&name).await {
            Ok(value) => break value,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("counter unreadable after restart: {e}"),
        }
    };
    assert_eq!(value, 200);
    // Buckets and their TTLs came back too.
    let ttl: i64 = redis
        .cli(&[
            "TTL",
            &format!(
                "ec:{{blog:durable}}:h:{}",
                edgecount::core::counter::calendar::hour_label(now)
            ),
        ])
        .parse()
        .unwrap();
    assert!(ttl > 0, "hourly bucket lost its TTL: {ttl}");
}
