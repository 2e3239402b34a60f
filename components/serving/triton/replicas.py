"""The Triton servers a deploy loads the model on.

Local runtime: the one server of the settings (triton_url). Kubernetes runtime (production):
every ready pod behind the Triton Service, found with the `kubernetes` client from inside the
cluster (in-cluster config, the deploy pod's service account needs get/list on endpointslices,
or endpoints). EndpointSlices (discovery.k8s.io/v1) are read first; the core Endpoints API
(deprecated since Kubernetes 1.33) is the fallback. A deploy loads on each replica and rolls
back on all of them when one fails.

  FLIGHTDECK_TRITON_SERVICE    Service name (default triton)
  FLIGHTDECK_TRITON_NAMESPACE  its namespace (default: the pod's own namespace, else "flightdeck")
  FLIGHTDECK_TRITON_GRPC_PORT  name of the Service's gRPC port (default grpc)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from components.contracts.errors import StageFailed

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Replica:
    name: str  # pod name, or "local"
    grpc_url: str  # host:port


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _pod_name(target_ref, fallback: str) -> str:
    return getattr(target_ref, "name", None) or fallback


def from_endpoints(endpoints, port_name: str = "grpc") -> tuple[list[Replica], list[str]]:
    """Ready replicas from a core/v1 Endpoints object, and the names of those not ready."""
    ready, not_ready = [], []
    for subset in endpoints.subsets or []:
        ports = {p.name: p.port for p in subset.ports or []}
        port = ports.get(port_name) or (next(iter(ports.values())) if len(ports) == 1 else None)
        if port is None:
            raise StageFailed(f"the Triton Service endpoints have no port named {port_name!r} (ports: {sorted(ports)})")
        for addr in subset.addresses or []:
            ready.append(Replica(_pod_name(addr.target_ref, addr.ip), _hostport(addr.ip, port)))
        not_ready += [_pod_name(a.target_ref, a.ip) for a in subset.not_ready_addresses or []]
    return sorted(ready, key=lambda r: r.name), sorted(not_ready)


def from_endpoint_slices(slices, port_name: str = "grpc") -> tuple[list[Replica], list[str]]:
    """Ready replicas from discovery/v1 EndpointSlices of the Service (terminating pods excluded)."""
    ready: dict[str, Replica] = {}
    not_ready: set[str] = set()
    for sl in slices:
        ports = {p.name: p.port for p in sl.ports or []}
        port = ports.get(port_name) or (next(iter(ports.values())) if len(ports) == 1 else None)
        if port is None:
            raise StageFailed(f"the Triton EndpointSlice {sl.metadata.name if sl.metadata else '?'} has no port "
                              f"named {port_name!r} (ports: {sorted(p for p in ports if p)})")
        for ep in sl.endpoints or []:
            cond = ep.conditions
            # ready is nil-means-true per the API; terminating pods are not loaded on.
            is_ready = (cond is None or cond.ready is None or cond.ready) and not (cond and cond.terminating)
            for ip in ep.addresses or []:
                name = _pod_name(ep.target_ref, ip)
                if is_ready:
                    ready[name] = Replica(name, _hostport(ip, port))
                else:
                    not_ready.add(name)
    return sorted(ready.values(), key=lambda r: r.name), sorted(not_ready - set(ready))


def kubernetes_replicas(service: str | None = None, namespace: str | None = None, port_name: str | None = None,
                        api_client=None) -> tuple[list[Replica], list[str]]:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    service = service or os.environ.get("FLIGHTDECK_TRITON_SERVICE", "triton")
    namespace = namespace or os.environ.get("FLIGHTDECK_TRITON_NAMESPACE") or (
        SA_NAMESPACE.read_text().strip() if SA_NAMESPACE.is_file() else "flightdeck")
    port_name = port_name or os.environ.get("FLIGHTDECK_TRITON_GRPC_PORT", "grpc")
    if api_client is None:
        try:
            config.load_incluster_config()
        except config.ConfigException as exc:
            raise StageFailed(
                f"FLIGHTDECK_RUNTIME=kubernetes, but this process is not in a Kubernetes pod ({exc}); "
                "run deploy as the cluster's deploy job, or use the local runtime."
            ) from exc
    try:
        slices = client.DiscoveryV1Api(api_client).list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}").items
        if slices:
            return from_endpoint_slices(slices, port_name)
        return from_endpoints(client.CoreV1Api(api_client).read_namespaced_endpoints(service, namespace), port_name)
    except ApiException as exc:
        raise StageFailed(
            f"could not read the endpoints of Service {namespace}/{service} ({exc.status} {exc.reason}); the deploy "
            "service account needs get/list on endpointslices and endpoints in that namespace."
        ) from exc


def replicas(settings) -> list[Replica]:
    if settings.runtime != "kubernetes":
        return [Replica("local", settings.triton_url)]
    ready, not_ready = kubernetes_replicas()
    if not ready:
        raise StageFailed(
            "no ready Triton replica behind the Service"
            + (f" ({len(not_ready)} not ready: {', '.join(not_ready)})" if not_ready else "")
            + "; nothing was deployed."
        )
    return ready
