//! The Lua scripts of the Redis store. Each one does atomically what Kombu does in several
//! commands (or in a WATCH/MULTI transaction), keeping Kombu's key layout.

use redis::Script;

/// Pop up to `max` messages from the queues' lists and record each in the `unacked` hash and
/// `unacked_index` zset in the same step, so that a consumer dying between the pop and the
/// record cannot lose a message (kombu #305, #1405: Kombu records after BRPOP returned).
///
/// KEYS: unacked, unacked_index, then the list keys step-major (every queue's first bucket,
/// then every queue's second, ... — Kombu's BRPOP order), then one dead-letter list per
/// queue.
/// ARGV: max, number of queues, number of steps, ack emulation ("1"/"0"), round robin
/// ("1"/"0"), then each queue's x-expires in ms ("0": none).
///
/// Returns `{ {queue_index, message, ...}, {queue_index, reason, ...} }`: the messages taken,
/// and the values moved to a dead-letter list because they are not Kombu messages.
pub(super) const FETCH: &str = r#"
local max, nq, ns = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ack, rotate = ARGV[4] == '1', ARGV[5] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local order = {}
for i = 1, nq do order[i] = i end
local out, dead, n = {}, {}, 0
while n < max do
  local found = false
  for s = 1, ns do
    for i = 1, nq do
      local q = order[i]
      local msg = redis.call('RPOP', KEYS[2 + (s - 1) * nq + q])
      if msg then
        local ok, m = pcall(cjson.decode, msg)
        local props = ok and type(m) == 'table' and m['properties']
        local tag = type(props) == 'table' and props['delivery_tag']
        if type(tag) ~= 'string' or tag == '' then
          redis.call('LPUSH', KEYS[2 + ns * nq + q], msg)
          local why = 'not JSON'
          if ok and type(m) ~= 'table' then why = 'not a JSON object'
          elseif ok and type(props) ~= 'table' then why = 'no properties'
          elseif ok then why = 'no properties.delivery_tag' end
          dead[#dead + 1] = q
          dead[#dead + 1] = why
        else
          if ack then
            local di = props['delivery_info']
            local ex, rk = '', ''
            if type(di) == 'table' then
              if type(di['exchange']) == 'string' then ex = di['exchange'] end
              if type(di['routing_key']) == 'string' then rk = di['routing_key'] end
            end
            redis.call('HSET', KEYS[1], tag, '[' .. msg .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']')
            redis.call('ZADD', KEYS[2], now, tag)
          end
          out[#out + 1] = q
          out[#out + 1] = msg
          n = n + 1
        end
        if rotate then
          table.remove(order, i)
          order[#order + 1] = q
        end
        found = true
        break
      end
    end
    if found then break end
  end
  if not found then break end
end
for q = 1, nq do
  local e = tonumber(ARGV[5 + q])
  if e and e > 0 then
    for s = 1, ns do redis.call('PEXPIRE', KEYS[2 + (s - 1) * nq + q], e) end
  end
end
return {out, dead}
"#;

/// Put a message back (requeue, restore, dead-letter) and forget its unacked record, once:
/// when the record is already gone (acked, or restored by another sweeper) nothing is pushed.
///
/// KEYS: unacked, unacked_index, then the lists to push to.
/// ARGV: the delivery tag, the message, "1" to LPUSH (the back of the queue: a rejected
/// message) or "0" to RPUSH (consumed next: a restored one), "1" to require the record
/// ("0" without ack emulation).
pub(super) const RESTORE: &str = r#"
if ARGV[4] == '1' and redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do
  if ARGV[3] == '1' then redis.call('LPUSH', KEYS[i], ARGV[2]) else redis.call('RPUSH', KEYS[i], ARGV[2]) end
end
return 1
"#;

/// Add a binding row to an exchange's table and push the table's sweep deadline to at least
/// ARGV[3] ms from now (server clock), as kombu 5.7 does for queues with `x-expires`.
///
/// KEYS: the binding table, `_kombu.binding_deadlines`. ARGV: the row, the exchange, the ttl.
pub(super) const REFRESH_BINDING: &str = r#"
redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], 'GT', ms + tonumber(ARGV[3]), ARGV[2])
return 1
"#;

/// Release the restore mutex if this store still holds it (KEYS[1], token ARGV[1]).
pub(super) const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// The scripts, hashed once.
pub(super) struct Scripts {
    pub(super) fetch: Script,
    pub(super) restore: Script,
    pub(super) refresh_binding: Script,
    pub(super) unlock: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts { fetch: Script::new(FETCH), restore: Script::new(RESTORE), refresh_binding: Script::new(REFRESH_BINDING), unlock: Script::new(UNLOCK) }
    }

    pub(super) fn all(&self) -> [&'static str; 4] {
        [FETCH, RESTORE, REFRESH_BINDING, UNLOCK]
    }
}
