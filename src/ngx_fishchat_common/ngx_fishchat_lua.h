
/*
 * FishChat for nginx: the Lua scripts that more than one role runs.
 *
 * A message the manager posts is stored and delivered by the very script
 * a msg server runs for SEND_MESSAGE_P2P or SEND_MESSAGE_TOPIC, and a
 * topic it changes is changed by the msg server's scripts: the bodies live
 * here, each role registers them with ngx_fishchat_redis_script() (the
 * same body is loaded once).  The keys and payloads are in
 * docs/keyspace.md.
 */


#ifndef _NGX_FISHCHAT_LUA_H_INCLUDED_
#define _NGX_FISHCHAT_LUA_H_INCLUDED_


/*
 * A 1:1 message.
 * KEYS: inbox order, inbox messages, presence of the recipient.
 * ARGV: uuid, delivery frame, inbox max, inbox ttl (ms), the sender's
 * worker channel ("" from outside a worker), recipient id, the system
 * channel of 1:1 messages, the sender's id, the system channel of client
 * events.
 * FULL, or where it went: LOCAL (the sender's worker writes it), ROUTED
 * (published to the recipient's worker), OFFLINE (it waits in the inbox).
 * A new inbox (counter 1) is marked with its generation, "#gen": the start
 * of the first uuid; a counter that starts again is another generation.
 * A uuid already in the inbox is never stored again: DUP when the frame
 * is the same (a retry: nothing changes), CONFLICT when it is not.
 * A presence whose worker channel has no subscriber (the worker is gone,
 * or its subscriber link is reconnecting and will deliver the inbox
 * anew) is removed and published as LOGOUT: the message waits.
 */

#define NGX_FISHCHAT_LUA_SEND                                                \
    "local dup = redis.call('HGET', KEYS[2], ARGV[1]) "                      \
    "if dup then "                                                           \
        "if dup == ARGV[2] then return 'DUP' end "                           \
        "return 'CONFLICT' "                                                 \
    "end "                                                                   \
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then "             \
        "return 'FULL' "                                                     \
    "end "                                                                   \
    "local seq = redis.call('HINCRBY', KEYS[2], '#seq', 1) "                 \
    "redis.call('ZADD', KEYS[1], seq, ARGV[1]) "                             \
    "if seq == 1 then "                                                      \
        "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2], '#gen', "             \
                   "string.sub(ARGV[1], 1, 13)) "                            \
    "else "                                                                  \
        "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) "                     \
    "end "                                                                   \
    "redis.call('PEXPIRE', KEYS[1], ARGV[4]) "                               \
    "redis.call('PEXPIRE', KEYS[2], ARGV[4]) "                               \
    "local ch = redis.call('HGET', KEYS[3], 'ch') "                          \
    "local st = 'OFFLINE' "                                                  \
    "if ch == ARGV[5] then "                                                 \
        "st = 'LOCAL' "                                                      \
    "elseif ch then "                                                        \
        "if redis.call('PUBLISH', ch, 'D' .. ARGV[6] .. '\\n' .. ARGV[2]) "  \
           "> 0 "                                                            \
        "then "                                                              \
            "st = 'ROUTED' "                                                 \
        "else "                                                              \
            "local p = redis.call('HMGET', KEYS[3], 'node', 'srv') "         \
            "redis.call('DEL', KEYS[3]) "                                    \
            "redis.call('PUBLISH', ARGV[9], 'LOGOUT\\n' .. ARGV[6] "         \
                       ".. '\\n' .. (p[1] or '') .. '\\n' .. (p[2] or '')) " \
        "end "                                                               \
    "end "                                                                   \
    "redis.call('PUBLISH', ARGV[7], 'P2P\\n' .. ARGV[6] .. '\\n' .. ARGV[8] "\
               ".. '\\n' .. ARGV[1] .. '\\n' .. st) "                        \
    "return st"


/*
 * Messages leave their inboxes (P2P_ACK), one or several at once: a
 * worker acknowledges those of a pass of its event loop together.
 * KEYS: inbox order, inbox messages, of each message in turn; ARGV: the
 * uuid of each.  The number of messages that were there.
 */

