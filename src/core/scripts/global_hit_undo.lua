-- global_hit_undo: take back the +1 a hit's pipeline gave the service-wide hits of the day when
-- the hit script then counted nothing (a retry, a client over its abuse limit): the figure stays
-- exact, and a refused hit leaves Redis as it was (the key's expiry is an absolute time, so the
-- hit's EXPIREAT changed nothing; a key the +1 created is removed again).
-- KEYS[1] `ec:global:hits:<YYYYMMDD>:<shard>`

if redis.call('DECR', KEYS[1]) <= 0 then
  redis.call('DEL', KEYS[1])
end
return 1
