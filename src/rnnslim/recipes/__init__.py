"""Built-in recipes shipped with the package (YAML)."""
