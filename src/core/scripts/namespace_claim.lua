-- namespace_claim: after a create, register the counter in its namespace and, when it is the
-- namespace's first counter and nobody holds the namespace's token yet, store this token's hash
-- (the creator is shown the token once). A namespace that already has counters (hit into being,
-- say) gets no token this way: the admin mints one, so nobody can take over a namespace that is
-- in use by creating one more counter in it.
-- KEYS[1] the namespace's counter set `ec:{ns}:counters`   KEYS[2] its token hash `ec:{ns}:auth`
-- ARGV[1] the new counter's key   ARGV[2] SHA-256 hex of a freshly generated namespace token
-- Returns 1 when the token was stored, else 0.

redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 1 and redis.call('SETNX', KEYS[2], ARGV[2]) == 1 then
  return 1
end
return 0
