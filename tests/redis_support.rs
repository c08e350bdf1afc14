mod support;

#[test]
fn private_redis_starts_answers_and_restarts() {
    let mut redis = support::RedisServer::start();
    assert_ne!(redis.port(), 6379);
    assert_eq!(redis.cli(&["SET", "k", "v"]), "OK");
    assert_eq!(redis.cli(&["GET", "k"]), "v");
    redis.kill();
    assert!(!redis.ping());
    redis.restart();
    assert!(redis.ping());
}
