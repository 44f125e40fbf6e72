class ModelFormatError(ValueError):
    """A model file is missing, corrupt, or does not match its description."""
