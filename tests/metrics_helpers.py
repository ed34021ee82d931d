"""Scrape ``/metrics`` and read values out of it (parsing is prometheus_client's own)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scrape:
    """One parsed scrape: every metric's type (even without samples) and every sample."""

    text: str
    families: dict[str, str]  # metric name as in ``# TYPE`` lines -> type
    samples: tuple[tuple[str, Sample], ...]  # (metric name, sample)

    @classmethod
    def parse(cls, text: str, *, openmetrics: bool = False) -> Scrape:
        """Parse Prometheus text (or OpenMetrics) exposition."""
        parse = openmetrics_families if openmetrics else text_string_to_metric_families
        families, samples = {}, []
        for family in parse(text):
            # the parsers drop a counter's ``_total`` from the family name; put it back
            name = family.name
            if family.type == "counter" and not name.endswith("_total"):
                name += "_total"
            families[name] = family.type
            samples += [(name, sample) for sample in family.samples]
        return cls(text, families, tuple(samples))

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(s.value for s in self.matching(name, **labels))

    def matching(self, name: str, **labels: str) -> list[Sample]:
        """The samples called ``name`` whose labels include ``labels``."""
        return [
            s
            for _, s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def label_values(self, label: str, name: str | None = None) -> set[str]:
        """Every value ``label`` takes (in samples called ``name``, if given)."""
        return {
            s.labels[label]
            for _, s in self.samples
            if label in s.labels and (name is None or s.name == name)
        }

    def series(self) -> set[tuple[str, frozenset[tuple[str, str]]]]:
        """Distinct series: (family, labels without ``le``); a histogram counts once."""
        return {
            (family, frozenset((k, v) for k, v in s.labels.items() if k != "le"))
            for family, s in self.samples
        }


def scrape(url: str, accept: str | None = None) -> Scrape:
    """GET ``url`` (a metrics endpoint) and parse it in the format the server chose."""
    headers = {"Accept": accept} if accept else {}
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    openmetrics = response.headers["content-type"].startswith("application/openmetrics-text")
    return Scrape.parse(response.text, openmetrics=openmetrics)


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    """How much the samples called ``name`` (with ``labels``) grew between two scrapes."""
    return after.value(name, **labels) - before.value(name, **labels)
