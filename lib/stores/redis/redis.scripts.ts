/**
 * The Lua scripts of the Redis store. Each touches the keys of one hash tag only (so each runs on
 * Cluster, on the node of that tag's slot) and is atomic there: "write only if the session still
 * exists" is one step, never check-then-write.
 *
 * A session is one hash, kept small enough for Redis to store it as a listpack of a few dozen
 * bytes: metadata under names no data field takes, `''` (the times), `~u` (the user) and `~k`
 * (the client record, JSON; only when one was recorded), then one field per data field under its
 * own name (a `~` in front of a name that is empty or starts with `~`), holding its JSON. Expiry
 * is the key's TTL.
 *
 * The times are one field, `<created><±last seen − created><±expires − last seen>` in base 62:
 * three fields of 13-digit numbers cost three times as much, and an entry's name and header cost
 * as much as a short value. A data field whose JSON is the user id's (the `userKey` field, in the
 * clear) holds `''` instead: the user is in `~u` already. Sealed at rest, the two differ (a
 * token, a sealed text) and both are kept. When the user changes, the fields that stood for the
 * old one get its JSON back first.
 *
 * With `expiryEvents` on, beside it in the same slot lives its expiry marker `<session key>:x`:
 * a string holding the session's user ('' for none) that outlives the session by a grace period.
 * When Redis expires the session it publishes only the key name, the hash being gone by then: the
 * marker is what tells the node that reports the expiry whose session it was, and taking it
 * (GETDEL) is what lets exactly one node report it. Every script that sets a session's expiry
 * sets the marker's too, and every delete removes both. The session scripts take the marker as
 * an optional second key: without it (the default) they write the session alone.
 */

/**
 * `in_chunks(command, key, list, first, last)`: runs `command key list[first..last]` in slices.
 * Lua's `unpack()` returns at most about 8,000 values (LUAI_MAXCSTACK), and past that the script
 * fails: a session of about 4,000 fields could not be written in one call. A slice of 1,000
 * values (an even number, so field/value pairs stay together) is far below it; a write within
 * MAX_SESSION_FIELDS (2,000 values and a few of metadata) takes two or three slices, all in the
 * same atomic script, in the same round trip.
 */
const IN_CHUNKS = `
local function in_chunks(command, key, list, first, last)
  for i = first, last, 1000 do
    redis.call(command, key, unpack(list, i, math.min(i + 999, last)))
  end
end
`;

/**
 * The times field as the codec writes it (redis.codec.ts, timesField), from the stored creation
 * time: Lua numbers are doubles, exact for millisecond timestamps.
 */
const TIMES = `
local DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
local function base62(n)
  local text = ''
  repeat
    local digit = n % 62
    text = string.sub(DIGITS, digit + 1, digit + 1) .. text
    n = (n - digit) / 62
  until n == 0
  return text
end
local function signed(n)
  if n < 0 then return '-' .. base62(-n) end
  return '+' .. base62(n)
end
-- The creation time a times field starts with, as text and as a number; nil if it is not one.
local function created_of(times)
  local sign, digits = string.match(times, '^(%-?)(%w+)[%+%-]')
  if not digits then return nil end
  local n = 0
  for i = 1, #digits do n = n * 62 + string.find(DIGITS, string.sub(digits, i, i), 1, true) - 1 end
  return sign .. digits, (sign == '-' and -n or n)
end
`;

/**
 * Applies a delta to an existing session. Returns false (nil) when the session is gone (or holds
 * no times of ours), which writes nothing; otherwise the session's user ('' for none), so the
 * caller can keep that user's index alive as long as the session.
 *
 * KEYS[1] session · KEYS[2] expiry marker (optional) · ARGV[1] expires at (ms epoch) · ARGV[2] last seen ·
 * ARGV[3] marker expires at · ARGV[4] user mode ('k' keep, 's' set, 'c' clear) · ARGV[5] user ·
 * ARGV[6] n pairs · then n field/value pairs to set (data fields, and `~k` when the client record
 * changes), then the fields to remove.
 */
