-- table: DeviceFileCertificateInfo
-- dedupe: DeviceName, SHA1, Signer, IsSigned, IsTrusted
-- Sysmon 7's signature facts (when it names a SHA1 and says signed or not), once per distinct
-- fact per input file: Defender keeps signing facts apart from the load, so a rule joins the two
-- tables on SHA1 the same way over Defender data and over Sysmon.
SELECT Time AS Timestamp, Computer AS DeviceName, ReportId,
       win_hash(M['Hashes'], 'SHA1') AS SHA1,
       win_bool(M['Signed']) AS IsSigned,
       CASE WHEN win_empty(M['Signature']) THEN '' ELSE M['Signature'] END AS Signer,
       CASE WHEN coalesce(M['SignatureStatus'], '') <> '' THEN lower(M['SignatureStatus']) = 'valid' END AS IsTrusted,
       _record, _source_file, _exhunt_seq, _exhunt_part
FROM events
WHERE Kind IN ('sysmon', 'sysmon-in-security') AND EventID = 7
  AND win_hash(M['Hashes'], 'SHA1') <> '' AND win_bool(M['Signed']) IS NOT NULL
