-- table: DeviceRegistryEvents
-- Sysmon 12 (key or value created/deleted), 13 (value set), 14 (key or value renamed). Value
-- events split the full path into RegistryKey and RegistryValueName; hive names are written out.
WITH r AS (
    SELECT *,
           coalesce(CASE M['EventType'] WHEN 'CreateKey' THEN 'RegistryKeyCreated' WHEN 'DeleteKey' THEN 'RegistryKeyDeleted'
                        WHEN 'DeleteValue' THEN 'RegistryValueDeleted' WHEN 'SetValue' THEN 'RegistryValueSet'
                        WHEN 'RenameKey' THEN 'RegistryKeyRenamed' END,
                    CASE EventID WHEN 13 THEN 'RegistryValueSet' WHEN 14 THEN 'RegistryKeyRenamed'
                         ELSE 'RegistryKeyCreated' END) AS action,
           win_registry_key(M['TargetObject']) AS target
    FROM events
    WHERE Kind IN ('sysmon', 'sysmon-in-security') AND EventID IN (12, 13, 14)
)
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       action AS ActionType,
       CASE WHEN action IN ('RegistryValueSet', 'RegistryValueDeleted')
                 THEN CASE WHEN strpos(target, '\') > 0 THEN regexp_extract(target, '^(.*)\\[^\\]*$', 1) ELSE '' END
            WHEN action = 'RegistryKeyRenamed' THEN win_registry_key(M['NewName'])
            ELSE target END AS RegistryKey,
       CASE WHEN action IN ('RegistryValueSet', 'RegistryValueDeleted')
                 THEN CASE WHEN strpos(target, '\') > 0 THEN regexp_extract(target, '[^\\]*$') ELSE target END
            ELSE '' END AS RegistryValueName,
       CASE WHEN action = 'RegistryValueSet' THEN coalesce(M['Details'], '') END AS RegistryValueData,
       CASE WHEN action = 'RegistryValueSet' THEN
            CASE WHEN starts_with(coalesce(M['Details'], ''), 'DWORD') THEN 'Dword'
                 WHEN starts_with(coalesce(M['Details'], ''), 'QWORD') THEN 'Qword'
                 WHEN starts_with(coalesce(M['Details'], ''), 'Binary Data') THEN 'Binary' ELSE '' END END
           AS RegistryValueType,
       CASE WHEN action = 'RegistryKeyRenamed' THEN target END AS PreviousRegistryKey,
       coalesce(M['Image'], '') AS InitiatingProcessFolderPath,
       win_basename(M['Image']) AS InitiatingProcessFileName,
       win_int(M['ProcessId']) AS InitiatingProcessId,
       win_domain(M['User']) AS InitiatingProcessAccountDomain,
       win_user(M['User']) AS InitiatingProcessAccountName,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM r
