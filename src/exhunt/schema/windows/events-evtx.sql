-- Records as the Rust `evtx` parser renders them (also `evtx_dump -o json`) -> one row per record:
-- the System fields, the event's data (named: Data, a JSON object, and M, the same as a map of
-- texts; positional: DataList) and Kind, which family of mappings applies. Every mapping file
-- beside this one reads these rows as `events`.
-- Input `_exhunt_rawbatch`: _exhunt_part, _exhunt_seq, _record, data (the record's JSON text),
-- header_time (the record header's time), fallback_id (the file's name).
WITH doc AS (
    SELECT _exhunt_part, _exhunt_seq, _record, header_time, fallback_id,
           from_json(TRY_CAST(data AS JSON),
                     '{"Event": {"System": "JSON", "EventData": "JSON", "UserData": "JSON", "RenderingInfo": "JSON"}}'
           ).Event AS e
    FROM _exhunt_rawbatch
), sys AS (
    SELECT *,
           left(e.System, 1) = '{' AS is_event,
           from_json(e.System, '{"Channel": "VARCHAR", "Computer": "VARCHAR",
               "Provider": {"#attributes": {"Name": "VARCHAR"}}, "EventID": "JSON", "Level": "JSON",
               "Task": "JSON", "Opcode": "JSON", "Version": "JSON", "Keywords": "JSON", "EventRecordID": "JSON",
               "TimeCreated": {"#attributes": {"SystemTime": "VARCHAR"}}, "Security": {"#attributes": {"UserID": "VARCHAR"}}}'
           ) AS s,
           -- EventData, else UserData (its one inner element when it wraps one object).
           CASE WHEN coalesce(e.EventData, 'null') <> 'null' THEN e.EventData
                WHEN left(e.UserData, 1) = '{' AND len(json_keys(e.UserData)) = 1
                     AND json_type(e.UserData, '$.*') = ['OBJECT'] THEN (e.UserData -> '$.*')[1]
                ELSE e.UserData END AS ed
    FROM doc
), keyed AS (
    SELECT *, CASE WHEN left(ed, 1) = '{' THEN json_keys(ed) END AS ed_keys FROM sys
), shaped AS (
    SELECT *,
           -- Unnamed <Data> elements (alone, or beside <Binary>) are positional; named ones a map.
           list_contains(ed_keys, 'Data')
               AND (len(ed_keys) = 1 OR (len(ed_keys) = 2 AND list_contains(ed_keys, 'Binary')))
               AND coalesce(json_type(ed, '$.Data'), 'NULL') <> 'NULL' AS by_position
    FROM keyed
), scalar AS (
    SELECT *, CASE WHEN by_position THEN
                   CASE WHEN json_type(ed, '$.Data') = 'OBJECT' THEN ed -> '$.Data."#text"' ELSE ed -> '$.Data' END
              END AS pdata
    FROM shaped
)
SELECT _exhunt_part, _exhunt_seq, _record, is_event,
       coalesce(s.Channel, '') AS Channel,
       coalesce(s.Provider."#attributes".Name, '') AS Provider,
       win_int(CASE WHEN json_type(s.EventID) = 'OBJECT' THEN s.EventID ->> '$."#text"' ELSE s.EventID ->> '$' END) AS EventID,
       win_int(CASE WHEN json_type(s.Level) = 'OBJECT' THEN s.Level ->> '$."#text"' ELSE s.Level ->> '$' END) AS Level,
       win_int(CASE WHEN json_type(s.Task) = 'OBJECT' THEN s.Task ->> '$."#text"' ELSE s.Task ->> '$' END) AS Task,
       win_int(CASE WHEN json_type(s.Opcode) = 'OBJECT' THEN s.Opcode ->> '$."#text"' ELSE s.Opcode ->> '$' END) AS Opcode,
       win_int(CASE WHEN json_type(s.Version) = 'OBJECT' THEN s.Version ->> '$."#text"' ELSE s.Version ->> '$' END) AS Version,
       coalesce(CASE WHEN json_type(s.Keywords) = 'OBJECT' THEN s.Keywords ->> '$."#text"' ELSE s.Keywords ->> '$' END, '')
           AS Keywords,
       win_int(CASE WHEN json_type(s.EventRecordID) = 'OBJECT' THEN s.EventRecordID ->> '$."#text"'
                    ELSE s.EventRecordID ->> '$' END) AS RecordId,
       coalesce(s.Computer, '') AS Computer,
       CASE WHEN coalesce(s.TimeCreated."#attributes".SystemTime, '') <> '' THEN s.TimeCreated."#attributes".SystemTime
            WHEN coalesce(header_time, '') <> '' AND NOT starts_with(header_time, '1601-01-01')
                 THEN regexp_replace(header_time, ' UTC$', '')
            ELSE '' END AS Time,
       coalesce(s.Security."#attributes".UserID, '') AS UserSid,
       CASE WHEN json_type(e.RenderingInfo) = 'OBJECT' THEN coalesce(e.RenderingInfo ->> '$.Message', '') ELSE '' END
           AS Message,
       CASE WHEN ed_keys IS NOT NULL AND NOT by_position THEN
            CASE WHEN list_contains(ed_keys, '#attributes') THEN json_merge_patch(ed, '{"#attributes": null}')
                 ELSE ed END
       END AS Data,
       CASE WHEN by_position THEN
                 CASE WHEN json_type(pdata) = 'ARRAY'
                      THEN list_transform(json_extract_string(pdata, '$[*]'), lambda v: coalesce(v, ''))
                      ELSE [coalesce(pdata ->> '$', '')] END
            WHEN left(ed, 1) = '"' AND ed ->> '$' <> '' THEN [ed ->> '$']
       END AS DataList,
       fallback_id
FROM scalar
