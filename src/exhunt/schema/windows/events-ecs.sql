-- Winlogbeat / Elastic Agent documents (ECS: winlog.channel, winlog.event_data.*, ...), one per
-- line -> the columns of events-evtx.sql, by the rules of exhunt/winlog/forms.py (from_ecs): an
-- Elasticsearch hit is read from its `_source`; the event id is winlog.event_id, else event.code;
-- the level a name (winlog.level, else log.level); the computer winlog.computer_name, else
-- host.name; the time winlog.time_created, else @timestamp ("a, else b" as Python's `a or b`).
-- Doc is the event's data alone, in brackets (see winlog/sql.py, events_view): '[{...}]' named
-- (winlog.event_data, else winlog.user_data), '[["v1", ...]]' by_position when every event_data
-- key is paramN (values in N order), NULL without data; records that are not events keep their text.
-- is_event NULL hands a record to the Python path (forms.from_ecs; its rows come back with these
-- columns): invalid JSON, or JSON Python refuses and DuckDB reads, a key written twice,
-- flattened keys ("winlog.channel"), System values Python writes its own way (objects,
-- fractions) and paramN keys or values only Python reads the same way. Few records are so.
WITH outer_doc AS (
    SELECT _exhunt_part, _exhunt_seq, _record, fallback_id, _what, data,
           try(json_keys(data)) AS k0
    FROM _exhunt_rawbatch
), hit AS (  -- an Elasticsearch hit ({"_index": .., "_source": {the document}})
    SELECT *, CASE WHEN list_contains(k0, '_source') THEN try(json_extract(data, '$._source'))::VARCHAR END AS s
    FROM outer_doc
), doc AS (
    SELECT *, coalesce(left(s, 1) = '{', false) AS is_hit,
           CASE WHEN left(s, 1) = '{' THEN s ELSE data END AS doc,
           CASE WHEN left(s, 1) = '{' THEN try(json_keys(s)) ELSE k0 END AS k
    FROM hit
), parsed AS (
    SELECT *, try(from_json(doc, '{"winlog": {"channel": "JSON", "provider_name": "JSON", "event_id": "JSON",
               "record_id": "VARCHAR", "task": "VARCHAR", "version": "VARCHAR", "level": "JSON",
               "computer_name": "JSON", "time_created": "JSON", "user": {"identifier": "JSON"},
               "event_data": "JSON", "user_data": "JSON"},
               "event": {"code": "VARCHAR"}, "log": {"level": "JSON"}, "host": {"name": "JSON"},
               "@timestamp": "JSON", "message": "JSON"}')) AS d
    FROM doc
), fields AS (
    SELECT *, d.winlog AS w,
           -- winlog is an object: some field read, else (rare) its type
           CASE WHEN d.winlog IS NULL THEN false
                WHEN coalesce(d.winlog.channel, d.winlog.provider_name, d.winlog.event_id, d.winlog.record_id,
                              d.winlog.task, d.winlog.version, d.winlog.level, d.winlog.computer_name,
                              d.winlog.time_created, d.winlog.event_data, d.winlog.user_data) IS NOT NULL
                     OR d.winlog.user IS NOT NULL THEN true
                ELSE try(json_type(doc, '$.winlog')) = 'OBJECT' END AS has_winlog,
           win_or(d.winlog.computer_name, d.host.name) AS computer_j,
           win_or(d.winlog.time_created, d."@timestamp") AS time_j,
           left(d.winlog.event_data, 1) = '{' AND d.winlog.event_data <> '{}' AS has_ed
    FROM parsed
), data_keys AS (
    SELECT *,
           CASE WHEN has_ed THEN try(json_keys(w.event_data))
                WHEN left(w.user_data, 1) = '{' THEN try(json_keys(w.user_data)) END AS dk
    FROM fields
), shaped AS (
    SELECT *,
           has_ed AND list_bool_and(list_transform(dk, lambda x: starts_with(x, 'param'))) AS param_like,
           has_ed AND list_bool_and(list_transform(dk, lambda x: regexp_full_match(x, 'param[0-9]+'))) AS by_position
    FROM data_keys
), valued AS (
    SELECT *, CASE WHEN by_position THEN map_values(TRY_CAST(w.event_data AS MAP(VARCHAR, JSON))) END AS pv
    FROM shaped
), listed AS (
    SELECT *,
           CASE WHEN by_position THEN list_transform(
                    list_sort(list_transform(dk, lambda x, i: {len: length(ltrim(substr(x, 6), '0')),
                                                               num: ltrim(substr(x, 6), '0'), i: i})),
                    lambda x: win_jtext(pv[x.i]))
           END AS vals
    FROM valued
), judged AS (
    SELECT *,
           CASE WHEN k0 IS NULL OR d IS NULL OR win_lenient(data) OR len(k0) <> len(list_distinct(k0)) THEN NULL
                WHEN NOT starts_with(ltrim(data, E' \t\r\n'), '{') THEN false
                WHEN k IS NULL OR len(k) <> len(list_distinct(k))
                     OR len(list_filter(k, lambda x: contains(x, '.') AND split_part(x, '.', 1) IN
                                            ('winlog', 'event', 'log', 'host', '@timestamp', 'message'))) > 0 THEN NULL
                WHEN NOT has_winlog THEN false
                WHEN win_jtext(w.channel) IS NULL OR win_jtext(w.provider_name) IS NULL
                     OR win_jtext(computer_j) IS NULL OR win_jtext(time_j) IS NULL
                     OR win_jtext(w.user.identifier) IS NULL OR win_jtext(d.message) IS NULL
                     OR (dk IS NULL AND (has_ed OR left(w.user_data, 1) = '{'))
                     OR len(dk) <> len(list_distinct(dk))
                     OR (param_like AND NOT by_position)
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
