"""Tests of ao's agent plugins with the real agent CLIs, installed from their registries.

``install.py`` pins the versions and keeps them in a cache outside the repository; the model
APIs they call are the local fakes in ``tests/fakes/models``.
"""
