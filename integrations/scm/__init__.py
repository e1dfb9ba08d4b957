"""SCM plugins: pull requests, their checks and reviews."""
