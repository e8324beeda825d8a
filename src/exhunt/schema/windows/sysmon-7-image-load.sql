-- table: DeviceImageLoadEvents
-- Sysmon 7 (image loaded) -> ImageLoaded; its signature facts go to DeviceFileCertificateInfo
-- (sysmon-7-certificate.sql), keyed by SHA1 as Defender keeps them.
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       'ImageLoaded' AS ActionType,
       win_basename(M['ImageLoaded']) AS FileName,
       coalesce(M['ImageLoaded'], '') AS FolderPath,
       win_hash(M['Hashes'], 'SHA1') AS SHA1,
       win_hash(M['Hashes'], 'SHA256') AS SHA256,
       win_hash(M['Hashes'], 'MD5') AS MD5,
       coalesce(M['Image'], '') AS InitiatingProcessFolderPath,
       win_basename(M['Image']) AS InitiatingProcessFileName,
       win_int(M['ProcessId']) AS InitiatingProcessId,
       win_domain(M['User']) AS InitiatingProcessAccountDomain,
       win_user(M['User']) AS InitiatingProcessAccountName,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM events
WHERE Kind IN ('sysmon', 'sysmon-in-security') AND EventID = 7
