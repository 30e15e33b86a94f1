from __future__ import annotations

from conveyor_common.problems import InvalidRequest


class UnknownTask(InvalidRequest):
    slug = "unknown-task"
    title = "No worker advertises this task"
