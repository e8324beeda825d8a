-- What every form's events get beside their System fields: Kind (which family of mappings
-- applies, decided by channel and provider) and ReportId (exhunt.winlog.common.report_id).
-- `_exhunt_form` is the form's own SELECT. The mappings also see M, the named data as a map
-- of texts (M['Image']), computed only for the rows a mapping selects.
SELECT *,
       CASE WHEN lower(Channel) = 'microsoft-windows-sysmon/operational' OR lower(Provider) = 'microsoft-windows-sysmon'
                 THEN CASE WHEN lower(Channel) = 'security' THEN 'sysmon-in-security' ELSE 'sysmon' END
            WHEN lower(Channel) = 'security' THEN 'security'
            WHEN lower(Channel) IN ('microsoft-windows-powershell/operational', 'powershellcore/operational',
                                    'windows powershell') THEN 'powershell'
            WHEN lower(Channel) = 'msexchange management' OR lower(Provider) = 'msexchange cmdletlogs' THEN 'exchange'
            ELSE 'other' END AS Kind,
       CASE WHEN RecordId IS NOT NULL THEN win_report_id([lower(Computer), lower(Channel), CAST(RecordId AS VARCHAR)])
            ELSE win_report_id([fallback_id, _record]) END AS ReportId
FROM _exhunt_form
