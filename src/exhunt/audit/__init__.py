"""exhunt audit: the transport agents an Exchange server (or a collected copy of its files)
registers, each judged with its evidence and reported as alerts of the `detect` schema.

Modules: `model` (Agent), `collection` (what PATH is, Windows paths onto it, Exchange installs
found), `agentlists` (agents.config and saved Get-TransportAgent output, copies diffed),
`assembly` (facts about one DLL), `checks` (the verdicts as data), `judge` (Agent + facts ->
findings), `around` (files no agent lists), `baseline` (known-good state and its diff).
"""
