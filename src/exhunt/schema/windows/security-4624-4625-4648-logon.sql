-- table: DeviceLogonEvents
-- Security 4624 (logon) -> LogonSuccess, 4625 (failed logon) -> LogonFailed, 4648 (a logon with
-- explicit credentials, made from this device) -> LogonAttempted. The account is the Target one
-- (who logs on, or whose credentials were given); the Subject is the process that asked.
-- 4634/4647 (logoff) are not mapped: Defender's DeviceLogonEvents holds no logoff rows (they stay
-- in SecurityEvent and Event).
WITH l AS (
    SELECT * FROM events
    WHERE Kind = 'security' AND EventID IN (4624, 4625, 4648)
)
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       CASE EventID WHEN 4624 THEN 'LogonSuccess' WHEN 4625 THEN 'LogonFailed' ELSE 'LogonAttempted' END
           AS ActionType,
       win_logon_type(M['LogonType']) AS LogonType,
       CASE WHEN win_empty(M['TargetDomainName']) THEN '' ELSE M['TargetDomainName'] END AS AccountDomain,
       CASE WHEN win_empty(M['TargetUserName']) THEN '' ELSE M['TargetUserName'] END AS AccountName,
       CASE WHEN win_empty(M['TargetUserSid']) OR M['TargetUserSid'] = 'S-1-0-0' THEN '' ELSE M['TargetUserSid'] END
           AS AccountSid,
       CASE WHEN win_empty(M['AuthenticationPackageName']) THEN '' ELSE M['AuthenticationPackageName'] END
           AS Protocol,
       CASE WHEN EventID = 4625 THEN win_failure_reason(M['FailureReason']) ELSE '' END AS FailureReason,
       CASE WHEN EventID = 4624 THEN win_int(M['TargetLogonId']) END AS LogonId,
       CASE WHEN EventID = 4648 THEN
                CASE WHEN win_empty(M['TargetServerName']) OR lower(M['TargetServerName']) = 'localhost' THEN ''
                     ELSE M['TargetServerName'] END
            WHEN win_empty(M['WorkstationName']) THEN '' ELSE M['WorkstationName'] END AS RemoteDeviceName,
       CASE WHEN win_empty(M['IpAddress']) THEN '' ELSE M['IpAddress'] END AS RemoteIP,
       win_ip_type(M['IpAddress']) AS RemoteIPType,
       CASE WHEN win_int(M['IpPort']) > 0 THEN win_int(M['IpPort']) END AS RemotePort,
       CASE WHEN win_empty(M['SubjectDomainName']) THEN '' ELSE M['SubjectDomainName'] END AS InitiatingProcessAccountDomain,
       CASE WHEN win_empty(M['SubjectUserName']) THEN '' ELSE M['SubjectUserName'] END AS InitiatingProcessAccountName,
       CASE WHEN win_empty(M['SubjectUserSid']) OR M['SubjectUserSid'] = 'S-1-0-0' THEN '' ELSE M['SubjectUserSid'] END
           AS InitiatingProcessAccountSid,
       CASE WHEN win_int(M['ProcessId']) > 0 THEN win_int(M['ProcessId']) END AS InitiatingProcessId,
       CASE WHEN win_empty(M['ProcessName']) THEN '' ELSE M['ProcessName'] END AS InitiatingProcessFolderPath,
       CASE WHEN win_empty(M['ProcessName']) THEN '' ELSE win_basename(M['ProcessName']) END AS InitiatingProcessFileName,
       win_bag([win_pair('LogonProcessName', trim(coalesce(M['LogonProcessName'], ''))),
                win_pair('LmPackageName', M['LmPackageName']), win_pair('Status', M['Status']),
                win_pair('SubStatus', M['SubStatus'])]) AS AdditionalFields,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM l
