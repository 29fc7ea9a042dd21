"""Loopback fakes of the GitHub, GitLab and Gitea REST APIs the forge drivers talk to."""
