-- Value conversions every Windows mapping uses, as DuckDB macros (the SQL twins of
-- exhunt/winlog/common.py; a test runs both on the same values). Created once per session.

-- Decimal or 0x-hex text -> integer; '', '-' and anything else -> NULL.
CREATE OR REPLACE MACRO win_int(v) AS
    CASE WHEN regexp_matches(trim(v), '^([+-]?[0-9][0-9_]*|0[xX][0-9a-fA-F_]+)$') THEN TRY_CAST(trim(v) AS BIGINT) END;

-- Last component of a Windows path: 'C:\a\b.exe' -> 'b.exe'.
CREATE OR REPLACE MACRO win_basename(p) AS regexp_extract(coalesce(p, ''), '[^\\/]*$');

-- 'DOMAIN\user' -> DOMAIN / user; a bare name has no domain; '' and '-' give ''.
CREATE OR REPLACE MACRO win_domain(v) AS
    CASE WHEN coalesce(v, '') IN ('', '-') OR strpos(v, '\') = 0 THEN '' ELSE split_part(v, '\', 1) END;
CREATE OR REPLACE MACRO win_user(v) AS
    CASE WHEN coalesce(v, '') IN ('', '-') THEN '' WHEN strpos(v, '\') = 0 THEN v ELSE substr(v, strpos(v, '\') + 1) END;

-- One digest of Sysmon's 'SHA1=..,MD5=..,SHA256=..,IMPHASH=..', lower-cased like Defender ('' when absent).
CREATE OR REPLACE MACRO win_hash(h, algo) AS coalesce(list_transform(
    list_filter(string_split(coalesce(h, ''), ','), lambda x: strpos(x, '=') > 0 AND upper(trim(split_part(x, '=', 1))) = algo),
    lambda x: lower(trim(substr(x, strpos(x, '=') + 1))))[-1], '');

-- Sysmon's UtcTime '2022-09-22 16:31:14.259' is UTC without a zone mark: add one.
CREATE OR REPLACE MACRO win_sysmon_time(v) AS
    CASE WHEN trim(coalesce(v, '')) IN ('', '-') THEN ''
         WHEN suffix(trim(v), 'Z') OR strpos(substr(trim(v), 11), '+') > 0 THEN trim(v)
         ELSE trim(v) || 'Z' END;

-- 'true'/'1'/'yes' and 'false'/'0'/'no' (any case) -> BOOLEAN, anything else NULL.
CREATE OR REPLACE MACRO win_bool(v) AS
    CASE WHEN lower(trim(v)) IN ('true', '1', 'yes') THEN true WHEN lower(trim(v)) IN ('false', '0', 'no') THEN false END;

-- Sysmon's short or kernel hive names -> the full names Defender writes.
CREATE OR REPLACE MACRO win_hive(v, abbrev, hive) AS
    CASE WHEN starts_with(upper(v), abbrev) AND (length(v) = length(abbrev) OR substr(v, length(abbrev) + 1, 1) = '\')
         THEN hive || substr(v, length(abbrev) + 1) END;
CREATE OR REPLACE MACRO win_registry_key(v) AS coalesce(
    win_hive(v, '\REGISTRY\MACHINE', 'HKEY_LOCAL_MACHINE'), win_hive(v, '\REGISTRY\USER', 'HKEY_USERS'),
    win_hive(v, 'HKLM', 'HKEY_LOCAL_MACHINE'), win_hive(v, 'HKU', 'HKEY_USERS'),
    win_hive(v, 'HKCU', 'HKEY_CURRENT_USER'), win_hive(v, 'HKCR', 'HKEY_LOCAL_MACHINE\Classes'), coalesce(v, ''));

-- XML text escaping as Log Analytics stores EventData.
CREATE OR REPLACE MACRO win_xml(v) AS
    replace(replace(replace(replace(v, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;');

-- A value Sysmon or Security left empty ('' or '-', or absent).
CREATE OR REPLACE MACRO win_empty(v) AS coalesce(v, '') IN ('', '-');

-- '"Name":"value"' for AdditionalFields, or NULL when the value is empty (see win_bag).
CREATE OR REPLACE MACRO win_pair(name, v) AS CASE WHEN NOT win_empty(v) THEN to_json(name) || ':' || to_json(v) END;

-- A JSON object text from win_pair items, '' when none is present.
CREATE OR REPLACE MACRO win_bag(items) AS coalesce('{' || NULLIF(array_to_string(list_filter(items, lambda x: x IS NOT NULL), ','), '') || '}', '');

-- Defender's ReportId for an event: a stable 63-bit id from a list of texts (exhunt.winlog.common.report_id).
CREATE OR REPLACE MACRO win_report_id(parts) AS
    CAST(md5_number_upper(array_to_string(parts, chr(31))) & 9223372036854775807::UBIGINT AS BIGINT);

-- The three texts of an event's data in record order (exhunt/winlog/event_table.py): named data
-- `m` (a map) or positional data `list`. EventData is the XML Log Analytics stores,
-- ParameterXml one <Param> per value, the listing "Name: value" lines (bare values when positional,
-- and for a value named '', which is an unnamed <Data> as well).
CREATE OR REPLACE MACRO win_values(m, list) AS
    list_transform(CASE WHEN list IS NOT NULL THEN list ELSE coalesce(map_values(m), []) END, lambda x: coalesce(x, ''));
CREATE OR REPLACE MACRO win_event_data(m, list) AS
    '<EventData xmlns="http://schemas.microsoft.com/win/2004/08/events/event">'
    || CASE WHEN list IS NOT NULL
            THEN array_to_string(list_transform(list, lambda x: '<Data>' || win_xml(coalesce(x, '')) || '</Data>'), '')
            ELSE coalesce(array_to_string(list_transform(map_entries(m),
                     lambda p: CASE WHEN p.key = '' THEN '<Data>' ELSE '<Data Name="' || win_xml(p.key) || '">' END
                               || win_xml(coalesce(p.value, '')) || '</Data>'), ''), '')
       END
    || '</EventData>';
CREATE OR REPLACE MACRO win_param_xml(m, list) AS
    CASE WHEN len(win_values(m, list)) > 0
         THEN '<Param>' || array_to_string(list_transform(win_values(m, list), lambda x: win_xml(x)), '</Param><Param>') || '</Param>'
         ELSE '' END;
CREATE OR REPLACE MACRO win_listing(m, list) AS
    CASE WHEN list IS NOT NULL THEN array_to_string(list_transform(list, lambda x: coalesce(x, '')), chr(10))
         ELSE coalesce(array_to_string(list_transform(map_entries(m),
                  lambda p: CASE WHEN p.key = '' THEN '' ELSE p.key || ': ' END || coalesce(p.value, '')), chr(10)), '')
    END;

-- A System field typed VARCHAR that may hold an object's JSON text ({"#text": 4688, "#attributes": ..}
-- in forwarded events): its #text.
CREATE OR REPLACE MACRO win_text(v) AS CASE WHEN left(v, 1) = '{' THEN json_extract_string(v, '$."#text"') ELSE v END;

-- Positional EventData values as texts: a JSON array's elements, else the one value.
CREATE OR REPLACE MACRO win_positional(j) AS
    CASE WHEN json_type(j) = 'ARRAY' THEN json_extract_string(j, '$[*]') ELSE [j ->> '$'] END;

-- A record's data (exhunt/winlog/forms.py): EventData, else UserData (its one inner element when it
-- wraps one object), as JSON text. `e` is the record's {"EventData": JSON, "UserData": JSON}.
CREATE OR REPLACE MACRO win_ed(e) AS
    CASE WHEN coalesce(e.EventData, 'null') <> 'null' THEN e.EventData
         WHEN left(e.UserData, 1) = '{' AND len(json_keys(e.UserData)) = 1 AND json_type(e.UserData, '$.*') = ['OBJECT']
              THEN (e.UserData -> '$.*')[1]
         ELSE e.UserData END;

-- Unnamed <Data> elements (alone, or beside <Binary>) are positional data; the parser writes them as
-- {"Data": ...}, so only such objects need their keys read.
CREATE OR REPLACE MACRO win_by_position(ed) AS
    starts_with(ed, '{"Data":') AND coalesce(json_type(ed, '$.Data'), 'NULL') <> 'NULL'
    AND (len(json_keys(ed)) = 1 OR (len(json_keys(ed)) = 2 AND json_type(ed, '$.Binary') IS NOT NULL));

-- Named data as a JSON object (#attributes left out), or NULL.
CREATE OR REPLACE MACRO win_named(ed) AS
    CASE WHEN left(ed, 1) = '{' AND win_by_position(ed) IS NOT TRUE THEN
         CASE WHEN contains(ed, '"#attributes"') AND json_type(ed, '$."#attributes"') IS NOT NULL
              THEN json_merge_patch(ed, '{"#attributes": null}') ELSE ed END
    END;

-- Positional data as a list of texts, or NULL; a bare non-empty string is one value.
CREATE OR REPLACE MACRO win_list(ed) AS
    CASE WHEN win_by_position(ed) THEN
              list_transform(win_positional(CASE WHEN json_type(ed, '$.Data') = 'OBJECT' THEN ed -> '$.Data."#text"'
                                                 ELSE ed -> '$.Data' END), lambda v: coalesce(v, ''))
         WHEN left(ed, 1) = '"' AND ed ->> '$' <> '' THEN [ed ->> '$']
    END;

-- The JSON forms beside evtx (events-ecs.sql, events-otrf.sql) read System fields as JSON text `j`
-- and reproduce exhunt/winlog/forms.py, which reads them with Python's rules:
-- Python's truth of a value (an `a or b` fallback takes b when a is null, false, 0, "", [] or {}).
CREATE OR REPLACE MACRO win_truthy(j) AS
    CASE WHEN j IS NULL OR j IN ('null', 'false', '0', '""', '[]', '{}') THEN false
         WHEN regexp_full_match(j, '[-+0-9.eE]+') THEN coalesce(TRY_CAST(j AS DOUBLE) <> 0, true)
         ELSE true END;
-- Python's text() of a value: a string unquoted, null and absent '', true, false and integers as
-- written; NULL for what Python writes its own way (objects, arrays, fractions), which the
-- form's SQL hands to the Python path (its `py` column).
CREATE OR REPLACE MACRO win_jtext(j) AS
    CASE WHEN j IS NULL OR j = 'null' THEN '' WHEN left(j, 1) = '"' THEN j ->> '$'
         WHEN j IN ('true', 'false') OR regexp_full_match(j, '-?[0-9]+') THEN j::VARCHAR END;
-- The first of two values that is true for Python (`a or b`), as JSON text.
CREATE OR REPLACE MACRO win_or(a, b) AS CASE WHEN win_truthy(a) THEN a ELSE b END;
-- A comma before a closing bracket: DuckDB reads such JSON, Python's json refuses it ("invalid
-- JSON"), so the line goes to the Python path, which says so as before. (DuckDB also reads nan
-- and inf in any case, where Python reads NaN and Infinity only: not checked, a scan for them
-- costs more than the whole record's parse.)
CREATE OR REPLACE MACRO win_lenient(t) AS regexp_matches(t, ',[ \t\r\n]*[}\]]');

-- Named data (JSON) whose keys repeat, as a map of texts the way Python's json reads it: a key
-- keeps its first place and its last value. (A MAP cannot hold a key twice, so the plain cast
-- fails: the record's data would be lost to every mapping.) `s` is the data's keys with their
-- places, sorted (see events_view), `vs` its values in order; n log n, no quadratic blow-up.
CREATE OR REPLACE MACRO win_map_last(s, vs) AS map_from_entries(list_transform(
    list_sort(list_transform(list_zip(
        list_filter(s, lambda e, j: j = 1 OR s[j - 1].k <> e.k),
        list_filter(s, lambda e, j: j = len(s) OR s[j + 1].k <> e.k)),
        lambda p: {first: p[1].i, k: p[1].k, last: p[2].i})),
    lambda g: {key: g.k, value: vs[g.last]}));

-- Security's LogonType number -> the name Defender writes in DeviceLogonEvents.LogonType (the
-- Windows SECURITY_LOGON_TYPE names); an unknown number stays as its text, none gives ''.
CREATE OR REPLACE MACRO win_logon_type(v) AS
    CASE win_int(v) WHEN 2 THEN 'Interactive' WHEN 3 THEN 'Network' WHEN 4 THEN 'Batch' WHEN 5 THEN 'Service'
         WHEN 7 THEN 'Unlock' WHEN 8 THEN 'NetworkCleartext' WHEN 9 THEN 'NewCredentials'
         WHEN 10 THEN 'RemoteInteractive' WHEN 11 THEN 'CachedInteractive'
         WHEN 12 THEN 'CachedRemoteInteractive' WHEN 13 THEN 'CachedUnlock'
         ELSE coalesce(CAST(win_int(v) AS VARCHAR), '') END;

-- An address as Defender's RemoteIPType words it: Loopback, Private (RFC 1918, IPv6 unique-local
-- and link-local), else Public; '' when there is no address.
CREATE OR REPLACE MACRO win_ip_type(v) AS
    CASE WHEN win_empty(v) THEN ''
         WHEN starts_with(v, '127.') OR v = '::1' THEN 'Loopback'
         WHEN regexp_matches(v, '^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|169\.254\.|[fF][cCdD]|[fF][eE]80:)')
              THEN 'Private'
         ELSE 'Public' END;

-- Security 4625's FailureReason message code -> a reason in Defender's words. %%2313 ("Unknown user
-- name or bad password") is Defender's InvalidUserNameOrPassword; the other names are exhunt's, one
-- per Windows message; any other value is kept as written.
CREATE OR REPLACE MACRO win_failure_reason(v) AS
    CASE trim(coalesce(v, ''))
         WHEN '%%2304' THEN 'LogonError' WHEN '%%2305' THEN 'AccountExpired'
         WHEN '%%2306' THEN 'NetLogonNotActive' WHEN '%%2307' THEN 'AccountLocked'
         WHEN '%%2308' THEN 'LogonTypeNotGranted' WHEN '%%2309' THEN 'PasswordExpired'
         WHEN '%%2310' THEN 'AccountDisabled' WHEN '%%2311' THEN 'AccountLogonTimeRestriction'
         WHEN '%%2312' THEN 'UserNotAllowedOnComputer' WHEN '%%2313' THEN 'InvalidUserNameOrPassword'
         WHEN '-' THEN '' ELSE trim(coalesce(v, '')) END;
