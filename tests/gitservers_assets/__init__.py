"""Configuration templates and process plumbing for tests/gitservers.py; no fixtures here."""
