"""The official `upstash-redis` Python client, unmodified, against the real `edgecount proxy` binary
and a private redis-server (fixtures in conftest.py). Run: .venv/bin/pytest tests/clients/python"""

import asyncio

import pytest
from upstash_redis import Redis
from upstash_redis.errors import UpstashError


# --- strings ---------------------------------------------------------------------------------------


def test_set_get_del_exists(redis, k):
    assert redis.set(k("a"), "hello") is True
    assert redis.get(k("a")) == "hello"
    assert redis.exists(k("a"), k("missing")) == 1
    assert redis.delete(k("a")) == 1
    assert redis.get(k("a")) is None


def test_set_options_and_ttl(redis, k):
    # ex=100 travels as a JSON integer: the proxy must stringify it.
    assert redis.set(k("t"), "v", ex=100) is True
    assert 90 < redis.ttl(k("t")) <= 100
    assert redis.set(k("t"), "other", nx=True) is False
    assert redis.set(k("t"), "new", get=True) == "v"
    assert redis.get(k("t")) == "new"
    assert redis.ttl(k("never")) == -2


def test_ping_echo(redis):
    assert redis.ping() == "PONG"
    assert redis.echo("hello, world") == "hello, world"


def test_mset_mget_with_nulls(redis, k):
    assert redis.mset({k("a"): "one", k("b"): "two"}) is True
    assert redis.mget(k("a"), k("missing"), k("b")) == ["one", None, "two"]


@pytest.mark.parametrize(
    "value",
    [
        "héllo wörld ✓ 🚀 日本語",
        "line1\nline2\r\n\ttab",
        'quotes " and \\ backslash, commas, : colons',
        "\x00\x01\x02 nul and control bytes \x7f",
        "OK",
        "PONG",
        "",
        " padded ",
        "x" * 100_000,
    ],
    ids=["unicode", "newlines", "quotes", "control", "OK", "PONG", "empty", "padded", "100k"],
)
def test_text_values_round_trip(redis, redis_server, k, value):
    assert redis.set(k("v"), value) is True
    assert redis.get(k("v")) == value
    assert redis_server.cli("STRLEN", k("v")) == str(len(value.encode("utf-8")))


def test_append_strlen_getrange_getdel(redis, k):
    assert redis.append(k("s"), "abc") == 3
    assert redis.append(k("s"), "def") == 6
    assert redis.strlen(k("s")) == 6
    assert redis.getrange(k("s"), 1, 3) == "bcd"
    assert redis.getdel(k("s")) == "abcdef"
    assert redis.exists(k("s")) == 0


# --- integers and floats ---------------------------------------------------------------------------


def test_incr_family(redis, k):
    assert redis.incr(k("n")) == 1
    assert redis.incrby(k("n"), 41) == 42
    assert redis.decr(k("n")) == 41
    assert redis.decrby(k("n"), 50) == -9
    assert redis.get(k("n")) == "-9"


def test_incrbyfloat_sends_and_returns_floats(redis, redis_server, k):
    # The float travels as a JSON number (1.5): the proxy must keep its literal form.
    assert redis.incrbyfloat(k("f"), 1.5) == 1.5
    assert redis.incrbyfloat(k("f"), 0.25) == 1.75
    assert redis_server.cli("GET", k("f")) == "1.75"


def test_big_integers_keep_every_digit(redis, redis_server, k):
    # Python sends ints > 2^53 as JSON numbers; a float round trip would change the digits.
    big = 2**62 + 1
    assert redis.incrby(k("big"), big) == big
    assert redis_server.cli("GET", k("big")) == str(big)
    assert redis.incrby(k("big"), 2**62 - 2) == 2**63 - 1
    with pytest.raises(UpstashError, match="overflow"):
        redis.incr(k("big"))


def test_expire_with_integer_argument(redis, k):
    redis.set(k("e"), "v")
    assert redis.expire(k("e"), 50) is True
    assert 40 < redis.ttl(k("e")) <= 50
    assert redis.persist(k("e")) is True
    assert redis.ttl(k("e")) == -1


# --- hashes, lists, sets, sorted sets --------------------------------------------------------------


