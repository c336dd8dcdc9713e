"""Every line the control plane logs says what it is about: `job=... attempt=... cluster=...`.

Code that handles one job (the controller) does so inside `log_ids(job=..., attempt=...,
cluster=...)`: the ids live in a context variable, so every record logged inside that block, by
any module, carries them. A record may also name its own ids with the standard `extra=`
(`log.warning(..., extra={"cluster": name})`: the federation, which imports nothing of
`runtime`, does so); those win over the block's. `configure_logging()` (run by `suanli server`)
installs one handler whose `IdsFilter` fills the ids in ("-" where none applies) and whose
format prints them, so every line of the server's log has the three fields.

`log_job_event` is a store listener: each job event (queued, moved, noted) is one INFO line
(WARNING for FAILED and REJECTED) with its job and attempt. Lines hold ids, states and bounded
reasons only: never a token or a file's contents.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from types import MappingProxyType
from typing import TextIO

IDS = ("job", "attempt", "cluster")
FORMAT = "%(asctime)s %(levelname)s %(name)s job=%(job)s attempt=%(attempt)s cluster=%(cluster)s: %(message)s"
MAX_DETAIL_CHARS = 300  # a job event's detail in one log line

_current: ContextVar[MappingProxyType] = ContextVar("suanli_log_ids", default=MappingProxyType({}))
events_log = logging.getLogger("runtime.jobs")


@contextlib.contextmanager
def log_ids(**ids: object) -> Iterator[None]:
    """Within the block, every record carries these ids (added to the enclosing block's; a None
    value leaves that id as it was)."""
    unknown = set(ids) - set(IDS)
    if unknown:
        raise ValueError(f"log_ids: {sorted(unknown)} are not among {IDS}")
    merged = {**_current.get(), **{k: v for k, v in ids.items() if v is not None}}
    token = _current.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _current.reset(token)


def current_ids() -> dict[str, object]:
    """The ids of the enclosing `log_ids` blocks (empty outside any)."""
    return dict(_current.get())


class IdsFilter(logging.Filter):
    """Gives each record its `job`, `attempt` and `cluster`: its own (from `extra=`), else the
    enclosing `log_ids` block's, else "-". Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _current.get()
        for name in IDS:
            if getattr(record, name, None) is None:
                setattr(record, name, ids.get(name, "-"))
        return True


def ids_handler(stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) that prints the ids of every record (FORMAT)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(IdsFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """The process's logging: one `ids_handler` on the root logger at `level`, replacing any
    handler configured before. Returns the handler."""
    handler = ids_handler(stream)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return handler


def log_job_event(event: dict) -> None:
    """A store listener: one line per job event with the event's job and attempt ids."""
    kind = event["kind"]
    level = logging.WARNING if kind in ("FAILED", "REJECTED") else logging.INFO
    detail = " ".join(str(event.get("detail") or "").split())
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS - 1] + "…"
    events_log.log(level, "%s by %s%s", kind, event.get("actor") or "-", f": {detail}" if detail else "",
                   extra={"job": event.get("job_id"), "attempt": event.get("attempt")})
