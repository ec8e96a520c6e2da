"""Export: snapshot files, the run report and change feed, and analysis-ready outputs."""