export const COMMIT_SCRIPT = `${IN_CHUNKS}${TIMES}
local meta = redis.call('HMGET', KEYS[1], '', '~u')
if not meta[1] then return false end
local created_text, created = created_of(meta[1])
if not created then return false end
local old_user = meta[2]
if old_user and (ARGV[4] == 'c' or (ARGV[4] == 's' and ARGV[5] ~= old_user)) then
  -- Fields that stood for the old user stop naming it: they get its JSON back.
  local hash = redis.call('HGETALL', KEYS[1])
  local json = cjson.encode(old_user)
  for i = 1, #hash, 2 do
    local field = hash[i]
    local data = string.sub(field, 1, 1) ~= '~' or field == '~' or string.sub(field, 1, 2) == '~~'
    if hash[i + 1] == '' and field ~= '' and data then redis.call('HSET', KEYS[1], field, json) end
  end
end
local pairs = tonumber(ARGV[6])
local first_unset = 7 + 2 * pairs
local last_seen = tonumber(ARGV[2])
-- One HSET (per chunk) for the times, the user (when it changes) and the changed fields.
local fields = {'', created_text .. signed(last_seen - created) .. signed(tonumber(ARGV[1]) - last_seen)}
if ARGV[4] == 's' then fields[3] = '~u'; fields[4] = ARGV[5] end
for i = 7, first_unset - 1 do fields[#fields + 1] = ARGV[i] end
in_chunks('HSET', KEYS[1], fields, 1, #fields)
in_chunks('HDEL', KEYS[1], ARGV, first_unset, #ARGV)
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
local user
if ARGV[4] == 'k' then
  user = old_user or ''
  -- The marker already names this user: only its lifetime moves.
  if KEYS[2] then redis.call('PEXPIREAT', KEYS[2], ARGV[3]) end
else
  if ARGV[4] == 'c' then redis.call('HDEL', KEYS[1], '~u') end
  user = ARGV[4] == 's' and ARGV[5] or ''
  if KEYS[2] then redis.call('SET', KEYS[2], user, 'PXAT', ARGV[3]) end
end
return user
`;

/**
 * Writes a whole session under a fresh id, replacing anything there, and its expiry marker.
 * KEYS[1] session · KEYS[2] expiry marker (optional) · ARGV[1] expires at (ms epoch) · ARGV[2]
 * marker expires at · ARGV[3] user ('' for none) · then field/value pairs.
 */
export const CREATE_SCRIPT = `${IN_CHUNKS}
redis.call('DEL', KEYS[1])
in_chunks('HSET', KEYS[1], ARGV, 4, #ARGV)
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[3], 'PXAT', ARGV[2]) end
return 1
`;

/**
 * Deletes a session and its expiry marker. Returns 1 when the session existed (the marker alone
 * does not count: it outlives an expired session), so rotation can tell "already destroyed".
 * KEYS[1] session · KEYS[2] expiry marker (optional).
 */
export const DESTROY_SCRIPT = `
local existed = redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return existed
`;

/**
 * Deletes a session (and its expiry marker) only if it still belongs to the given user: revoking
 * a user's sessions must not delete one that has since been signed in as someone else.
 * KEYS[1] session · KEYS[2] expiry marker (optional) · ARGV[1] user. Returns 1 when deleted.
 */
export const DESTROY_IF_OWNED_SCRIPT = `
if redis.call('HGET', KEYS[1], '~u') ~= ARGV[1] then return 0 end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return redis.call('DEL', KEYS[1])
`;

/**
 * Adds a session id to a user's index (a sorted set scored by creation time) and makes sure the
 * index lives at least as long as that session. With an empty id, only the lifetime is extended.
 * KEYS[1] index · ARGV[1] session id or '' · ARGV[2] score · ARGV[3] time to live (ms).
 */
export const INDEX_SCRIPT = `
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then return 0 end
if ttl < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`;

/**
 * Releases a user lock only if it is still ours: after a lease ran out, the key may belong to
 * another node, whose lock must survive our late release.
 * KEYS[1] lock · ARGV[1] our token. Returns 1 when released.
 */
export const UNLOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
