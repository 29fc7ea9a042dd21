"""End-to-end tests of issue 5: human changes in the config repo, rollback and the audit trail."""
