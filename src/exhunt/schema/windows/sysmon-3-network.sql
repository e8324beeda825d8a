-- table: DeviceNetworkEvents
-- Sysmon 3 (network connection) -> ConnectionSuccess, or InboundConnectionAccepted when the
-- process did not initiate it: then the local side is the destination.
WITH c AS (
    SELECT *, win_bool(M['Initiated']) IS DISTINCT FROM false AS outbound FROM events
    WHERE Kind IN ('sysmon', 'sysmon-in-security') AND EventID = 3
)
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       CASE WHEN outbound THEN 'ConnectionSuccess' ELSE 'InboundConnectionAccepted' END AS ActionType,
       coalesce(CASE WHEN outbound THEN M['SourceIp'] ELSE M['DestinationIp'] END, '') AS LocalIP,
       win_int(CASE WHEN outbound THEN M['SourcePort'] ELSE M['DestinationPort'] END) AS LocalPort,
       coalesce(CASE WHEN outbound THEN M['DestinationIp'] ELSE M['SourceIp'] END, '') AS RemoteIP,
       win_int(CASE WHEN outbound THEN M['DestinationPort'] ELSE M['SourcePort'] END) AS RemotePort,
       CASE WHEN win_empty(CASE WHEN outbound THEN M['DestinationHostname'] ELSE M['SourceHostname'] END) THEN ''
            ELSE CASE WHEN outbound THEN M['DestinationHostname'] ELSE M['SourceHostname'] END END AS RemoteUrl,
       upper(substr(coalesce(M['Protocol'], ''), 1, 1)) || lower(substr(coalesce(M['Protocol'], ''), 2)) AS Protocol,
       win_bag([win_pair('ProcessGuid', M['ProcessGuid']), win_pair('RuleName', M['RuleName']),
                win_pair('SourcePortName', M['SourcePortName']), win_pair('DestinationPortName', M['DestinationPortName'])])
           AS AdditionalFields,
       coalesce(M['Image'], '') AS InitiatingProcessFolderPath,
       win_basename(M['Image']) AS InitiatingProcessFileName,
       win_int(M['ProcessId']) AS InitiatingProcessId,
       win_domain(M['User']) AS InitiatingProcessAccountDomain,
       win_user(M['User']) AS InitiatingProcessAccountName,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM c
