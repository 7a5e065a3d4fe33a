"""Ingestion: raw users, items and events -> validated, cleaned, pseudonymised Parquet.

Flow: `sources` finds and maps the raw files onto the contract; `users`, `items` and
`events` validate and clean each table (DuckDB does the row work, so memory stays
bounded); `identity` merges near-duplicate people; `report` writes the quality report
and data inventory; `pipeline` runs them in order; `erasure` forgets a user.
"""
