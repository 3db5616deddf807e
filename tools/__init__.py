"""Developer and operator commands: local invoke, template check, Cloud Run conversion."""