#define NGX_FISHCHAT_LUA_ACK                                                 \
    "local n = 0 "                                                           \
    "for i = 1, #ARGV do "                                                   \
        "local z, h = KEYS[2 * i - 1], KEYS[2 * i] "                         \
        "n = n + redis.call('ZREM', z, ARGV[i]) "                            \
        "redis.call('HDEL', h, ARGV[i]) "                                    \
        "if redis.call('ZCARD', z) == 0 then "                               \
            "redis.call('DEL', h) "                                          \
        "end "                                                               \
    "end "                                                                   \
    "return n"


/*
 * A topic is made.
 * KEYS: topic, members.  ARGV: creator, creation time (Unix ms), the
 * system channel of topic events, the name, "1" for a private topic.
 * 1 when made, 0 when the name is taken.
 */

#define NGX_FISHCHAT_LUA_TOPIC_CREATE                                        \
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "               \
    "redis.call('HSET', KEYS[1], 'creator', ARGV[1], 'created', ARGV[2], "   \
               "'seq', 0) "                                                  \
    "if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'private', 1) end "  \
    "redis.call('HSET', KEYS[2], ARGV[1], 0) "                               \
    "redis.call('PUBLISH', ARGV[3], 'CREATE\\n' .. ARGV[4] .. '\\n' "        \
               ".. ARGV[1]) "                                                \
    "return 1"


/*
 * Who changes a topic's members, the last argument of the two scripts
 * below: "" the member itself (JOIN_TOPIC, LEAVE_TOPIC), "*" the manager,
 * or a client id for TOPIC_INVITE and TOPIC_REMOVE, which only the
 * topic's creator may send (-3 otherwise).  A private topic is joined
 * only by the manager's or the creator's doing (-2 otherwise).
 */

#define NGX_FISHCHAT_LUA_TOPIC_ACTOR                                         \
    "local t = redis.call('HMGET', KEYS[1], 'seq', 'private', 'creator') "   \
    "if not t[1] then return -1 end "                                        \
    "if ARGV[4] ~= '*' and ARGV[4] ~= '' and ARGV[4] ~= t[3] then "          \
        "return -3 "                                                         \
    "end "


/*
 * A member joins.
 * KEYS: topic, members.  ARGV: id, the system channel of topic events, the
 * name, who (above).  A new member's position is the last message of the
 * topic (no history before the join); -1: no such topic; 1: a member.
 */

#define NGX_FISHCHAT_LUA_TOPIC_JOIN                                          \
    NGX_FISHCHAT_LUA_TOPIC_ACTOR                                             \
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 1 end "     \
    "if t[2] == '1' and ARGV[4] == '' then return -2 end "                   \
    "redis.call('HSET', KEYS[2], ARGV[1], t[1]) "                            \
    "redis.call('PUBLISH', ARGV[2], 'JOIN\\n' .. ARGV[3] .. '\\n' "          \
               ".. ARGV[1]) "                                                \
    "return 1"


/*
 * A member leaves.
 * KEYS: topic, members.  ARGV: id, the system channel of topic events, the
 * name, who (above).  1, 0 (not a member), -1 (no topic)
 */

#define NGX_FISHCHAT_LUA_TOPIC_LEAVE                                         \
    NGX_FISHCHAT_LUA_TOPIC_ACTOR                                             \
    "if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end "        \
    "redis.call('PUBLISH', ARGV[2], 'LEAVE\\n' .. ARGV[3] .. '\\n' "         \
               ".. ARGV[1]) "                                                \
    "return 1"


/*
 * KEYS: presence, topics of the client.  ARGV: SADD or SREM, the topic,
 * J or L, id.  The topic list of the client follows its membership, and
 * its session, where it is online, takes the topic up or lets it go
 * (J<id>\n<topic>, L<id>\n<topic> on its worker's channel).  1 when
 * online, 0 when not.
 */

#define NGX_FISHCHAT_LUA_CLIENT_TOPIC                                        \
    "redis.call(ARGV[1], KEYS[2], ARGV[2]) "                                 \
    "local ch = redis.call('HGET', KEYS[1], 'ch') "                          \
    "if not ch then return 0 end "                                           \
    "redis.call('PUBLISH', ch, ARGV[3] .. ARGV[4] .. '\\n' .. ARGV[2]) "     \
    "return 1"