def test_hashes(redis, k):
    assert redis.hset(k("h"), values={"name": "ada", "visits": 1}) == 2
    assert redis.hget(k("h"), "name") == "ada"
    assert redis.hget(k("h"), "missing") is None
    assert redis.hincrby(k("h"), "visits", 41) == 42
    assert redis.hincrbyfloat(k("h"), "score", 2.5) == 2.5
    assert redis.hgetall(k("h")) == {"name": "ada", "visits": "42", "score": "2.5"}
    assert redis.hmget(k("h"), "name", "nope") == ["ada", None]
    assert redis.hexists(k("h"), "name") is True
    assert redis.hdel(k("h"), "score", "nope") == 1
    assert sorted(redis.hkeys(k("h"))) == ["name", "visits"]
    assert redis.hgetall(k("none")) == {}


def test_lists(redis, k):
    assert redis.rpush(k("l"), "b", "c") == 2
    assert redis.lpush(k("l"), "a") == 3
    assert redis.lrange(k("l"), 0, -1) == ["a", "b", "c"]
    assert redis.llen(k("l")) == 3
    assert redis.lindex(k("l"), 1) == "b"
    assert redis.lpop(k("l")) == "a"
    assert redis.rpop(k("l")) == "c"
    assert redis.lpop(k("empty")) is None


def test_sets(redis, k):
    assert redis.sadd(k("s"), "x", "y", "z", "x") == 3
    assert sorted(redis.smembers(k("s"))) == ["x", "y", "z"]
    assert redis.sismember(k("s"), "y") is True
    assert redis.sismember(k("s"), "w") is False
    assert redis.scard(k("s")) == 3
    assert redis.srem(k("s"), "x", "w") == 1


def test_sorted_sets_with_scores(redis, k):
    assert redis.zadd(k("z"), {"a": 1, "b": 2.5, "c": -3}) == 3
    assert redis.zrange(k("z"), 0, -1) == ["c", "a", "b"]
    assert redis.zrange(k("z"), 0, -1, withscores=True) == [("c", -3.0), ("a", 1.0), ("b", 2.5)]
    assert redis.zscore(k("z"), "b") == 2.5
    assert redis.zscore(k("z"), "nobody") is None
    assert redis.zincrby(k("z"), 0.25, "a") == 1.25
    assert redis.zrank(k("z"), "b") == 2
    assert redis.zrange(k("z"), 1, 3, sortby="BYSCORE", withscores=True) == [("a", 1.25), ("b", 2.5)]


# --- pipelines and transactions --------------------------------------------------------------------


def test_pipeline_runs_in_order(redis, k):
    p = redis.pipeline()
    p.set(k("k"), "v")
    p.incr(k("n"))
    p.incr(k("n"))
    p.get(k("k"))
    p.get(k("missing"))
    p.zadd(k("z"), {"m": 1.5})
    p.zscore(k("z"), "m")
    assert p.exec() == [True, 1, 2, "v", None, 1, 1.5]


def test_pipeline_error_entry_raises_and_others_ran(redis, redis_server, k):
    redis.set(k("str"), "text")
    p = redis.pipeline()
    p.incr(k("cnt"))
    p.lpush(k("str"), "x")  # WRONGTYPE
    p.incr(k("cnt"))
    with pytest.raises(UpstashError, match="^WRONGTYPE"):
        p.exec()
    # A pipeline is not atomic: both INCRs ran.
    assert redis_server.cli("GET", k("cnt")) == "2"


def test_multi_exec_transaction(redis, k):
    tx = redis.multi()
    tx.set(k("t"), "1")
    tx.incr(k("t"))
    tx.incrby(k("t"), 10)
    tx.get(k("t"))
    assert tx.exec() == [True, 2, 12, "12"]


def test_multi_exec_with_exec_time_error(redis, redis_server, k):
    redis.set(k("str"), "text")
    tx = redis.multi()
    tx.incr(k("other"))
    tx.incr(k("str"))  # fails inside EXEC only; the other commands still apply
    tx.incr(k("other"))
    with pytest.raises(UpstashError, match="not an integer"):
        tx.exec()
    assert redis_server.cli("GET", k("other")) == "2"


def test_multi_exec_aborted_writes_nothing(redis, redis_server, k):
    tx = redis.multi()
    tx.set(k("never"), "x")
    tx.execute(["MGET"])  # wrong arity when queued → EXECABORT, whole transaction discarded
    with pytest.raises(Exception):
        tx.exec()
    assert redis_server.cli("EXISTS", k("never")) == "0"


def test_context_manager_pipeline(redis, k):
    with redis.pipeline() as p:
        p.set(k("a"), "1")
        p.get(k("a"))
        assert p.exec() == [True, "1"]


# --- scripts ---------------------------------------------------------------------------------------


