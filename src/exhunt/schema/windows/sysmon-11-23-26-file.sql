-- table: DeviceFileEvents
-- Sysmon 11 (file created) -> FileCreated; 23 and 26 (file deleted, archived or not) -> FileDeleted.
-- The process that acted is the initiating process.
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       CASE WHEN EventID = 11 THEN 'FileCreated' ELSE 'FileDeleted' END AS ActionType,
       win_basename(M['TargetFilename']) AS FileName,
       coalesce(M['TargetFilename'], '') AS FolderPath,
       win_hash(M['Hashes'], 'SHA1') AS SHA1,
       win_hash(M['Hashes'], 'SHA256') AS SHA256,
       win_hash(M['Hashes'], 'MD5') AS MD5,
       win_bag([win_pair('CreationUtcTime', M['CreationUtcTime']), win_pair('ProcessGuid', M['ProcessGuid']),
                win_pair('RuleName', M['RuleName']), win_pair('IsExecutable', M['IsExecutable']),
                win_pair('Archived', M['Archived'])]) AS AdditionalFields,
       coalesce(M['Image'], '') AS InitiatingProcessFolderPath,
       win_basename(M['Image']) AS InitiatingProcessFileName,
       win_int(M['ProcessId']) AS InitiatingProcessId,
       win_domain(M['User']) AS InitiatingProcessAccountDomain,
       win_user(M['User']) AS InitiatingProcessAccountName,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM events
WHERE Kind IN ('sysmon', 'sysmon-in-security') AND EventID IN (11, 23, 26)
