/**
 * The Lua scripts of the Redis store. Each touches one key (so each runs on Cluster, on the node
 * of that key's slot) and is atomic there: "write only if the session still exists" is one step,
 * never check-then-write.
 *
 * A session is one hash: metadata fields `~c` (created), `~s` (last seen), `~e` (expires at),
 * `~u` (user), and one `d:<name>` field per data field, holding its JSON. Expiry is the key's TTL.
 */

/**
 * Applies a delta to an existing session. Returns false (nil) when the session is gone, which
 * writes nothing; otherwise the session's user ('' for none), so the caller can keep that user's
 * index alive as long as the session.
 *
 * KEYS[1] session · ARGV[1] expires at (ms epoch) · ARGV[2] last seen · ARGV[3] user mode
 * ('k' keep, 's' set, 'c' clear) · ARGV[4] user · ARGV[5] n pairs · then n field/JSON pairs,
 * then the fields to remove.
 */
export const COMMIT_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local pairs = tonumber(ARGV[5])
local first_unset = 6 + 2 * pairs
if pairs > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 6, first_unset - 1)) end
if #ARGV >= first_unset then redis.call('HDEL', KEYS[1], unpack(ARGV, first_unset)) end
redis.call('HSET', KEYS[1], '~s', ARGV[2], '~e', ARGV[1])
if ARGV[3] == 's' then redis.call('HSET', KEYS[1], '~u', ARGV[4])
elseif ARGV[3] == 'c' then redis.call('HDEL', KEYS[1], '~u') end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return redis.call('HGET', KEYS[1], '~u') or ''
`;

/**
 * Writes a whole session under a fresh id, replacing anything there.
 * KEYS[1] session · ARGV[1] expires at (ms epoch) · then field/value pairs.
 */
export const CREATE_SCRIPT = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`;

/**
 * Deletes a session only if it still belongs to the given user: revoking a user's sessions must
 * not delete one that has since been signed in as someone else.
 * KEYS[1] session · ARGV[1] user. Returns 1 when deleted.
 */
export const DESTROY_IF_OWNED_SCRIPT = `
if redis.call('HGET', KEYS[1], '~u') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * Adds a session id to a user's index (a sorted set scored by creation time) and makes sure the
 * index lives at least as long as that session. With an empty id, only the lifetime is extended.
 * KEYS[1] index · ARGV[1] session id or '' · ARGV[2] score · ARGV[3] time to live (ms).
 */
export const INDEX_SCRIPT = `
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`;
