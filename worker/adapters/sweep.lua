-- Armed deadlines whose re-check time is past: re-send only those whose task is lost.
-- A claimant is a worker incarnation, "<node>#<boot id>" (worker/celery.py): a worker
-- restarted under its own node name beats another alive key, so its predecessor's deadlines
-- are not taken for live ones.
-- A deadline whose task a live worker received less than ARGV[5] s ago is left to it (its
-- re-check moves ARGV[2] s on); so is one nobody claims while the deadlines queue is not
-- empty (ARGV[6] > 0): its task is presumed still queued behind others, not lost, and the
-- queue itself is recorded as its claimant ("queue", no "@": never a worker's name) for
-- at most ARGV[5] s. A burst of due deadlines is worked off at the workers' pace instead of
-- being sent again and again while it waits. One with no claim and an empty queue, a gone
-- claimant (listed in ARGV[7..]) or a claim too old is re-sent, and its next re-check backs
-- off exponentially (ARGV[2] s, twice that ... at most ARGV[4] s).
-- Which claimants are gone (alive key expired) is read by the caller just before (alive keys
-- live in other hash slots, and a script must name every key it touches): an incarnation
-- once gone never comes back, and one not listed counts as alive until the next sweep.
-- KEYS: 1 armed zset, 2 claims hash, 3 resends hash
-- ARGV: 1 now, 2 grace, 3 limit, 4 backoff cap, 5 max claim age,
--       6 messages waiting in the deadlines queue, 7.. claimants that are gone
local now, grace, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local max_claim_age, queued = tonumber(ARGV[5]), tonumber(ARGV[6] or "0") > 0
local gone = {}
for i = 7, #ARGV do gone[ARGV[i]] = true end
local overdue = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, ARGV[3])
local lost = {}
for _, member in ipairs(overdue) do
  local claim = redis.call("HGET", KEYS[2], member)
  local kept = false
  if claim then
    local who, since = string.match(claim, "^(.*) ([%d.]+)$")
    kept = who ~= nil and now - tonumber(since) < max_claim_age
    if kept and who == "queue" then
      kept = queued
    elseif kept then
      kept = not gone[who]
    end
  elseif queued then
    redis.call("HSET", KEYS[2], member, "queue " .. now)
    kept = true
  end
  if kept then
    redis.call("ZADD", KEYS[1], now + grace, member)
  else
    local sent = redis.call("HINCRBY", KEYS[3], member, 1)
    redis.call("ZADD", KEYS[1], now + math.min(cap, grace * 2 ^ (sent - 1)), member)
    redis.call("HDEL", KEYS[2], member)
    table.insert(lost, member)
  end
end
return lost
