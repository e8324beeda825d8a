-- table: DeviceProcessEvents
-- Sysmon 1 (process creation) -> ProcessCreated. Sysmon fields Defender has no column for
-- go to AdditionalFields.
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       'ProcessCreated' AS ActionType,
       win_basename(M['Image']) AS FileName,
       coalesce(M['Image'], '') AS FolderPath,
       win_hash(M['Hashes'], 'SHA1') AS SHA1,
       win_hash(M['Hashes'], 'SHA256') AS SHA256,
       win_hash(M['Hashes'], 'MD5') AS MD5,
       M['Company'] AS ProcessVersionInfoCompanyName,
       M['Product'] AS ProcessVersionInfoProductName,
       M['FileVersion'] AS ProcessVersionInfoProductVersion,
       M['OriginalFileName'] AS ProcessVersionInfoOriginalFileName,
       M['Description'] AS ProcessVersionInfoFileDescription,
       win_int(M['ProcessId']) AS ProcessId,
       M['CommandLine'] AS ProcessCommandLine,
       M['IntegrityLevel'] AS ProcessIntegrityLevel,
       win_sysmon_time(M['UtcTime']) AS ProcessCreationTime,
       win_domain(M['User']) AS AccountDomain,
       win_user(M['User']) AS AccountName,
       win_int(M['LogonId']) AS LogonId,
       win_domain(M['ParentUser']) AS InitiatingProcessAccountDomain,
       win_user(M['ParentUser']) AS InitiatingProcessAccountName,
       win_basename(M['ParentImage']) AS InitiatingProcessFileName,
       coalesce(M['ParentImage'], '') AS InitiatingProcessFolderPath,
       win_int(M['ParentProcessId']) AS InitiatingProcessId,
       M['ParentCommandLine'] AS InitiatingProcessCommandLine,
       win_bag([win_pair('ProcessGuid', M['ProcessGuid']), win_pair('ParentProcessGuid', M['ParentProcessGuid']),
                win_pair('LogonGuid', M['LogonGuid']), win_pair('CurrentDirectory', M['CurrentDirectory']),
                win_pair('TerminalSessionId', M['TerminalSessionId']), win_pair('RuleName', M['RuleName'])])
           AS AdditionalFields,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM events
WHERE Kind IN ('sysmon', 'sysmon-in-security') AND EventID = 1
