"""The tutorial's ``mem``: the async memory API (events, tool results, recall) over the synchronous core."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..base.models import Event, Scope, Value
from ..core.events import EventLog, check_tool
from .artifacts import Origin


class Memory:
    """The event and result log (the tutorial's ``mem``)."""

    def __init__(self, context: Origin, event_log: EventLog) -> None:
        self.context = context
        self.event_log = event_log

    async def record(
        self,
        kind: str,
        data: Any = None,
        *,
        tags: Sequence[str] | None = None,
        severity: int = 2,
        stage: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
    ) -> Event:
        """Log an event. ``await mem.record(kind="train_log", data={"epoch": 1, "loss": 0.25})``"""
        return self.event_log.record(
            kind, data, None, tags, severity, stage, metrics, inputs, outputs, self.context.origin
        )

    async def record_tool_result(
        self,
        tool: str,
        *,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
        tags: Sequence[str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        severity: int = 2,
    ) -> Event:
        """Record a typed tool result; its outputs are recalled by name with :meth:`last_by_name`."""
        check_tool(tool, message)
        return self.event_log.record(
            "tool_result", message, tool, tags, severity, None, metrics, inputs, outputs, self.context.origin
        )

    async def write_result(
        self,
        *,
        topic: str,
        inputs: Sequence[Value | Mapping[str, Any]] | None = None,
        outputs: Sequence[Value | Mapping[str, Any]] | None = None,
        tags: Sequence[str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str | None = None,
        severity: int = 2,
    ) -> Event:
        """AetherGraph's other name for :meth:`record_tool_result` (``topic`` is the tool)."""
        return await self.record_tool_result(
            topic, inputs=inputs, outputs=outputs, tags=tags, metrics=metrics, message=message, severity=severity
        )

    async def recent(self, *, kinds: Iterable[str] | None = None, limit: int = 50, scope: Scope = "all") -> list[Event]:
        """The newest events, chronological (most recent last)."""
        return self.event_log.recent(kinds=kinds, limit=limit, where=self.context.scope(scope))

    async def recent_data(
        self, *, kinds: Iterable[str] | None = None, limit: int = 50, scope: Scope = "all"
    ) -> list[Any]:
        """The decoded ``data`` of the newest events, chronological."""
        return self.event_log.recent_data(kinds=kinds, limit=limit, where=self.context.scope(scope))

    async def recent_tool_results(self, *, tool: str, limit: int = 10, scope: Scope = "all") -> list[Event]:
        """The newest results of ``tool``, chronological."""
        return self.event_log.recent_tool_results(tool=tool, limit=limit, where=self.context.scope(scope))

    async def last_by_name(self, name: str) -> Any:
        """The latest output value called ``name`` (``None`` if never recorded)."""
        return self.event_log.last_by_name(name)

    async def last_outputs_by_topic(self, topic: str) -> dict[str, Any]:
        """``{name: value}`` of the latest result of tool ``topic``."""
        return self.event_log.last_outputs_by_topic(topic)

    async def recent_df(
        self, *, kinds: Iterable[str] | None = None, limit: int = 50, scope: Scope = "all", tool: str | None = None
    ) -> Any:
        """The newest events as a DataFrame, newest first."""
        from ..core.frames import events_frame

        if tool is not None:
            events = self.event_log.recent_tool_results(tool=tool, limit=limit, where=self.context.scope(scope))
        else:
            events = self.event_log.recent(kinds=kinds, limit=limit, where=self.context.scope(scope))
        return events_frame(events)
