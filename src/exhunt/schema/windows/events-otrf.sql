-- OTRF Security-Datasets / NXLog flat records (Channel, EventID, Hostname, ... and the event's data
-- side by side at the top level), one per line -> the columns of events-evtx.sql, by the rules of
-- exhunt/winlog/forms.py (from_otrf): the provider is SourceName, else Provider, else
-- EventSourceName; the record number RecordNumber, else EventRecordID; the computer Hostname, else
-- Computer; the time TimeCreated, else @timestamp, else EventTime ("a, else b" as Python's `a or b`).
-- The data is every top-level key but the collector's and System ones (forms.OTRF_META: the keys
-- the patch below removes), in record order. NXLog writes its own EventType (INFO, AUDIT_SUCCESS,
-- ...), which is dropped; for Sysmon 12-14 the registry EventType is read back from the message.
-- Doc is that data in brackets, '[{...}]' (see winlog/sql.py, events_view), NULL without data;
-- records that are not events keep their text.
-- is_event NULL hands a record to the Python path (forms.from_otrf; its rows come back with these
-- columns): invalid JSON (for Python: a comma before a bracket too), System values Python writes
-- its own way (objects, fractions), and data only as EventData XML text. Few records are so.
WITH parsed AS (
    SELECT _exhunt_part, _exhunt_seq, _record, fallback_id, _what, data,
           try(from_json(data, '{"Channel": "JSON", "SourceName": "JSON", "Provider": "JSON",
               "EventSourceName": "JSON", "EventID": "VARCHAR", "Level": "VARCHAR", "Task": "VARCHAR",
               "Version": "VARCHAR", "Keywords": "JSON", "RecordNumber": "JSON", "EventRecordID": "JSON",
               "Hostname": "JSON", "Computer": "JSON", "TimeCreated": "JSON", "@timestamp": "JSON",
               "EventTime": "JSON", "UserID": "JSON", "Message": "JSON", "EventType": "JSON",
               "EventData": "JSON"}')) AS d
    FROM _exhunt_rawbatch
), fields AS (
    SELECT *,
           -- an object with the keys Channel and EventID (their values may be null: then its keys tell)
           d IS NOT NULL
               AND CASE WHEN starts_with(data, '{') THEN true ELSE starts_with(ltrim(data, E' \t\r\n'), '{') END
               AND CASE WHEN d.Channel IS NOT NULL AND d.EventID IS NOT NULL THEN true
                        ELSE coalesce(list_has_all(try(json_keys(data)), ['Channel', 'EventID']), false) END AS flat_event,
           win_or(win_or(d.SourceName, d.Provider), d.EventSourceName) AS provider_j,
           win_or(d.Hostname, d.Computer) AS computer_j,
           win_or(win_or(d.TimeCreated, d."@timestamp"), d.EventTime) AS time_j,
           TRY_CAST(win_int(d.EventID) AS INTEGER) AS event_id,
           coalesce(win_jtext(d.EventType) IN
               ('INFO', 'AUDIT_SUCCESS', 'AUDIT_FAILURE', 'WARNING', 'ERROR', 'CRITICAL', 'VERBOSE'), false) AS nxlog_type
    FROM parsed
), meta_less AS (
    SELECT *,
           CASE WHEN flat_event THEN json_merge_patch(data, '{"@version": null, "@timestamp": null, "tags": null,
               "host": null, "port": null, "Hostname": null, "SourceName": null, "ProviderGuid": null,
               "Channel": null, "EventID": null, "Version": null, "Task": null, "OpcodeValue": null, "Opcode": null,
               "Level": null, "Keywords": null, "EventTime": null, "EventReceivedTime": null, "RecordNumber": null,
               "Severity": null, "SeverityValue": null, "ExecutionProcessID": null, "ThreadID": null, "Domain": null,
               "AccountName": null, "UserID": null, "AccountType": null, "Message": null, "SourceModuleName": null,
               "SourceModuleType": null, "Category": null, "ActivityID": null, "RelatedActivityID": null,
               "TimeCreated": null, "Provider": null, "EventRecordID": null, "Computer": null,
               "TimeGenerated": null, "EventSourceName": null, "EventData": null, "ERROR_EVT_UNRESOLVED": null,
               "Qualifiers": null}') END AS data0,
           -- the registry EventType of Sysmon 12-14, read back from the message NXLog rendered
           CASE WHEN nxlog_type AND event_id IN (12, 13, 14) AND win_jtext(d.Message) <> ''
                     AND regexp_matches(win_jtext(d.Message), '(?m)^EventType: ')
                THEN regexp_extract(win_jtext(d.Message), '(?m)^EventType: (.*?)\r?$', 1) END AS registry_type
    FROM fields
), event_data AS (
    SELECT *,
           CASE WHEN registry_type IS NOT NULL
                     THEN json_merge_patch(json_merge_patch(data0, '{"EventType": null}'),
                                           json_object('EventType', registry_type))
                WHEN nxlog_type THEN json_merge_patch(data0, '{"EventType": null}')
                ELSE data0 END AS event_data
    FROM meta_less
), judged AS (
    SELECT *,
           CASE WHEN d IS NULL OR win_lenient(data) THEN NULL
                WHEN NOT flat_event THEN false
                WHEN win_jtext(d.Channel) IS NULL OR win_jtext(provider_j) IS NULL OR win_jtext(d.Keywords) IS NULL
                     OR win_jtext(computer_j) IS NULL OR win_jtext(time_j) IS NULL OR win_jtext(d.UserID) IS NULL
                     OR win_jtext(d.Message) IS NULL
                     OR (event_data = '{}' AND left(d.EventData, 1) = '"') THEN NULL
                ELSE true END AS is_event
    FROM event_data
)
SELECT _exhunt_part, _exhunt_seq, _record, is_event,
       coalesce(win_jtext(d.Channel), '') AS Channel,
       coalesce(win_jtext(provider_j), '') AS Provider,
       event_id AS EventID,
       win_int(d.Level) AS Level,
       win_int(d.Task) AS Task,
       NULL::BIGINT AS Opcode,
       win_int(d.Version) AS Version,
       coalesce(win_jtext(d.Keywords), '') AS Keywords,
       win_int(win_jtext(win_or(d.RecordNumber, d.EventRecordID))) AS RecordId,
       coalesce(win_jtext(computer_j), '') AS Computer,
       coalesce(win_jtext(time_j), '') AS Time,
       coalesce(win_jtext(d.UserID), '') AS UserSid,
       coalesce(win_jtext(d.Message), '') AS Message,
       CASE WHEN is_event IS NOT true THEN data WHEN event_data <> '{}' THEN '[' || event_data || ']' END AS Doc,
       fallback_id, _what
FROM judged
