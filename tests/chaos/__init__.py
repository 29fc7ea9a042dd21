"""The chaos suite: kill -9 at random moments over local, remote and PR modes with humans
pushing beside the reconciler, and corpora of hostile repository content and hostile input.
``python -m tests.chaos --kills N`` runs the full campaign and prints a JSON summary."""
