-- An inbound message before its decision, in one round trip (RedisStore.begin_message).
-- KEYS: 1 message digests hash, 2 seen set, 3 state hash, 4 inflight hash
-- ARGV: 1 message id, 2 body digest or "" (no claim), 3 inflight task id or ""
-- Answers {"reused"} (the id came first with another body), {"duplicate"} (already
-- applied: its in-flight entry is ended here, nothing else will), or {"new", state, version}.
if ARGV[2] ~= "" and redis.call("HSETNX", KEYS[1], ARGV[1], ARGV[2]) == 0 then
  local stored = redis.call("HGET", KEYS[1], ARGV[1])
  if stored and stored ~= ARGV[2] then return {"reused", false, false} end
end
if redis.call("SISMEMBER", KEYS[2], ARGV[1]) == 1 then
  if ARGV[3] ~= "" then redis.call("HDEL", KEYS[4], ARGV[3]) end
  return {"duplicate", false, false}
end
local found = redis.call("HMGET", KEYS[3], "state", "version")
return {"new", found[1], found[2]}
