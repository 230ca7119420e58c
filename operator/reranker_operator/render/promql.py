"""PromQL building blocks scoped to one RerankerService's series.

The server's (or vLLM's) own series carry `namespace` and `job` (the prometheus-operator sets
`job` to the scraped Service's name, which is the RerankerService's name); kube-state-metrics
series carry `namespace` and `deployment` or `pod`. Names and namespaces are DNS labels (checked
before rendering) and thresholds are numbers, so no spec value can change an expression's
structure.
"""

from __future__ import annotations

from reranker_contract import CONTAINER_NAME

RATE_WINDOW = "5m"


def num(value: float) -> str:
    """A float as a PromQL number literal."""
    return format(float(value), ".10g")


def server(name: str, namespace: str, extra: str = "") -> str:
    """The label matchers of one RerankerService's server series."""
    sel = f'namespace="{namespace}",job="{name}"'
    return "{" + (f"{sel},{extra}" if extra else sel) + "}"


def deployment(name: str, namespace: str) -> str:
    return f'{{namespace="{namespace}",deployment="{name}"}}'


def pods(name: str, namespace: str, extra: str = "") -> str:
    """kube-state-metrics selector of the server container of one RerankerService's pods (a
    Deployment's pods are named <deployment>-<replicaset hash>-<suffix>)."""
    sel = f'namespace="{namespace}",pod=~"{name}-[a-z0-9]+-[a-z0-9]+",container="{CONTAINER_NAME}"'
    return "{" + (f"{sel},{extra}" if extra else sel) + "}"


def rate(metric: str, selector: str) -> str:
    return f"rate({metric}{selector}[{RATE_WINDOW}])"


def histogram_p(q: float, histogram: str, selector: str) -> str:
    """The q-quantile of a histogram family over the rate window, all series together."""
    return f"histogram_quantile({num(q)}, sum by (le) ({rate(f'{histogram}_bucket', selector)}))"


def mean(histogram: str, selector: str) -> str:
    """The mean observation of a histogram over the rate window."""
    return (
        f"sum({rate(histogram + '_sum', selector)}) / sum({rate(histogram + '_count', selector)})"
    )
