"""Enrichment during a crawl, generic over services: batching, memo, judging, the pipeline."""
