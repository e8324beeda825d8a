"""`exhunt simulate`: attack and benign scenarios as data, written as telemetry in exhunt's input formats.

scenario.py reads the scenario files (scenarios/*.yaml), events.py turns their steps into consistent
events, formats/ writes them, check.py runs the rules and compares with each scenario's `expect`.
"""
