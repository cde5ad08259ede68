-- An inbound message before its decision, in one round trip (RedisStore.begin_message).
-- KEYS: 1 message digests hash, 2 seen set, 3 state hash, 4 inflight hash,
--       5 expired-order tombstone (1.2; optional)
-- ARGV: 1 message id, 2 body digest or "" (no claim), 3 inflight task id or "",
--       4 TTL in ms of the digests of an order without state
-- Answers {"reused"} (the id came first with another body), {"duplicate"} (already
-- applied: its in-flight entry is ended here, nothing else will), or {"new", state, version,
-- tombstone, known}: tombstone 1 when the order has no state and its tombstone is there;
-- known: the hash's `known` field (worker/adapters/state_codec.py).
if ARGV[2] ~= "" then
  local stored = redis.call("HGET", KEYS[1], ARGV[1])
  if stored then
    -- Digests stored whole (64 hex characters) before they were cut to ARGV[2]'s length.
    if string.sub(stored, 1, #ARGV[2]) ~= ARGV[2] then return {"reused", false, false} end
  else
    redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
    -- The digests expire with the order's state (retention). No state: the message may be
    -- refused without a commit; a commit that opens the order makes them persist.
    local ttl = redis.call("PTTL", KEYS[3])
    if ttl == -2 then
      redis.call("PEXPIRE", KEYS[1], ARGV[4])
    elseif ttl >= 0 then
      redis.call("PEXPIRE", KEYS[1], math.max(ttl, 1))
    end
  end
end
if redis.call("SISMEMBER", KEYS[2], ARGV[1]) == 1 then
  if ARGV[3] ~= "" then redis.call("HDEL", KEYS[4], ARGV[3]) end
  return {"duplicate", false, false}
end
local found = redis.call("HMGET", KEYS[3], "state", "version", "known")
local tombstone = 0
if not found[1] and KEYS[5] then tombstone = redis.call("EXISTS", KEYS[5]) end
return {"new", found[1], found[2], tombstone, found[3]}
