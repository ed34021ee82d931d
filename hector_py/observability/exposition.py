"""The Prometheus/OpenMetrics text exposition: what prometheus_client's encoders write,
with the configured ``const_labels`` on every series, faster; and hector's metric classes,
prometheus_client's with cheaper updates, whose values it reads."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from threading import Lock
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client import metrics as client_metrics
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import UNDERSCORES
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString
from prometheus_client.values import MutexValue

_MOST_RECENT = Gauge._MOST_RECENT_MODES


class _CachedLabels:
    """``labels(*values)`` remembers each child. Label values are bounded, and
    prometheus_client converts, checks and locks on every call: on the request path that
    is a dozen times per request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._children: dict[tuple[Any, ...], Any] = {}

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Any:
        """The child for these label values (positional values are cached)."""
        if labelkwargs:
            return super().labels(*labelvalues, **labelkwargs)  # type: ignore[misc]
        try:
            return self._children[labelvalues]
        except KeyError:
            child = super().labels(*labelvalues)  # type: ignore[misc]
            self._children[labelvalues] = child
            return child

    def remove(self, *labelvalues: Any) -> None:
        """Drop one child (and forget the cached ones)."""
        self._children.clear()
        super().remove(*labelvalues)  # type: ignore[misc]

    def clear(self) -> None:
        """Drop every child."""
        self._children.clear()
        super().clear()  # type: ignore[misc]


# The fast paths below: a series whose values live in this process (``MutexValue``, not
# ``--workers`` mode's files) is updated under its value's lock directly, as
# ``MutexValue.inc``/``set`` would, instead of through prometheus_client's two or three
# checking method calls. Anything unusual (a parent, ``--workers``, an exemplar on a
# counter, a negative count, NaN) takes prometheus_client's own path.


class CachedCounter(_CachedLabels, Counter):
    """A counter with cached children, counted directly in one process."""

    _fast: MutexValue | None = None

    def _metric_init(self) -> None:
        super()._metric_init()
        if type(self._value) is MutexValue:
            self._fast = self._value

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        """Add ``amount`` (>= 0)."""
        value = self._fast
        if value is None or exemplar or amount < 0:
            super().inc(amount, exemplar)
            return
        with value._lock:
            value._value += amount


class CachedHistogram(_CachedLabels, Histogram):
    """A histogram with cached children. In one process a child's sum and buckets share
    one lock, and an observation finds its bucket by bisection and takes that lock once
    (prometheus_client scans the bounds and locks the sum, then the bucket)."""

    _fast: Lock | None = None

    def _metric_init(self) -> None:
        super()._metric_init()
        values = (self._sum, *self._buckets)
        if all(type(value) is MutexValue for value in values):
            self._fast = Lock()
            for value in values:
                value._lock = self._fast

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        """Count ``amount`` in its bucket and the sum; ``exemplar`` labels that bucket's."""
        lock = self._fast
        if lock is None or amount != amount:  # NaN is in no bucket
            super().observe(amount, exemplar)
            return
        bucket = self._buckets[bisect_left(self._upper_bounds, amount)]  # the first >= amount
        with lock:
            self._sum._value += amount
            bucket._value += 1
        if exemplar:
            client_metrics._validate_exemplar(exemplar)  # type: ignore[attr-defined,no-untyped-call]
            bucket.set_exemplar(Exemplar(exemplar, amount, time.time()))


class CachedGauge(_CachedLabels, Gauge):
    """A gauge with cached children, changed directly in one process (``mostrecent``
    gauges, which refuse ``inc``/``dec``, take prometheus_client's path)."""

    _fast: MutexValue | None = None

    def _metric_init(self) -> None:
        super()._metric_init()
        # before ``Gauge.__init__`` sets ``_is_most_recent``
        if type(self._value) is MutexValue and self._multiprocess_mode not in _MOST_RECENT:
            self._fast = self._value

    def inc(self, amount: float = 1) -> None:
        """Add ``amount``."""
        value = self._fast
        if value is None:
            super().inc(amount)
            return
        with value._lock:
            value._value += amount

    def dec(self, amount: float = 1) -> None:
        """Subtract ``amount``."""
        if self._fast is None:
            super().dec(amount)
        else:
            self.inc(-amount)

    def set(self, value: float) -> None:
        """Set to ``value``."""
        fast = self._fast
        if fast is None:
            super().set(value)
            return
        value = float(value)
        with fast._lock:
            fast._value = value


def content_format(content_type: str) -> tuple[bool, str]:
    """(OpenMetrics?, name escaping) of a content type ``choose_encoder`` picked."""
    escaping = UNDERSCORES
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key == "escaping":
            escaping = value
    return content_type.startswith("application/openmetrics-text"), escaping


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _go_float(value: float) -> str:
    """A value as the exposition formats write it (``+Inf``, ``NaN``, ``1e+06``...)."""
    return floatToGoString(value)  # type: ignore[no-untyped-call,no-any-return]


def _exemplar_text(exemplar: Exemplar) -> str:
    """An OpenMetrics exemplar, ``' # {labels} value [timestamp]'``."""
    labels = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(exemplar.labels.items()))
    text = f" # {{{labels}}} {_go_float(exemplar.value)}"
    return text if exemplar.timestamp is None else f"{text} {exemplar.timestamp}"


class _Floats(dict[float, str]):
    """Formatted values, remembered: counts and bucket totals repeat, within a scrape and
    from one scrape to the next."""

    def __missing__(self, value: float) -> str:
        text = _go_float(value)
        # Not kept: NaN (it never finds itself) and zeros (0.0 would find -0.0).
        if value and value == value:
            if len(self) >= 100_000:
                self.clear()
            self[value] = text
        return text