def test_eval(redis, k):
    assert redis.eval("return ARGV[1]", args=["hi there"]) == "hi there"
    assert redis.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", keys=[k("e")], args=["5"]) == 5
    assert redis.eval("return {1, 'two', {3, 'four'}}") == [1, "two", [3, "four"]]
    assert redis.eval("return nil") is None
    with pytest.raises(UpstashError, match="MYERR custom"):
        redis.eval("return redis.error_reply('MYERR custom')")


def test_script_load_evalsha_noscript(redis, k):
    sha = redis.script_load("return KEYS[1] .. ':' .. ARGV[1]")
    assert len(sha) == 40
    assert redis.evalsha(sha, keys=["key"], args=["val"]) == "key:val"
    assert redis.script_exists(sha, "0" * 40) == [True, False]
    with pytest.raises(UpstashError, match="^NOSCRIPT"):
        redis.evalsha("0" * 40)


# --- scan ------------------------------------------------------------------------------------------


def test_scan_match_count(redis, k):
    want = {k(f"scan:{i}") for i in range(40)}
    redis.mset({key: "1" for key in want})
    redis.set(k("other"), "1")
    seen = set()
    cursor, rounds = 0, 0
    while True:
        cursor, keys = redis.scan(cursor, match=k("scan:*"), count=10)
        seen.update(keys)
        rounds += 1
        if cursor == 0 or rounds > 1000:
            break
    assert rounds > 1
    assert seen == want


def test_type_and_keys(redis, k):
    redis.set(k("str"), "1")
    redis.rpush(k("list"), "1")
    assert redis.type(k("str")) == "string"
    assert redis.type(k("list")) == "list"
    assert redis.type(k("none")) == "none"
    assert sorted(redis.keys(k("*"))) == sorted([k("list"), k("str")])


def test_publish_counts_receivers(redis, k):
    assert redis.publish(k("chan"), "hello") == 0


# --- errors ----------------------------------------------------------------------------------------


def test_wrongtype_raises(redis, k):
    redis.set(k("s"), "x")
    with pytest.raises(UpstashError, match="^WRONGTYPE Operation against a key holding the wrong kind of value"):
        redis.lpush(k("s"), "y")


def test_arity_and_unknown_command(redis):
    with pytest.raises(UpstashError, match="(?i)wrong number of arguments"):
        redis.execute(["GET"])
    with pytest.raises(UpstashError, match="(?i)unknown command"):
        redis.execute(["NOSUCHCOMMAND"])


def test_wrong_token_is_wrongpass(proxy):
    bad = Redis(proxy.url, "not-the-token", rest_retries=0)
    try:
        with pytest.raises(UpstashError, match="WRONGPASS"):
            bad.get("anything")
    finally:
        bad.close()


def test_still_serves_after_errors(redis, k):
    assert redis.incr(k("after")) == 1


# --- read-your-writes, encodings -------------------------------------------------------------------


def test_sync_token_is_returned_and_changes(redis, k):
    assert redis._sync_token == ""
    redis.set(k("a"), "1")
    first = redis._sync_token
    assert isinstance(first, str) and first != ""
    redis.incr(k("a"))
    assert redis._sync_token not in ("", first)
    assert redis.get(k("a")) == "2"


def test_without_base64_encoding(proxy, token, k):
    plain = Redis(proxy.url, token, rest_encoding=None, rest_retries=0, read_your_writes=False,
                  allow_telemetry=False)
    try:
        assert plain.set(k("p"), "héllo ✓") is True
        assert plain.get(k("p")) == "héllo ✓"
        assert plain.mget(k("p"), k("none")) == ["héllo ✓", None]
        assert plain.incr(k("n")) == 1
    finally:
        plain.close()


# --- asyncio client --------------------------------------------------------------------------------


def test_asyncio_client(proxy, token, k):
    from upstash_redis.asyncio import Redis as AsyncRedis

    async def scenario():
        async with AsyncRedis(proxy.url, token, rest_retries=0) as r:
            assert await r.set(k("a"), "v") is True
            assert await r.get(k("a")) == "v"
            results = await asyncio.gather(*(r.incr(k("n")) for _ in range(20)))
            assert sorted(results) == list(range(1, 21))
            p = r.pipeline()
            p.incr(k("n"))
            p.get(k("n"))
            assert await p.exec() == [21, "21"]
            tx = r.multi()
            tx.set(k("t"), "x")
            tx.get(k("t"))
            assert await tx.exec() == [True, "x"]
            with pytest.raises(UpstashError, match="^WRONGTYPE"):
                await r.lpush(k("a"), "x")

    asyncio.run(scenario())
