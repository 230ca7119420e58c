"""What an inference engine contributes to a RerankerService (spec.engine names one).

The renderer, the autoscaling targets, the monitoring and the spec's rules ask the engine of the
resource (reranker_operator.engines.engine) instead of testing its name; a new engine is one
package implementing `Engine` plus one line in the registry (reranker_operator.engines).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from reranker_contract import AdapterRule
from reranker_operator.api.cel_rules import Rule

if TYPE_CHECKING:
    from reranker_operator.api.spec import PrometheusRuleSpec, RerankerServiceSpec
    from reranker_operator.render.apis import Child
    from reranker_operator.render.containers import ServingContainer
    from reranker_operator.render.service import ParsedService

AlertRule = dict[str, Any]
# builds one alert with the shared labels and `for`: (alert, expr, severity, summary, description)
MakeAlert = Callable[[str, str, str, str, str], AlertRule]
Panel = tuple[str, str, str, list[tuple[str, str]]]  # title, unit, description, [(expr, legend)]


class CheckPlace(Enum):
    """Where among the spec's own rules an engine's checks stand (the CRD lists the rules in
    order): after the autoscaling rules, after the ingress/KEDA rules, after the attention rule."""

    RESOURCES = "resources"  # what the engine needs of the pods' resources
    FEATURES = "features"  # the bundled server's features the engine lacks
    SETTINGS = "settings"  # the engine's own settings and how it reads the rest of the spec


@dataclass(frozen=True)
class EngineCheck:
    """A rule on RerankerServiceSpec that applies while this engine runs: `cel` and `holds` say
    what must hold then (the engine's guard is added around them; see Engine.rules)."""

    place: CheckPlace
    cel: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str = ""
    explain: str | Callable[[Any], str] | None = None


def engine_is(name: str) -> str:
    """The CEL test that the resource runs engine `name` (`engine` is defaulted, so may be
    absent only in a spec that never reached the API server's defaulting)."""
    return f"(has(self.engine) && self.engine == '{name}')"


class Engine(ABC):
    """One inference engine: the serving container and what else it adds to the children."""

    name: str  # the value of spec.engine
    summary: str  # how spec.engine's description presents it
    checks: tuple[EngineCheck, ...] = ()  # what the spec must satisfy while it runs
    # children only this engine has (vLLM: its score-template ConfigMap), applied before the
    # Deployment that mounts them; each builder returns None for a resource of another engine
    children: tuple[Child, ...] = ()
    # whether its pods run the score check before Ready (spec.scoreCheck; the bundled server)
    score_check: bool = False
    adapter_rules: tuple[AdapterRule, ...] = ()  # its series as per-pod custom metrics
    queued_pairs_metric: str  # the custom metric autoscaling on queuedPairsPerPod reads

    def serving(self, spec: RerankerServiceSpec) -> Engine:
        """The engine as `spec` runs it (every render reads this one): itself, or another
        Engine for a variant such as vLLM behind the bundled server (spec.vllm.front)."""
        return self

    @abstractmethod
    def serving_container(self, svc: ParsedService) -> ServingContainer:
        """The Deployment's serving container and the volumes only it mounts."""

    def restart_inputs(self, spec: RerankerServiceSpec) -> Any:
        """What the pods read besides their container (a mounted child's data): part of the
        pod template's config hash, so a change restarts them. None: nothing."""
        return None

    @abstractmethod
    def metrics_port(self, spec: RerankerServiceSpec) -> int | None:
        """The container port /metrics is served on when not the http port, else None (the
        Service, ServiceMonitor and NetworkPolicy follow it)."""

    @abstractmethod
    def prefix_reuse(self, spec: RerankerServiceSpec) -> bool:
        """Whether the pods reuse a shared prompt prefix (its alert watches the reuse)."""

    @abstractmethod
    def alerts(
        self,
        name: str,
        namespace: str,
        thresholds: PrometheusRuleSpec,
        make: MakeAlert,
        *,
        prefix_reuse: bool,
    ) -> list[AlertRule]:
        """The engine's alerts, in its series (the workload alerts are added after them)."""

    @abstractmethod
    def panels(self, name: str, namespace: str) -> list[Panel]:
        """The engine's dashboard panels (the workload panels are added after them)."""

    def settings_problems(self, spec: RerankerServiceSpec) -> Iterator[tuple[str, str]]:
        """(field, message) of each problem in the engine's own settings that no CEL rule
        states; checked whichever engine runs (the CRD checks the settings alike)."""
        return iter(())

    def rules(self, place: CheckPlace) -> tuple[Rule, ...]:
        """The engine's checks at `place` as spec rules, each true for another engine."""
        return tuple(self._rule(check) for check in self.checks if check.place is place)

    def _rule(self, check: EngineCheck) -> Rule:
        name, holds = self.name, check.holds
        return Rule(
            f"!{engine_is(name)} || {check.cel}",
            check.message,
            lambda s: s.engine != name or holds(s),
            field_path=check.field_path,
            explain=check.explain,
        )
