"""rnnscope: character-level RNNs with hand-written BPTT and an instrument panel."""

__version__ = "0.1.0"
