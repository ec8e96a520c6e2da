"""Downloader layer: retries, politeness gates and download handlers, generic over services."""
