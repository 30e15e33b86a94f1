from __future__ import annotations

from conveyor_common.problems import NotFound


class DeadLetterNotFound(NotFound):
    slug = "dead-letter-not-found"
    title = "No such dead letter"
