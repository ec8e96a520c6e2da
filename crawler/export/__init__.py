"""Analysis-ready outputs beside the snapshot: Parquet tables, a DuckDB file and an HTML report."""
