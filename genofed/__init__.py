"""GenoFed: privacy-preserving federated genomic analytics.

Packages: ``common`` (shared by both sides), ``protos`` (the wire contract),
``site_agent`` (the only code that reads individual-level data) and
``coordinator`` (aggregates only). ``cli``, ``simulation`` and ``synth`` are
composition roots.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
