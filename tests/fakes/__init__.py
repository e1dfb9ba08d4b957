"""Faithful local fakes of hosted services, speaking their real wire formats over HTTP.

Tests and benchmarks run ao's real plugin code against these; nothing here is mocked.
"""