class _Families(Collector):
    """Some metric families, as a collector (for prometheus_client's encoders)."""

    def __init__(self, *families: Metric) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        """The families."""
        return self._families


_SampleKey = tuple[str, tuple[tuple[str, str], ...]]


class Exposition:
    """One exposition format (Prometheus text or OpenMetrics, one name escaping) as
    prometheus_client's encoder writes it, but with each family's header and each series'
    name-and-labels text, ``const_labels`` included, kept from one scrape to the next: a
    scrape formats only values. That text is the encoder's own, rendered once for a new
    series; a series missing from a scrape is forgotten. hector's own counters, gauges and
    histograms are read without building samples; other collectors' samples must have no
    timestamp nor native histogram, nor (text format) ``_created``, ``_gsum`` or
    ``_gcount`` names: hector's collectors make none."""

    def __init__(
        self,
        encoder: Callable[[Collector], bytes],
        openmetrics: bool,
        const_labels: Mapping[str, str],
    ) -> None:
        self._encoder = encoder
        self._openmetrics = openmetrics
        self._const_labels = dict(const_labels)
        self._floats = _Floats()
        self._headers: dict[tuple[str, str, str, str], str] = {}
        self._series: dict[MetricWrapperBase, dict[tuple[str, ...], list[str]]] = {}
        self._samples: dict[_SampleKey, str] = {}

    def render(self, collectors: Iterable[Collector]) -> bytes:
        """The exposition of ``collectors``' metrics."""
        out: list[str] = []
        samples: dict[_SampleKey, str] = {}
        for collector in collectors:
            if isinstance(collector, (CachedCounter, CachedGauge, CachedHistogram)):
                self._own(collector, out)
            else:
                for family in collector.collect():
                    self._family(family, samples, out)
        self._samples = samples
        if self._openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode()

    def _header(self, family: Metric) -> str:
        """``# HELP``, ``# TYPE`` (and ``# UNIT``) lines."""
        key = (family.name, family.documentation, family.type, family.unit)
        header = self._headers.get(key)
        if header is None:
            header = self._encoder(_Families(Metric(*key))).decode().removesuffix("# EOF\n")
            self._headers[key] = header
        return header

    def _prefixes(self, family: Metric, samples: Iterable[tuple[str, dict[str, str]]]) -> list[str]:
        """Each sample's line up to its value, for (name, labels) of ``family``."""
        blank = Metric(family.name, family.documentation, family.type, family.unit)
        for name, labels in samples:
            blank.add_sample(name, {**self._const_labels, **labels}, 0.0)
        lines = self._encoder(_Families(blank)).decode().split("\n")
        return [line[:-3] for line in lines if line and not line.startswith("#")]  # "0.0"

    def _family(self, family: Metric, seen: dict[_SampleKey, str], out: list[str]) -> None:
        """A family from another collector; ``seen`` gets its series' text."""
        out.append(self._header(family))
        known = self._samples
        keys = [(s.name, tuple(s.labels.items())) for s in family.samples]
        new = {key: s for key, s in zip(keys, family.samples, strict=True) if key not in known}
        if new:
            texts = self._prefixes(family, ((s.name, s.labels) for s in new.values()))
            known.update(zip(new, texts, strict=True))
        floats, openmetrics = self._floats, self._openmetrics
        for key, sample in zip(keys, family.samples, strict=True):
            prefix = seen[key] = known[key]
            if openmetrics and sample.exemplar is not None:
                exemplar = _exemplar_text(sample.exemplar)
                out.append(f"{prefix}{floats[sample.value]}{exemplar}\n")
            else:
                out.append(f"{prefix}{floats[sample.value]}\n")

    def _own(self, metric: Any, out: list[str]) -> None:
        """One of hector's metrics, its children's values read off them (prometheus_client
        internals: the equivalence tests pin them)."""
        family: Metric = metric._get_metric()
        out.append(self._header(family))
        children: dict[tuple[str, ...], Any]
        if metric._is_parent():
            with metric._lock:
                children = metric._metrics.copy()
        else:
            children = {(): metric}
        known = self._series.get(metric, {})
        series: dict[tuple[str, ...], list[str]] = {}
        floats, openmetrics = self._floats, self._openmetrics
        histogram, counter = family.type == "histogram", family.type == "counter"
        for labelvalues, child in children.items():
            prefixes = known.get(labelvalues)
            if prefixes is None:
                labels = dict(zip(metric._labelnames, labelvalues, strict=True))
                samples = child._child_samples()
                prefixes = self._prefixes(
                    family, ((family.name + s.name, {**labels, **s.labels}) for s in samples)
                )
            series[labelvalues] = prefixes
            if histogram:
                total = 0.0
                for prefix, bucket in zip(prefixes, child._buckets, strict=False):
                    total += bucket.get()
                    exemplar = bucket.get_exemplar() if openmetrics else None
                    if exemplar is None:
                        out.append(f"{prefix}{floats[total]}\n")
                    else:
                        out.append(f"{prefix}{floats[total]}{_exemplar_text(exemplar)}\n")
                # then _count, and _sum unless a bucket is negative
                out.append(f"{prefixes[len(child._buckets)]}{floats[total]}\n")
                if len(prefixes) > len(child._buckets) + 1:
                    out.append(f"{prefixes[-1]}{floats[child._sum.get()]}\n")
            else:
                value = child._value
                exemplar = value.get_exemplar() if openmetrics and counter else None
                if exemplar is None:
                    out.append(f"{prefixes[0]}{floats[value.get()]}\n")
                else:
                    out.append(f"{prefixes[0]}{floats[value.get()]}{_exemplar_text(exemplar)}\n")
        self._series[metric] = series
