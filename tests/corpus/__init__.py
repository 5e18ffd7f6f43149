"""Malformed and hostile inputs, each run through the real command line (issue 21).

:mod:`tests.corpus.cases` builds every case from one small valid synthetic
federation by one mutation; :mod:`tests.corpus.test_corpus` runs each through
``genofed`` or ``genofed-site`` and checks the exit code, the message and that
nothing was left half-written.
"""
