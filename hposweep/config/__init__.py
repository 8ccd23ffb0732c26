"""The sweep config: its schema (``schema``: pydantic models, the rules within one
section), loading YAML with overrides and wording its errors (``loading``), and the rules
between sections and on files (``rules``). May import errors and objectives."""
