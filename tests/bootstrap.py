"""A pytest plugin (-p tests.bootstrap) loaded before Django's settings: every test run gets a throwaway AO_HOME, never ~/.ao."""

import os
import tempfile

os.environ["AO_HOME"] = tempfile.mkdtemp(prefix="ao-test-home-")
os.environ.setdefault("AO_SECRET_KEY", "test-secret-key-not-for-production-use-0123456789abcdef")
# The suite runs in embedded mode; tests for other modes start their own processes.
for _name in ("DATABASE_URL", "REDIS_URL", "AO_CONFIG", "AO_ENV"):
    os.environ.pop(_name, None)
