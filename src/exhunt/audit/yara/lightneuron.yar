/*
  exhunt's own rules for LightNeuron (Turla's Exchange transport-agent implant), written from
  published facts: ESET's research as reported in public sources (names, file paths, the
  companion DLL's configuration keys) and MITRE Engenuity's 2023 emulation of it (its file
  and export names). Each rule's `facts` says what it rests on. They look for names and
  strings, so a renamed or repacked sample escapes them: the hash list and the agent's
  signature and location checks are the other half.
*/

rule exhunt_lightneuron_agent_names
{
    meta:
        description = "A .NET transport agent with LightNeuron's factory name (SecurityInteropAgentFactory) building on Exchange's transport API"
        facts = "LightNeuron's agent: Microsoft.Exchange.Security.Interop.dll, factory Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory (ESET; Atomic Red Team T1505.002)"
        severity = "high"
    strings:
        $transport_api = "Microsoft.Exchange.Data.Transport" ascii wide
        $factory = "SecurityInteropAgentFactory" ascii wide
        $factory_ns = "Microsoft.Exchange.Security.Interop" ascii wide
    condition:
        uint16(0) == 0x5A4D and $transport_api and $factory and $factory_ns
}

rule exhunt_lightneuron_companion_import
{
    meta:
        description = "A .NET assembly using Exchange's transport API that names a LightNeuron companion DLL (exrwdb.dll, exdbdata.dll)"
        facts = "companion DLL exrwdb.dll (ESET, per a deck built from its paper) or exdbdata.dll with export MessageValidator called through DllImport (MITRE Engenuity emulation)"
        severity = "high"
    strings:
        $transport_api = "Microsoft.Exchange.Data.Transport" ascii wide
        $companion_eset = "exrwdb" ascii wide nocase
        $companion_emulation = "exdbdata" ascii wide nocase
    condition:
        uint16(0) == 0x5A4D and $transport_api and any of ($companion_*)
}

rule exhunt_lightneuron_companion_config_keys
{
    meta:
        description = "A Windows program carrying most of the configuration key names of LightNeuron's companion DLL"
        facts = "configuration keys CONFIG_FILE_NAME, SEND_TIME, SEND_AT_NIGHT, SEND_FILE (ESET, per a deck built from its paper)"
        severity = "high"
    strings:
        $config_file_name = "CONFIG_FILE_NAME" ascii wide
        $send_time = "SEND_TIME" ascii wide
        $send_at_night = "SEND_AT_NIGHT" ascii wide
        $send_file = "SEND_FILE" ascii wide
    condition:
        uint16(0) == 0x5A4D and 3 of them
}

rule exhunt_lightneuron_emulation_config_keys
{
    meta:
        description = "A Windows program carrying the configuration key names of the emulated LightNeuron companion DLL"
        facts = "winmail.dat keys EMAIL_LOG_FILE, SIGNATURE_KEY, RULE_FILE and export MessageValidator (MITRE Engenuity emulation)"
        severity = "medium"
    strings:
        $email_log_file = "EMAIL_LOG_FILE" ascii wide
        $signature_key = "SIGNATURE_KEY" ascii wide
        $rule_file = "RULE_FILE" ascii wide
        $export = "MessageValidator" ascii wide
    condition:
        uint16(0) == 0x5A4D and 3 of them
}

rule exhunt_lightneuron_artefact_names
{
    meta:
        description = "A file naming LightNeuron's log files or its odd GUID-like file names"
        facts = "log files msmocf.xml, msmodl.dat and three files named like GUIDs with a 7-character first group, in the NetworkService profile (ESET IoC list); msxfer.dat and msmdat.xml (MITRE Engenuity emulation)"
        severity = "high"
    strings:
        $guid1 = "814ad43-58ab-2cd3-3e68-b82a8f402fd0" ascii wide nocase
        $guid2 = "42cf8a1-6e20-8c24-d35f-82c46d8b70ba" ascii wide nocase
        $guid3 = "36b1f4a-82b9-eb06-7c1e-90b4b2d5c27d" ascii wide nocase
        $name_log1 = "msmocf.xml" ascii wide nocase
        $name_log2 = "msmodl.dat" ascii wide nocase
        $name_emulation_log = "msxfer.dat" ascii wide nocase
        $name_emulation_rules = "msmdat.xml" ascii wide nocase
    condition:
        any of ($guid*) or 2 of ($name_*)
}
