"""The sweep config: its schema, loading YAML with overrides, and the rules a config must
meet before any trial starts. May import errors and objectives."""
