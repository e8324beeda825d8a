-- Winlogbeat / Elastic Agent documents (ECS: winlog.channel, winlog.event_data.*, ...), one per
-- line -> the columns of events-evtx.sql, by the rules of exhunt/winlog/forms.py (from_ecs): an
-- Elasticsearch hit is read from its `_source`; the event id is winlog.event_id, else event.code;
-- the level a name (winlog.level, else log.level); the computer winlog.computer_name, else
-- host.name; the time winlog.time_created, else @timestamp ("a, else b" as Python's `a or b`).
-- Doc is the event's data alone, in brackets (see winlog/sql.py, events_view): '[{...}]' named
-- (winlog.event_data, else winlog.user_data), '[["v1", ...]]' positional when every event_data
-- key is paramN (values in N order), NULL without data; records that are not events keep their text.
-- is_event NULL hands a record to the Python path (forms.from_ecs; its rows come back with these
-- columns): invalid JSON (for Python: a comma before a bracket too), flattened keys
-- ("winlog.channel": Python's rules for them are its own), System values Python writes its own
-- way (objects, fractions), and paramN data only Python reads the same way (a key twice, a value
-- not a text). Few records are so.
WITH keyed AS (
    SELECT _exhunt_part, _exhunt_seq, _record, fallback_id, _what, data, try(json_keys(data)) AS k
    FROM _exhunt_rawbatch
), doc AS (  -- an Elasticsearch hit ({"_index": .., "_source": {the document}}): the document
    SELECT *, CASE WHEN list_contains(k, '_source') THEN try(json_extract(data, '$._source'))::VARCHAR END AS s
    FROM keyed
), parsed AS (
    SELECT *, left(s, 1) = '{' AS is_hit,
           try(from_json(CASE WHEN left(s, 1) = '{' THEN s ELSE data END,
               '{"winlog": {"channel": "JSON", "provider_name": "JSON", "event_id": "JSON",
               "record_id": "VARCHAR", "task": "VARCHAR", "version": "VARCHAR", "level": "JSON",
               "computer_name": "JSON", "time_created": "JSON", "user": {"identifier": "JSON"},
               "event_data": "JSON", "user_data": "JSON"},
               "event": {"code": "VARCHAR"}, "log": {"level": "JSON"}, "host": {"name": "JSON"},
               "@timestamp": "JSON", "message": "JSON"}')) AS d
    FROM doc
), fields AS (
    SELECT *, d.winlog AS w,
           -- flattened keys: {"winlog.channel": ..} for {"winlog": {"channel": ..}}
           regexp_matches(array_to_string(CASE WHEN is_hit THEN try(json_keys(s)) ELSE k END, chr(10)),
                          '(?m)^(winlog|event|log|host|@timestamp|message)\.') AS flattened,
           -- winlog is an object: some field is read, else (rare) its type says so
           CASE WHEN d.winlog IS NULL THEN false
                WHEN d.winlog.user IS NOT NULL OR d.winlog.record_id IS NOT NULL OR d.winlog.task IS NOT NULL
                     OR d.winlog.version IS NOT NULL
                     OR coalesce(d.winlog.channel, d.winlog.provider_name, d.winlog.event_id, d.winlog.level,
                                 d.winlog.computer_name, d.winlog.time_created, d.winlog.event_data,
                                 d.winlog.user_data) IS NOT NULL THEN true
                ELSE try(json_type(CASE WHEN is_hit THEN s ELSE data END, '$.winlog')) = 'OBJECT' END AS has_winlog,
           win_or(d.winlog.computer_name, d.host.name) AS computer_j,
           win_or(d.winlog.time_created, d."@timestamp") AS time_j,
           left(d.winlog.event_data, 1) = '{' AND d.winlog.event_data <> '{}' AS has_ed
    FROM parsed
), numbered AS (  -- paramN keys, when the first key is one
    SELECT *, CASE WHEN has_ed AND starts_with(w.event_data, '{"param') THEN try(json_keys(w.event_data)) END AS pk
    FROM fields
), shaped AS (
    SELECT *,
           list_bool_and(list_transform(pk, lambda x: regexp_full_match(x, 'param[0-9]+')))
               AND len(pk) = len(list_distinct(pk)) AS by_position,
           CASE WHEN pk IS NOT NULL THEN map_values(TRY_CAST(w.event_data AS MAP(VARCHAR, JSON))) END AS pv
    FROM numbered
), listed AS (
    SELECT *,
           CASE WHEN by_position THEN list_transform(
                    list_sort(list_transform(pk, lambda x, i: {len: length(ltrim(substr(x, 6), '0')),
                                                               num: ltrim(substr(x, 6), '0'), i: i})),
                    lambda x: win_jtext(pv[x.i]))
           END AS vals
    FROM shaped
), judged AS (
    SELECT *,
           CASE WHEN k IS NULL OR d IS NULL OR win_lenient(data) THEN NULL
                WHEN NOT CASE WHEN starts_with(data, '{') THEN true ELSE starts_with(ltrim(data, E' \t\r\n'), '{') END
                     THEN false
                WHEN flattened IS NOT false THEN NULL
                WHEN NOT has_winlog THEN false
                WHEN win_jtext(w.channel) IS NULL OR win_jtext(w.provider_name) IS NULL
                     OR win_jtext(computer_j) IS NULL OR win_jtext(time_j) IS NULL
                     OR win_jtext(w.user.identifier) IS NULL OR win_jtext(d.message) IS NULL
                     OR (pk IS NOT NULL AND list_bool_and(list_transform(pk, lambda x: starts_with(x, 'param')))
                         AND by_position IS NOT true)
                     OR list_contains(list_transform(vals, lambda v: v IS NULL), true) THEN NULL
                ELSE true END AS is_event
    FROM listed
)
SELECT _exhunt_part, _exhunt_seq, _record, is_event,
       coalesce(win_jtext(w.channel), '') AS Channel,
       coalesce(win_jtext(w.provider_name), '') AS Provider,
       TRY_CAST(win_int(CASE WHEN win_truthy(w.event_id) THEN win_jtext(w.event_id) ELSE d.event.code END) AS INTEGER)
           AS EventID,
       CASE lower(win_jtext(win_or(w.level, d.log.level)))
            WHEN 'critical' THEN 1 WHEN 'error' THEN 2 WHEN 'warning' THEN 3 WHEN 'information' THEN 4
            WHEN 'info' THEN 4 WHEN 'verbose' THEN 5 WHEN '1' THEN 1 WHEN '2' THEN 2 WHEN '3' THEN 3
            WHEN '4' THEN 4 WHEN '5' THEN 5 WHEN '0' THEN 0 END::BIGINT AS Level,
       CASE WHEN regexp_full_match(w.task, '[0-9]+') THEN win_int(w.task) END AS Task,
       NULL::BIGINT AS Opcode,
       win_int(w.version) AS Version,
       '' AS Keywords,
       win_int(w.record_id) AS RecordId,
       coalesce(win_jtext(computer_j), '') AS Computer,
       coalesce(win_jtext(time_j), '') AS Time,
       coalesce(win_jtext(w.user.identifier), '') AS UserSid,
       coalesce(win_jtext(d.message), '') AS Message,
       CASE WHEN is_event IS NOT true THEN data
            WHEN by_position THEN '[' || to_json(vals) || ']'
            WHEN has_ed THEN '[' || w.event_data || ']'
            WHEN left(w.user_data, 1) = '{' AND w.user_data <> '{}' THEN '[' || w.user_data || ']' END AS Doc,
       fallback_id, _what
FROM judged
