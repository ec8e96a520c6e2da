"""The output record: built from an enriched entry, validated, handed to the exporters."""

from crawler.record.build import SCHEMA_VERSION, build_record
from crawler.record.validate import schema, schema_errors

__all__ = ["SCHEMA_VERSION", "build_record", "schema", "schema_errors"]
