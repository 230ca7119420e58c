"""An in-memory Kubernetes API for tests and the demo, built on kmock's KubernetesEmulator.

kmock is a test/demo dependency, not an operator runtime one: it is imported lazily, only when a
cluster is started. `DevCluster` runs the emulator on a port in a background thread, so that both
synchronous tests and `kubectl` can talk to it; its helper methods act directly on the stored
objects (they are not HTTP calls and are never counted among `calls`).

What the emulator adds to kmock's: uid / resourceVersion / generation / creationTimestamp
stamping, the URL's namespace copied into created objects, list kinds, label/field selectors on
lists and watches, PUT, strategic-merge and server-side-apply patches, status-subresource
semantics, garbage collection by ownerReferences, core-discovery and namespaces fixes, a record of
every API call (verb, group, resource), meta.k8s.io Tables for `kubectl get` (printer columns),
a stand-in Deployment controller (`simulate_rollout`), and on request a stand-in EndpointSlice
controller whose slices follow pod readiness after a configurable lag, with graceful pod
deletion (`endpoint_slices`, `begin_pod_deletion`), and on request real rolling updates:
ReplicaSets per pod template, pods at loopback addresses running the processes a test's runtime
starts, ready when their readiness probe really answers (`rolling_updates`). Server-side apply merges lists the
way the API server does (map lists by their keys, sets, atomic lists, from the Kubernetes
OpenAPI schema) and every write keeps `metadata.managedFields` per field manager.

Modules: common (calls, errors, refs), patches, schema, fieldsets and managed (server-side
apply and field ownership), selectors, store and api (the emulator's mixins), tables, emulator
(the kmock subclass), rollout, rolling and kubelet, endpoints, kubeconfig, cluster (DevCluster).
"""

from reranker_devtools.devcluster.cluster import DevCluster
from reranker_devtools.devcluster.common import (
    DEPLOYMENTS,
    PODS,
    RERANKERS,
    ApiCall,
    EmulatorError,
    Ref,
)
from reranker_devtools.devcluster.emulator import declare_resources, emulator_class, read_crd
from reranker_devtools.devcluster.kubeconfig import KubeconfigFile
from reranker_devtools.devcluster.managed import server_side_apply
from reranker_devtools.devcluster.patches import merge_patch, strategic_merge_patch
from reranker_devtools.devcluster.rollout import ROLLOUT_PHASES, deployment_status, pod_status
from reranker_devtools.devcluster.selectors import field_selector_matches, selector_matches

__all__ = [
    "DEPLOYMENTS",
    "PODS",
    "RERANKERS",
    "ROLLOUT_PHASES",
    "ApiCall",
    "DevCluster",
    "EmulatorError",
    "KubeconfigFile",
    "Ref",
    "declare_resources",
    "deployment_status",
    "emulator_class",
    "field_selector_matches",
    "merge_patch",
    "pod_status",
    "read_crd",
    "selector_matches",
    "server_side_apply",
    "strategic_merge_patch",
]
