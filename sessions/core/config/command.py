"""ao's config file: ``ao.config.yaml`` (or a reference ``agent-orchestrator.yaml``).

``python -m sessions.core.config --schema`` prints the JSON Schema (shipped as
docs/ao.config.schema.json); ``python -m sessions.core.config --check FILE`` validates a file;
``python -m sessions.core.config --update-docs`` regenerates docs/ao.config.schema.json and the plugin
settings tables of docs/CONFIG.md from the models (run it after changing a setting).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sessions.core.config.export import config_docs_update, config_json_schema_text
from sessions.core.config.loading import config_load
from sessions.core.config.problems import ConfigError


# --- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sessions.core.config", description=__doc__.split("\n")[0]
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--schema", action="store_true", help="print the JSON Schema of ao.config.yaml")
    group.add_argument("--check", metavar="FILE", type=Path, help="validate a config file")
    group.add_argument(
        "--update-docs",
        action="store_true",
        help="regenerate docs/ao.config.schema.json and the plugin settings tables of docs/CONFIG.md",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ao_site.settings")
    import django

    django.setup()
    if args.schema:
        sys.stdout.write(config_json_schema_text())
        return 0
    if args.update_docs:
        for written in config_docs_update():
            print(f"wrote {written}")
        return 0
    try:
        config = config_load(args.check)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.check}: OK ({len(config.projects)} projects)")
    return 0
