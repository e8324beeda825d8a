-- table: SecurityEvent
-- view: yes
-- fill: EventData
-- Every Security-channel event -> the Log Analytics SecurityEvent row (exhunt/winlog/security.py).
-- The columns below are computed; every other column of the table is the EventData field of its
-- name (`-- fill`: M passes through for that). Account is the target account, else the subject;
-- LogonTypeName is "<number> - <name>"; EventData is the same XML as the Event row's.
WITH a AS (
    SELECT *,
           CASE WHEN win_empty(M['SubjectUserName']) THEN ''
                WHEN win_empty(M['SubjectDomainName']) THEN M['SubjectUserName']
                ELSE M['SubjectDomainName'] || '\' || M['SubjectUserName'] END AS subject,
           CASE WHEN win_empty(M['TargetUserName']) THEN ''
                WHEN win_empty(M['TargetDomainName']) THEN M['TargetUserName']
                ELSE M['TargetDomainName'] || '\' || M['TargetUserName'] END AS target
    FROM events
    WHERE Kind IN ('security', 'sysmon-in-security')
)
SELECT Time AS TimeGenerated, Computer, EventID,
       CASE EventID
           WHEN 1102 THEN '1102 - The audit log was cleared.'
           WHEN 4624 THEN '4624 - An account was successfully logged on.'
           WHEN 4625 THEN '4625 - An account failed to log on.'
           WHEN 4634 THEN '4634 - An account was logged off.'
           WHEN 4648 THEN '4648 - A logon was attempted using explicit credentials.'
           WHEN 4672 THEN '4672 - Special privileges assigned to new logon.'
           WHEN 4688 THEN '4688 - A new process has been created.'
           WHEN 4689 THEN '4689 - A process has exited.'
           WHEN 4697 THEN '4697 - A service was installed in the system.'
           WHEN 4698 THEN '4698 - A scheduled task was created.'
           WHEN 4720 THEN '4720 - A user account was created.'
           WHEN 4732 THEN '4732 - A member was added to a security-enabled local group.'
           WHEN 4756 THEN '4756 - A member was added to a security-enabled universal group.'
           WHEN 5136 THEN '5136 - A directory service object was modified.'
           WHEN 5140 THEN '5140 - A network share object was accessed.'
           WHEN 5145 THEN '5145 - A network share object was checked to see whether client can be granted desired access.'
           ELSE coalesce(CAST(EventID AS VARCHAR), '') END AS Activity,
       Channel,
       Provider AS EventSourceName,
       coalesce(CAST(CASE WHEN Level = 0 THEN 4 ELSE Level END AS VARCHAR), '') AS Level,
       Task,
       CASE WHEN target <> '' THEN target ELSE subject END AS Account,
       CASE WHEN suffix(CASE WHEN target <> '' THEN target ELSE subject END, '$') THEN 'Machine'
            WHEN target <> '' OR subject <> '' THEN 'User' ELSE '' END AS AccountType,
       subject AS SubjectAccount,
       M['SubjectUserName'] AS SubjectUserName, M['SubjectDomainName'] AS SubjectDomainName,
       M['SubjectUserSid'] AS SubjectUserSid, M['SubjectLogonId'] AS SubjectLogonId,
       target AS TargetAccount,
       M['TargetUserName'] AS TargetUserName, M['TargetDomainName'] AS TargetDomainName,
       M['TargetUserSid'] AS TargetUserSid, M['TargetLogonId'] AS TargetLogonId,
       win_int(M['LogonType']) AS LogonType,
       CASE WHEN win_int(M['LogonType']) IS NULL THEN ''
            ELSE CAST(win_int(M['LogonType']) AS VARCHAR) || ' - ' || win_logon_type(M['LogonType']) END AS LogonTypeName,
       M['IpAddress'] AS IpAddress, M['IpPort'] AS IpPort, M['WorkstationName'] AS WorkstationName,
       M['NewProcessName'] AS NewProcessName, M['NewProcessId'] AS NewProcessId, M['CommandLine'] AS CommandLine,
       M['ParentProcessName'] AS ParentProcessName,
       win_basename(CASE WHEN coalesce(M['NewProcessName'], '') <> '' THEN M['NewProcessName'] ELSE M['ProcessName'] END)
           AS Process,
       M['ProcessId'] AS ProcessId, M['ProcessName'] AS ProcessName,
       M['TokenElevationType'] AS TokenElevationType, M['MandatoryLabel'] AS MandatoryLabel,
       M['ObjectName'] AS ObjectName, M['ObjectType'] AS ObjectType,
       M['ServiceName'] AS ServiceName, M['ServiceFileName'] AS ServiceFileName,
       win_event_data(M, DataList) AS EventData,
       'SecurityEvent' AS Type,
       M, _record, _source_file, _exhunt_seq, _exhunt_part
FROM a
