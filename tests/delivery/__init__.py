"""Delivery to real remotes: mirrors, credentials, races with humans, outages, batching, signing."""
