-- Records as the Rust `evtx` parser renders them (also `evtx_dump -o jsonl`) -> one row per record:
-- the System fields and Doc, the record's JSON text. Each record is parsed once here, for its System
-- fields only; its data is read from Doc by the `events` layer (winlog/sql.py: Data, the named data
-- as JSON, M, the same as a map of texts, DataList, positional data) for the rows a mapping selects.
-- events.sql adds Kind (which family of mappings applies) and ReportId. Records that are not events
-- (is_event false) are kept, counted and skipped by the engine: a filter here would parse twice.
-- Input `_exhunt_rawbatch`: _exhunt_part, _exhunt_seq, _record, data (the record's JSON text),
-- header_time (the record header's time), fallback_id (the file's name), _what (what a record of
-- the input is called).
-- System values that are objects ({"#text": 4688, "#attributes": {...}}, as in forwarded events)
-- come as their JSON text and are unwrapped by win_text.
WITH doc AS (
    SELECT _exhunt_part, _exhunt_seq, _record, header_time, fallback_id, _what, data,
           try(from_json(data, '{"Event": {"System": {"Channel": "VARCHAR", "Computer": "VARCHAR",
               "Provider": {"#attributes": {"Name": "VARCHAR"}}, "EventID": "VARCHAR", "Level": "VARCHAR",
               "Task": "VARCHAR", "Opcode": "VARCHAR", "Version": "VARCHAR", "Keywords": "VARCHAR",
               "EventRecordID": "VARCHAR", "TimeCreated": {"#attributes": {"SystemTime": "VARCHAR"}},
               "Security": {"#attributes": {"UserID": "VARCHAR"}}},
               "RenderingInfo": {"Message": "VARCHAR"}}}')).Event AS e
    FROM _exhunt_rawbatch
)
SELECT _exhunt_part, _exhunt_seq, _record,
       e.System IS NOT NULL AS is_event,
       coalesce(e.System.Channel, '') AS Channel,
       coalesce(e.System.Provider."#attributes".Name, '') AS Provider,
       CAST(win_int(win_text(e.System.EventID)) AS INTEGER) AS EventID,
       win_int(win_text(e.System.Level)) AS Level,
       win_int(win_text(e.System.Task)) AS Task,
       win_int(win_text(e.System.Opcode)) AS Opcode,
       win_int(win_text(e.System.Version)) AS Version,
       coalesce(win_text(e.System.Keywords), '') AS Keywords,
       win_int(win_text(e.System.EventRecordID)) AS RecordId,
       coalesce(e.System.Computer, '') AS Computer,
       CASE WHEN coalesce(e.System.TimeCreated."#attributes".SystemTime, '') <> ''
                 THEN e.System.TimeCreated."#attributes".SystemTime
            WHEN coalesce(header_time, '') <> '' AND NOT starts_with(header_time, '1601-01-01')
                 THEN regexp_replace(header_time, ' UTC$', '')
            ELSE '' END AS Time,
       coalesce(e.System.Security."#attributes".UserID, '') AS UserSid,
       coalesce(e.RenderingInfo.Message, '') AS Message,
       data AS Doc,
       fallback_id, _what
FROM doc
