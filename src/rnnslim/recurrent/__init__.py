"""Recurrent core: the one place that knows gate layouts, reference cells, and the stack."""
