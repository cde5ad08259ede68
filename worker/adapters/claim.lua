-- Claim a message id for its body digest, the digests expiring with the order's state.
-- KEYS: 1 digests hash, 2 order state hash
-- ARGV: 1 message id, 2 body digest, 3 TTL in ms for an order without state
-- Returns 1 if the id is new or was first seen with this digest, else 0.
local stored = redis.call("HGET", KEYS[1], ARGV[1])
if stored then
  -- Stored digests may be whole (64 hex characters, before they were cut to ARGV[2]'s length).
  if string.sub(stored, 1, #ARGV[2]) == ARGV[2] then return 1 end
  return 0
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
local ttl = redis.call("PTTL", KEYS[2])
if ttl == -2 then
  -- No state: the message may be refused without a commit; a commit that opens the
  -- order makes the digests persist with the rest of its keys.
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
elseif ttl >= 0 then
  redis.call("PEXPIRE", KEYS[1], math.max(ttl, 1))
end
return 1
