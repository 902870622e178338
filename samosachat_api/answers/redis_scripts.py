"""The Lua scripts that change the shared state of an answer in one step.

Keys (after the prefix): `conversation:<cid>` the answer id claiming it; `lease:<aid>` its
generating process, with the lease as TTL; `meta:<aid>` a hash (conversation_id, user_id, seq,
owner, started, started_at, record); `events:<aid>` a stream whose entry `0-<n>` is event n
(field `d`) and whose last entry has the field `end`; `user:<uid>` and `running` sets of answer ids.
"""

from __future__ import annotations

# KEYS: conversation, user set, running set, sequence, lease, meta
# ARGV: answer id, per-user cap, owner, lease ms, prefix, conversation id, user id, now
# Returns the answer's sequence number, -1 if the conversation is taken, -2 if the user is at the cap.
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local live = 0
for _, other in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('SISMEMBER', KEYS[3], other) == 1 then live = live + 1 else redis.call('SREM', KEYS[2], other) end
end
if live >= tonumber(ARGV[2]) then return -2 end
local seq = redis.call('INCR', KEYS[4])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[6], 'conversation_id', ARGV[6], 'user_id', ARGV[7], 'seq', seq, 'owner', ARGV[3],
           'started', '0', 'started_at', ARGV[8])
return seq
"""

# KEYS: conversation, user set, running set, events, meta, lease
# ARGV: answer id, seconds the events are kept, events already in the stream, the last events...
# Adds the last events and the end mark, frees the conversation (if still this answer's).
FINISH = """
local position = tonumber(ARGV[3])
for i = 4, #ARGV do
  position = position + 1
  redis.call('XADD', KEYS[4], '0-' .. position, 'd', ARGV[i])
end
redis.call('XADD', KEYS[4], '0-' .. (position + 1), 'end', '1')
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[6])
redis.call('EXPIRE', KEYS[4], ARGV[2])
redis.call('EXPIRE', KEYS[5], ARGV[2])
return position
"""
