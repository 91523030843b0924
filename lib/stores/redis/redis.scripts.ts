/**
 * The Lua scripts of the Redis store. Each touches the keys of one hash tag only (so each runs on
 * Cluster, on the node of that tag's slot) and is atomic there: "write only if the session still
 * exists" is one step, never check-then-write.
 *
 * A session is one hash: metadata fields `~c` (created), `~s` (last seen), `~e` (expires at),
 * `~u` (user), `~k` (the client record, JSON; only when one was recorded), and one `d:<name>`
 * field per data field, holding its JSON. Expiry is the key's TTL.
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
 * Applies a delta to an existing session. Returns false (nil) when the session is gone, which
 * writes nothing; otherwise the session's user ('' for none), so the caller can keep that user's
 * index alive as long as the session.
 *
 * KEYS[1] session · KEYS[2] expiry marker (optional) · ARGV[1] expires at (ms epoch) · ARGV[2] last seen ·
 * ARGV[3] marker expires at · ARGV[4] user mode ('k' keep, 's' set, 'c' clear) · ARGV[5] user ·
 * ARGV[6] n pairs · then n field/value pairs to set (data fields, and `~k` when the client record
 * changes), then the fields to remove.
 */
export const COMMIT_SCRIPT = `${IN_CHUNKS}
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local pairs = tonumber(ARGV[6])
local first_unset = 7 + 2 * pairs
-- One HSET (per chunk) for the metadata, the user (when it changes) and the changed fields.
local fields = {'~s', ARGV[2], '~e', ARGV[1]}
if ARGV[4] == 's' then fields[5] = '~u'; fields[6] = ARGV[5] end
for i = 7, first_unset - 1 do fields[#fields + 1] = ARGV[i] end
in_chunks('HSET', KEYS[1], fields, 1, #fields)
in_chunks('HDEL', KEYS[1], ARGV, first_unset, #ARGV)
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
local user
if ARGV[4] == 'k' then
  user = redis.call('HGET', KEYS[1], '~u') or ''
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
