//! The rate limiter as a Rust library (what README's "From Rust" shows), over the REST store
//! through the real proxy and a private redis-server: tiers and overrides, the deny list with a
//! client address, and the listing.

mod support;

use std::time::Duration;

use edgecount::core::ratelimit::{
    DenyTarget, LimitSource, Mode, Override, Policy, PolicySet, Reason, Subject, Tiers,
};
use edgecount::service::{DenyList, RateLimiter};
use edgecount::store::http_native::NativeRestStore;
use support::proxy::spawn_proxy;
use support::RedisServer;

#[tokio::test]
async fn overrides_tiers_and_the_deny_list_from_rust() {
    let redis = RedisServer::start();
    let proxy = spawn_proxy(&redis, "lib-token");
    let store = NativeRestStore::connect(proxy.url(), "lib-token").unwrap();
    let policies = PolicySet::parse("api=sliding:100/60s").unwrap();
    let limiter = RateLimiter::new(&store, Policy::sliding("api", 100, Duration::from_secs(60)))
        .with_tiers(Tiers::parse("pro: api=sliding:5000/60s", &policies).unwrap());

    let decision = limiter.limit("user:42", 1).await.unwrap();
    assert_eq!((decision.limit, decision.reason), (100, Reason::Limit));
    limiter
        .set_override("user:42", "api", &Override::Tier("pro".into()))
        .await
        .unwrap();
    let decision = limiter.limit("user:42", 1).await.unwrap();
    assert_eq!((decision.limit, decision.reason), (5000, Reason::Override));
    assert_eq!(decision.policies[0].source, LimitSource::Tier);
    assert_eq!(
        limiter.override_of("user:42", "api").await.unwrap(),
        Some(Override::Tier("pro".into()))
    );
    // An override of a policy the limiter does not have is refused before Redis.
    assert!(limiter
        .set_override("user:42", "nope", &Override::Tier("pro".into()))
        .await
        .is_err());
    assert!(limiter.remove_override("user:42", "api").await.unwrap());
    assert_eq!(limiter.limit("user:42", 1).await.unwrap().limit, 100);

    let deny = DenyList::new(&store);
    let range = DenyTarget::parse("203.0.113.0/24", false).unwrap();
    deny.add(&range, None).await.unwrap();
    let denied = limiter
        .decide(
            Subject::at("user:42", Some("203.0.113.9")),
            1,
            Mode::Consume,
        )
        .await
        .unwrap();
    assert!(!denied.allowed && denied.denied);
    assert_eq!(denied.reason, Reason::Deny);
    let elsewhere = limiter
        .decide(
            Subject::at("user:42", Some("198.51.100.1")),
            1,
            Mode::Consume,
        )
        .await
        .unwrap();
    assert!(elsewhere.allowed);
    let listing = deny.list().await.unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].target, "203.0.113.0/24");
    assert!(deny.remove(&range).await.unwrap());
    assert!(deny.get(&range).await.unwrap().is_none());
}
