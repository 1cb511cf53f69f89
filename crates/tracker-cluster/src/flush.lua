-- mini-torrust cluster mode: one flush of one node, run by Redis itself (standalone Redis or
-- Valkey; see writer.rs for why, and for the Redis Cluster path, which sends the same writes
-- as one pipeline per swarm instead).
--
-- KEYS[1] the replication stream
-- ARGV[1] key prefix, ARGV[2] stream MAXLEN (approximate), ARGV[3] now in unix ms,
-- ARGV[4] sender instance id, ARGV[5] node name, ARGV[6] the batch (batch.rs, version 1),
-- ARGV[7] the batch's number (readers notice a number skipped: see reader.rs)
--
-- For every item of the batch:
--   stored:  ZADD <role set> <expiry ms> <addr>; when that added a member (a new peer, or one
--            that changed role): ZREM from the other role's set, and ZREMRANGEBYSCORE -inf now
--            on this one (a set grows only by a new member, so trimming then keeps its expired
--            members bounded, with no scan); counted here (flag 4): SADD <done> <addr>, SCARD
--            <done> (returned)
--   removed: ZREM from both role sets
-- then, once per key written: PEXPIREAT GT at its latest expiry, and PEXPIREAT NX when that
-- did not apply (a new key has no TTL, which GT treats as infinite). The swarm's `done` set
-- gets the latest expiry of any of its peers stored here (it lives as long as the swarm, not
-- only until its last completion; NX only when this batch added to it: the set may not
-- exist). Then the batch itself as one stream entry. Redis runs a script without interleaving
-- other clients' commands, so another node sees the entry and all of its writes, or none.
-- Returns the SCARD counts of the counted items, in batch order.

local prefix, now, body = ARGV[1], ARGV[3], ARGV[6]
local byte, sub, format = string.byte, string.sub, string.format
local hex = string.rep('%02x', 20)
local call = redis.call
-- Unix seconds (below 2^32, exact in a Lua number) as milliseconds in text: Lua would print
-- 1.8e+12 for the number, which PEXPIREAT refuses.
local function millis(secs)
  if secs == 0 then
    return '0'
  end
  return format('%.0f', secs) .. '000'
end
if byte(body, 1) ~= 1 then
  return redis.error_reply('mini-torrust: unknown batch version')
end
local expire, dones, added, counts = {}, {}, {}, {}
local pos, n = 2, #body
while pos <= n do
  local tag = byte(body, pos)
  if tag < 1 or tag > 4 then
    return redis.error_reply('mini-torrust: unexpected batch item ' .. tag)
  end
  local alen = (tag % 2 == 1) and 6 or 18
  local fam = (alen == 6) and '4' or '6'
  if pos + 20 + alen > n then
    return redis.error_reply('mini-torrust: truncated batch')
  end
  local swarm = '{' .. prefix .. format(hex, byte(body, pos + 1, pos + 20)) .. '}:'
  local addr = sub(body, pos + 21, pos + 20 + alen)
  pos = pos + 21 + alen
  if tag <= 2 then
    if pos + 4 > n then
      return redis.error_reply('mini-torrust: truncated batch')
    end
    local b1, b2, b3, b4, flags = byte(body, pos, pos + 4)
    pos = pos + 5
    local secs = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
    local ms = millis(secs)
    local role, other = 'l', 's'
    if flags % 2 == 1 then
      role, other = 's', 'l'
    end
    local key = swarm .. role .. fam
    if call('ZADD', key, ms, addr) == 1 then
      call('ZREM', swarm .. other .. fam, addr)
      call('ZREMRANGEBYSCORE', key, '-inf', now)
    end
    if (expire[key] or -1) < secs then
      expire[key] = secs
    end
    local done = swarm .. 'done'
    if (dones[done] or -1) < secs then
      dones[done] = secs
    end
    if flags >= 4 then
      call('SADD', done, addr)
      counts[#counts + 1] = call('SCARD', done)
      added[done] = true
    end
  else
    call('ZREM', swarm .. 's' .. fam, addr)
    call('ZREM', swarm .. 'l' .. fam, addr)
  end
end
for key, secs in pairs(expire) do
  local ms = millis(secs)
  if call('PEXPIREAT', key, ms, 'GT') == 0 then
    call('PEXPIREAT', key, ms, 'NX')
  end
end
for key, secs in pairs(dones) do
  local ms = millis(secs)
  if call('PEXPIREAT', key, ms, 'GT') == 0 and added[key] then
    call('PEXPIREAT', key, ms, 'NX')
  end
end
call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'n', ARGV[4], 'node', ARGV[5], 'b', body,
  's', ARGV[7])
return counts
