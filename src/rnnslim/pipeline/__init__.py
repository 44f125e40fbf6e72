"""The compression spine: typed stage configs, a resumable pipeline, stage registry."""
