-- table: DeviceProcessEvents
-- Security 4688 (a new process) -> ProcessCreated. The creator (Subject) is the initiating
-- process's account; the new process runs as the Target account when the two logons differ
-- (TargetUserSid present), else as the Subject.
WITH p AS (
    SELECT *, coalesce(M['TargetUserSid'], '') IN ('S-1-0-0', '', '-') AS as_subject FROM events
    WHERE Kind = 'security' AND EventID = 4688
)
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       'ProcessCreated' AS ActionType,
       win_basename(M['NewProcessName']) AS FileName,
       coalesce(M['NewProcessName'], '') AS FolderPath,
       win_int(M['NewProcessId']) AS ProcessId,
       coalesce(M['CommandLine'], '') AS ProcessCommandLine,
       CASE coalesce(M['TokenElevationType'], '') WHEN '%%1936' THEN 'TokenElevationTypeDefault'
            WHEN '%%1937' THEN 'TokenElevationTypeFull' WHEN '%%1938' THEN 'TokenElevationTypeLimited'
            ELSE coalesce(M['TokenElevationType'], '') END AS ProcessTokenElevation,
       CASE upper(coalesce(M['MandatoryLabel'], '')) WHEN 'S-1-16-0' THEN 'Untrusted' WHEN 'S-1-16-4096' THEN 'Low'
            WHEN 'S-1-16-8192' THEN 'Medium' WHEN 'S-1-16-8448' THEN 'MediumPlus' WHEN 'S-1-16-12288' THEN 'High'
            WHEN 'S-1-16-16384' THEN 'System' WHEN 'S-1-16-20480' THEN 'Protected'
            ELSE coalesce(M['MandatoryLabel'], '') END AS ProcessIntegrityLevel,
       CASE WHEN win_empty(CASE WHEN as_subject THEN M['SubjectDomainName'] ELSE M['TargetDomainName'] END) THEN ''
            ELSE CASE WHEN as_subject THEN M['SubjectDomainName'] ELSE M['TargetDomainName'] END END AS AccountDomain,
       CASE WHEN win_empty(CASE WHEN as_subject THEN M['SubjectUserName'] ELSE M['TargetUserName'] END) THEN ''
            ELSE CASE WHEN as_subject THEN M['SubjectUserName'] ELSE M['TargetUserName'] END END AS AccountName,
       coalesce(CASE WHEN as_subject THEN M['SubjectUserSid'] ELSE M['TargetUserSid'] END, '') AS AccountSid,
       win_int(CASE WHEN as_subject THEN M['SubjectLogonId'] ELSE M['TargetLogonId'] END) AS LogonId,
       CASE WHEN win_empty(M['SubjectDomainName']) THEN '' ELSE M['SubjectDomainName'] END AS InitiatingProcessAccountDomain,
       CASE WHEN win_empty(M['SubjectUserName']) THEN '' ELSE M['SubjectUserName'] END AS InitiatingProcessAccountName,
       coalesce(M['SubjectUserSid'], '') AS InitiatingProcessAccountSid,
       win_int(M['SubjectLogonId']) AS InitiatingProcessLogonId,
       win_int(M['ProcessId']) AS InitiatingProcessId,
       coalesce(M['ParentProcessName'], '') AS InitiatingProcessFolderPath,
       win_basename(M['ParentProcessName']) AS InitiatingProcessFileName,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM p
