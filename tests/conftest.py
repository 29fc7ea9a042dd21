"""Shared pytest fixtures: loopback Git servers (tests.gitservers)."""

pytest_plugins = ["tests.gitservers"]
