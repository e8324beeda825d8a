"""Reading KQL from duckdb-kql's parse tree (never from its text with regular expressions).

`tree` answers the questions exhunt asks of a query before or beside running it: the tables
it names, the columns it can read, whether it is judged row by row, its operators and
functions. `check` is the static column check of `exhunt rules validate`. `conditions` splits a
rule's `where`s into their and / or / not trees and rewrites the query to evaluate them per row
(`exhunt detect --explain`).
"""
