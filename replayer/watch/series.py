"""One watched series: its samples and their summary (``Series``, ``Series.to_json``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from replayer.watch.growth import growth_per_hour

__all__ = ["Series"]


@dataclass(slots=True)
class Series:
    label: str  # shown in the report and named by a failing threshold
    source: str  # the source's label: "pid 4242" or the PromQL query
    unit: str | None = None  # "bytes" for RSS; None: whatever the query returns
    t: list[float] = field(default_factory=list)  # seconds since watching started
    v: list[float] = field(default_factory=list)

    def add(self, t: float, v: float) -> None:
        self.t.append(t)
        self.v.append(v)

    def to_json(self) -> dict:
        return {"label": self.label, "source": self.source, "unit": self.unit,
                "samples": len(self.v),
                "start": self.v[0] if self.v else None, "end": self.v[-1] if self.v else None,
                "peak": max(self.v) if self.v else None,
                "span_s": round(self.t[-1] - self.t[0], 3) if self.t else None,
                "growth_per_hour": growth_per_hour(self.t, self.v),
                "t": [round(x, 3) for x in self.t], "v": self.v}