/*
 * A topic message.
 * KEYS: topic, members, history.  ARGV: sender, uuid, message, history
 * cap, channel, the system channel of topic messages, the name, and "1"
 * when the sender need not be a member (the manager).
 * The sequence number, or NOTOPIC / NOTMEMBER.
 * The payload, in the history and on the channel:
 *     <seq>\n<uuid>\n<from>\n<message>
 */

#define NGX_FISHCHAT_LUA_TOPIC_SEND                                          \
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then "                  \
        "if redis.call('EXISTS', KEYS[1]) == 0 then return 'NOTOPIC' end "   \
        "if ARGV[8] ~= '1' then return 'NOTMEMBER' end "                     \
    "end "                                                                   \
    "local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1) "                  \
    "local p = seq .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[1] .. '\\n' "        \
              ".. ARGV[3] "                                                  \
    "redis.call('RPUSH', KEYS[3], p) "                                       \
    "redis.call('LTRIM', KEYS[3], -tonumber(ARGV[4]), -1) "                  \
    "redis.call('PUBLISH', ARGV[5], p) "                                     \
    "redis.call('PUBLISH', ARGV[6], 'MESSAGE\\n' .. ARGV[7] .. '\\n' "       \
               ".. ARGV[1] .. '\\n' .. ARGV[2] .. '\\n' .. seq) "            \
    "return seq"


/*
 * A file message to a topic (SEND_FILE_TOPIC): NGX_FISHCHAT_LUA_TOPIC_SEND
 * of a message from "{file}" (ARGV[1], with ARGV[8] "1"), once the sender,
 * ARGV[9], is found a member.
 */

#define NGX_FISHCHAT_LUA_TOPIC_FILE                                          \
    "if redis.call('HEXISTS', KEYS[2], ARGV[9]) == 0 then "                  \
        "if redis.call('EXISTS', KEYS[1]) == 0 then return 'NOTOPIC' end "   \
        "return 'NOTMEMBER' "                                                \
    "end "                                                                   \
    "local function send(KEYS, ARGV) "                                       \
        NGX_FISHCHAT_LUA_TOPIC_SEND                                          \
    " end "                                                                  \
    "return send(KEYS, ARGV)"


/*
 * The live msg servers, by Redis's clock (the gateway, the manager, the
 * monitor).
 * KEYS: heartbeats, loads.  ARGV: the most entries to return.
 * The number of live entries, then the address, milliseconds left and
 * load record of each (ngx_fishchat_nodes_entry()).
 */

#define NGX_FISHCHAT_LUA_NODES                                               \
    "local t = redis.call('TIME') "                                          \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) " \
    "local min = '(' .. string.format('%d', now) "                           \
    "local live = redis.call('ZRANGEBYSCORE', KEYS[1], min, '+inf', "        \
                            "'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1])) "  \
    "local r = { redis.call('ZCOUNT', KEYS[1], min, '+inf') } "              \
    "for i = 1, #live, 2 do "                                                \
        "r[#r + 1] = live[i] "                                               \
        "r[#r + 1] = math.floor(tonumber(live[i + 1]) - now) "               \
        "r[#r + 1] = redis.call('HGET', KEYS[2], live[i]) or '' "            \
    "end "                                                                   \
    "return r"


/*
 * Is a token revoked?  KEYS: the revocation of its id (revoked:{<id>});
 * ARGV: the second the token was issued at.  1 when it was issued at or
 * after the last revocation, 0 when it is revoked.
 */

#define NGX_FISHCHAT_LUA_REVOKED                                             \
    "local r = redis.call('GET', KEYS[1]) "                                  \
    "if r and tonumber(ARGV[1]) < tonumber(r) then return 0 end "            \
    "return 1"


/*
 * An upload slot (FILE_SLOT, the manager's POST /files/slots).
 * KEYS: the file, the owner's files, the owner's file ids, the files'
 * expiries ({files}:expiry).  ARGV: owner, name, type, size, created
 * (Unix ms), expires (Unix s), the quota (0: none), the slot's life (s),
 * the file id.  1 when made; -1 over the quota; 0 the id is taken.
 */

#define NGX_FISHCHAT_LUA_FILE_SLOT                                           \
    "if ARGV[7] ~= '0' then "                                                \
        "local used = tonumber(redis.call('HGET', KEYS[2], 'used') or '0') " \
        "if used + tonumber(ARGV[4]) > tonumber(ARGV[7]) then "              \
            "return -1 "                                                     \
        "end "                                                               \
    "end "                                                                   \
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "               \
    "redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'name', ARGV[2], "        \
               "'type', ARGV[3], 'size', ARGV[4], 'created', ARGV[5], "      \
               "'expires', ARGV[6], 'state', 'slot') "                       \
    "redis.call('EXPIRE', KEYS[1], ARGV[8]) "                                \
    "redis.call('SADD', KEYS[3], ARGV[9]) "                                  \
    "redis.call('ZADD', KEYS[4], ARGV[6], ARGV[9]) "                         \
    "return 1"


