"""``python -m sessions.core.config``: Django is set up before the config's modules load (their models
need it), then ``sessions.core.config.command.main`` runs."""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ao_site.settings")
django.setup()

from sessions.core.config.command import main  # noqa: E402  (after django.setup: see above)

sys.exit(main())
