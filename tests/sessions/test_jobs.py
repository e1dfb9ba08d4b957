"""The core enqueues background work by task name (sessions/core/jobs.py): every name it uses is a
registered task, also in a fresh process that has imported no tasks module yet (a CLI command)."""

from __future__ import annotations

import json

from sessions.core import jobs
from tests.helpers.procs import manage

NAMES = sorted(v for k, v in vars(jobs).items() if k.isupper() and isinstance(v, str))

FRESH = (
    "import json, sys; from sessions.core import jobs; "
    "before = 'sessions.tasks' in sys.modules; "
    f"found = {{n: jobs.task(n).name for n in {NAMES!r}}}; "
    "print(json.dumps({'before': before, 'found': found}))"
)


def test_every_job_name_is_a_registered_task_even_in_a_fresh_process(tmp_path):
    assert len(NAMES) >= 9
    out = json.loads(
        manage("shell", "-c", FRESH, env={"AO_HOME": str(tmp_path)}).stdout.strip().splitlines()[-1]
    )
    assert out["before"] is False  # nothing imported the tasks yet: jobs found them by name
    assert out["found"] == {name: name for name in NAMES}