/*
 * A file is deleted (FILE_DELETE, the manager's DELETE /files/<id>, the
 * collector of expired files).
 * KEYS: the file (file:{<id>}; its ":refs" and ":readers" go with it).
 * ARGV: the file id, the owner it must have ("" for any), the key prefix
 * (the owner's keys, the content's count and the {files} keys are named
 * from the record).
 * A stored file ("ready") gives its bytes back to the owner's quota and
 * one count of its content (blob:{<sha256>}); the content that no record
 * names any more goes to {files}:unlink, and its bytes off
 * {files}:stats.  A slot is simply dropped.
 * 1 deleted; 0 no such file; -1 another owner; -2 an upload is under
 * way ("uploading": the files location holds it, try again).
 */

#define NGX_FISHCHAT_LUA_FILE_DELETE                                         \
    "local P, K, id = ARGV[3], KEYS[1], ARGV[1] "                            \
    "local f = redis.call('HMGET', K, 'owner', 'state', 'size', 'sha256') "  \
    "if not f[1] then return 0 end "                                         \
    "if ARGV[2] ~= '' and ARGV[2] ~= f[1] then return -1 end "               \
    "if f[2] == 'uploading' then return -2 end "                             \
    NGX_FISHCHAT_LUA_FILE_DROP                                               \
    "return 1"

/*
 * The part of a deletion the collector shares (its script judges first):
 * with P the key prefix, K the file's key, id its id, f its owner, state,
 * size and sha256.
 */

#define NGX_FISHCHAT_LUA_FILE_DROP                                           \
    "local o = P .. 'files:{' .. f[1] .. '}' "                               \
    "if f[2] == 'ready' then "                                               \
        "local size = tonumber(f[3]) or 0 "                                  \
        "local st = P .. '{files}:stats' "                                   \
        "if redis.call('HINCRBY', o, 'used', -size) < 0 then "               \
            "redis.call('HSET', o, 'used', 0) "                              \
        "end "                                                               \
        "if f[4] then "                                                      \
            "local b = P .. 'blob:{' .. f[4] .. '}' "                        \
            "if redis.call('DECR', b) <= 0 then "                            \
                "redis.call('DEL', b) "                                      \
                "redis.call('SADD', P .. '{files}:unlink', f[4]) "           \
                "redis.call('HINCRBY', st, 'bytes', -size) "                 \
            "end "                                                           \
        "end "                                                               \
        "redis.call('HINCRBY', st, 'files', -1) "                            \
    "end "                                                                   \
    "redis.call('DEL', K, K .. ':refs', K .. ':readers') "                   \
    "redis.call('SREM', o .. ':ids', id) "                                   \
    "redis.call('ZREM', P .. '{files}:expiry', id) "


/*
 * A stream is made (MEDIA_PUBLISH, POST /media/streams).
 * KEYS: the topic, its members (both unused for a peer), the stream.
 * ARGV: sender, target, creation time (Unix ms), how long the stream is
 * remembered (s).  1 when made; -1 no such topic; -2 not a member.
 */

#define NGX_FISHCHAT_LUA_MEDIA_PUBLISH                                       \
    "if string.sub(ARGV[2], 1, 6) == 'topic:' then "                         \
        "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end "          \
        "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then "              \
            "return -2 "                                                     \
        "end "                                                               \
    "end "                                                                   \
    "redis.call('HSET', KEYS[3], 'target', ARGV[2], 'from', ARGV[1], "       \
               "'created', ARGV[3]) "                                        \
    "redis.call('EXPIRE', KEYS[3], ARGV[4]) "                                \
    "return 1"


