"""The version of rnnscope, recorded in every config.json and report."""

__version__ = "0.1.0"
