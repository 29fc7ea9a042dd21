"""Scheduled work (issue 5, section 4): preview expiry, orphan directories, applied feedback."""