/*
 * A live notice to a stream's conversation (the media role): the stream
 * went live, ended, or its recording is ready.  KEYS: the stream.  ARGV:
 * the key prefix, a uuid, the history cap, the system channel of topic
 * messages, LIVE, ENDED or RECORDING, the stream, its URL (without a
 * token: the HLS playlist or the MP4), the inbox max and ttl (ms), the
 * system channels of 1:1 messages and of client events, and for a
 * recording its bytes and seconds (kept in the stream's record: MEDIA_PLAY
 * hands out the MP4 from then on).
 * The text is the opt-in frame's words, a newline, and the text seed
 * clients get.  A topic's stream: a topic message from "{media}" (no
 * client id has braces); its sequence number.  A peer's stream: a 1:1
 * message from "{media}" in the inbox of either peer, the frame as
 * ngx_fishchat_frame_write makes it; 1.  0 for no such stream.
 */

#define NGX_FISHCHAT_LUA_MEDIA_NOTICE                                        \
    "local m = redis.call('HMGET', KEYS[1], 'target', 'from', 'started') "   \
    "if not m[1] then return 0 end "                                         \
    "local now = tonumber(redis.call('TIME')[1]) "                           \
    "local head = ' ' .. m[1] .. ' ' .. ARGV[6] .. ' ' .. m[2] .. ' ' "      \
    "local text "                                                            \
    "if ARGV[5] == 'LIVE' then "                                             \
        "redis.call('HSET', KEYS[1], 'started', now) "                       \
        "text = 'MEDIA_LIVE' .. head .. ARGV[7] .. '\\n' .. m[2] "           \
               ".. ' is live: ' .. ARGV[7] "                                 \
    "elseif ARGV[5] == 'ENDED' then "                                        \
        "local d = 0 "                                                       \
        "if m[3] then d = now - tonumber(m[3]) end "                         \
        "text = 'MEDIA_ENDED' .. head .. d .. '\\n' .. m[2] "                \
               ".. ' is no longer live (' .. d .. ' s)' "                    \
    "else "                                                                  \
        "redis.call('HSET', KEYS[1], 'recording', ARGV[12], "                \
                   "'duration', ARGV[13]) "                                  \
        "text = 'MEDIA_RECORDING' .. head .. ARGV[7] .. ' ' .. ARGV[13] "    \
               ".. ' ' .. ARGV[12] .. '\\n' .. m[2] .. ' recorded ' "        \
               ".. ARGV[13] .. ' s: ' .. ARGV[7] "                           \
    "end "                                                                   \
    "if string.sub(m[1], 1, 6) == 'topic:' then "                            \
        "local name = string.sub(m[1], 7) "                                  \
        "local function send(KEYS, ARGV) "                                   \
            NGX_FISHCHAT_LUA_TOPIC_SEND                                      \
        " end "                                                              \
        "local k = ARGV[1] .. 'topic:{' .. name .. '}' "                     \
        "return send({k, k .. ':members', k .. ':h'}, "                      \
                    "{'{media}', ARGV[2], text, ARGV[3], "                   \
                     "ARGV[1] .. 't:{' .. name .. '}', ARGV[4], name, '1'}) "\
    "end "                                                                   \
    "local j = '{\"CmdName\":\"RESP_MESSAGE_P2P\",\"Args\":[' "              \
              ".. cjson.encode(text) .. ',\"{media}\",' "                    \
              ".. cjson.encode(ARGV[2]) .. ']}\\n' "                         \
    "local f = struct.pack('>I4', #j) .. j "                                 \
    "local function send(KEYS, ARGV) "                                       \
        NGX_FISHCHAT_LUA_SEND                                                \
    " end "                                                                  \
    "for _, id in ipairs({string.sub(m[1], 5), m[2]}) do "                   \
        "local k = ARGV[1] .. 'inbox:{' .. id .. '}' "                       \
        "send({k, k .. ':m', ARGV[1] .. 'client:{' .. id .. '}'}, "          \
             "{ARGV[2], f, ARGV[8], ARGV[9], '', id, ARGV[10], '{media}', "  \
              "ARGV[11]}) "                                                  \
    "end "                                                                   \
    "return 1"


#endif /* _NGX_FISHCHAT_LUA_H_INCLUDED_ */
