-- table: Event
-- view: yes
-- Every Windows event -> the Log Analytics Event row (exhunt/winlog/event_table.py). Without a
-- rendered message (EVTX carries none) RenderedDescription lists the event's data, so text
-- searches still find what the message would show.
SELECT Time AS TimeGenerated,
       Provider AS Source,
       Channel AS EventLog,
       Computer,
       CASE WHEN Level = 0 THEN 4 ELSE Level END AS EventLevel,
       CASE WHEN Level IS NULL THEN '' WHEN Level IN (0, 4) THEN 'Information' WHEN Level = 1 THEN 'Critical'
            WHEN Level = 2 THEN 'Error' WHEN Level = 3 THEN 'Warning' WHEN Level = 5 THEN 'Verbose' ELSE '' END
           AS EventLevelName,
       EventID,
       Task AS EventCategory,
       UserSid AS UserName,
       CASE WHEN Message <> '' THEN Message ELSE win_listing(M, DataList) END AS RenderedDescription,
       win_param_xml(M, DataList) AS ParameterXml,
       win_event_data(M, DataList) AS EventData,
       'Event' AS Type,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM events
