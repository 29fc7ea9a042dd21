"""Forge drivers: the ``reconciler.ports.forge.Forge`` port over GitHub, GitLab and Gitea/Forgejo.

``factory.forge_for`` builds one; ``http`` holds the shared session, retries and error
translation; ``github``, ``gitlab`` and ``gitea`` each speak one host's documented REST API.
Only the composition root should import ``factory``.
"""
