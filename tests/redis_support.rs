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

#[test]
fn direct_exec_maps_replies_and_errors() {
    use edgecount::core::command::{Command, Reply};
    let redis = support::RedisServer::start();
    let url = redis.url();
    let run = |c: Command| support::direct::exec(&url, &c);
    assert_eq!(
        run(Command::new("INCRBY").arg("n").arg(5)),
        Ok(Reply::Int(5))
    );
    assert_eq!(
        run(Command::new("MGET").arg("n").arg("missing")),
        Ok(Reply::Array(vec![Reply::Bytes(b"5".to_vec()), Reply::Nil]))
    );
    let err = run(Command::new("LPUSH").arg("n").arg("x")).unwrap_err();
    assert!(err.starts_with("WRONGTYPE"), "{err}");
}
