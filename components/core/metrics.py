"""The Prometheus metrics flightdeck exports, named in one place.

The monitor stage renders them in the text exposition format (metrics.prom next to each day's
report) and pushes them to a Pushgateway when FLIGHTDECK_PUSHGATEWAY_URL is set (job
flightdeck_monitor, grouping key model); the run log (components.core.runlog) does the same with the
pipeline-run gauges of each recorded run (job flightdeck_pipeline, grouping key pipeline). The alert rules and the Grafana
dashboard in infra/monitoring/ use these names; a test checks that every name they use is
defined here (or is one of Triton's own nv_* metrics).

Each run builds its own CollectorRegistry, so nothing leaks between runs or into the
process-wide default registry.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

PREFIX = "flightdeck_"

MONITOR_JOB = "flightdeck_monitor"
PIPELINE_JOB = "flightdeck_pipeline"

# name -> (help, label names). Gauges only: every value is a level measured by one run.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "flightdeck_drift_share": ("Share of monitored features whose drift test fired (0..1)", ("model",)),
    "flightdeck_feature_drift_score": ("Drift score of one feature against the model's reference sample",
                                       ("model", "feature", "method")),
    "flightdeck_feature_drift_detected": ("1 when the feature's drift score is at or above its threshold",
                                          ("model", "feature")),
    "flightdeck_prediction_drift_score": ("PSI of the scored probabilities against the reference predictions",
                                          ("model",)),
    "flightdeck_model_auc": ("ROC AUC on the labelled days of the monitoring window", ("model", "version")),
    "flightdeck_model_holdout_auc": ("ROC AUC of the serving version on its evaluation holdout", ("model", "version")),
    "flightdeck_model_log_loss": ("Log loss on the labelled days of the monitoring window", ("model", "version")),
    "flightdeck_model_calibration_error": ("Expected calibration error (10 bins) on the labelled days",
                                           ("model", "version")),
    "flightdeck_predicted_late_rate": ("Mean predicted probability of a late flight on the monitored day", ("model",)),
    "flightdeck_observed_late_rate": ("Observed share of late flights on the labelled days", ("model",)),
    "flightdeck_prediction_count": ("Flights scored on the monitored day", ("model",)),
    "flightdeck_labelled_count": ("Scored flights with a label, over the monitoring window", ("model",)),
    "flightdeck_feature_freshness_seconds": ("Seconds since the online store was last materialized", ("model",)),
    "flightdeck_serving_model_version": ("Model version that scored the monitored day (0: unknown)",
                                         ("model", "target")),
    "flightdeck_retrain_recommended": ("1 when the retraining policy decided to retrain", ("model",)),
    "flightdeck_refused_candidates": ("Candidates evaluate refused against the serving version since its "
                                      "training window", ("model",)),
    "flightdeck_monitored_day_timestamp_seconds": ("Start (UTC) of the day this run monitored", ("model",)),
    "flightdeck_predictions_last_published_timestamp_seconds": ("When the monitored day's predictions were published",
                                                                 ("model",)),
    # The retraining policy in force (components/monitoring/policy.py, with its FLIGHTDECK_RETRAIN_*
    # overrides), exported by every monitor run so the drift and performance alerts compare against
    # the same thresholds the policy uses instead of copies of its defaults.
    "flightdeck_policy_drift_share_threshold": ("Retraining policy: a day whose drift share reaches this is drifted",
                                                ("model",)),
    "flightdeck_policy_consecutive_days": ("Retraining policy: drifted days in a row that trigger a retrain",
                                           ("model",)),
    "flightdeck_policy_auc_drop": ("Retraining policy: ROC AUC drop below the holdout AUC that triggers a retrain",
                                   ("model",)),
    "flightdeck_policy_auc_window_days": ("Retraining policy: days over which the monitored ROC AUC is pooled",
                                          ("model",)),
    "flightdeck_policy_min_labelled_rows": ("Retraining policy: labels needed before the pooled ROC AUC counts",
                                            ("model",)),
    # Pipeline runs: written and pushed by components.core.runlog.record_run at the end of every recorded
    # run (job flightdeck_pipeline, one Pushgateway group per pipeline), not by the monitor.
    "flightdeck_pipeline_last_success_timestamp_seconds": ("Last successful run of a pipeline", ("pipeline",)),
    "flightdeck_pipeline_last_run_timestamp_seconds": ("Last run of a pipeline, whatever its outcome", ("pipeline",)),
    "flightdeck_pipeline_last_run_failed": ("1 when the last run of a pipeline failed", ("pipeline",)),
    "flightdeck_monitor_last_success_timestamp_seconds": ("When the monitor stage last finished", ("model",)),
    # The rollout of a new champion (components/serving/rollout_report.py, job flightdeck_rollout).
    "flightdeck_rollout_rolled_back": ("1 when the guardrails rolled the challenger's rollout back",
                                       ("model", "challenger")),
    "flightdeck_rollout_step": ("Rollout step of the challenger: 0 shadow, 1 canary 10%, 2 canary 50%, 3 full",
                                ("model", "challenger")),
}


class MetricsWriter:
    """Gauges on a private CollectorRegistry; `render()` gives the text format."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self._gauges: dict[str, Gauge] = {}

    def set(self, name: str, value: float | int | None, **labels: str) -> None:
        if value is None:
            return  # an unknown value is left out, not exported as 0 (which would fire alerts)
        if name not in METRICS:
            raise KeyError(f"{name} is not declared in components.core.metrics.METRICS")
        help_text, label_names = METRICS[name]
        if set(labels) != set(label_names):
            raise ValueError(f"{name} takes labels {label_names}, got {sorted(labels)}")
        gauge = self._gauges.get(name)
        if gauge is None:
            gauge = self._gauges[name] = Gauge(name, help_text, label_names, registry=self.registry)
        gauge.labels(**{k: str(v) for k, v in labels.items()}).set(float(value))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def push(writer: MetricsWriter, gateway: str, job: str = MONITOR_JOB, grouping_key: dict | None = None,
         timeout: float = 10.0) -> None:
    """Replace this job's group on a Pushgateway with the writer's metrics (PUT semantics)."""
    from prometheus_client import push_to_gateway

    push_to_gateway(gateway, job=job, registry=writer.registry, grouping_key=grouping_key or {}, timeout=timeout)


# Triton's own metrics (its :8002/metrics endpoint), as documented in Triton's metrics guide; the
# *_summary_us families appear with --metrics-config=summary_latencies=true. A test scrapes a real
# tritonserver and checks every nv_* family it exports is listed here.
TRITON_METRICS = frozenset({
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
    "nv_inference_exec_count", "nv_inference_pending_request_count",
    "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_inference_request_summary_us", "nv_inference_queue_summary_us", "nv_inference_compute_input_summary_us",
    "nv_inference_compute_infer_summary_us", "nv_inference_compute_output_summary_us",
    "nv_inference_first_response_histogram_ms",
    "nv_cache_num_hits_per_model", "nv_cache_num_misses_per_model", "nv_cache_hit_duration_per_model",
    "nv_cache_miss_duration_per_model",
    "nv_gpu_utilization", "nv_gpu_memory_total_bytes", "nv_gpu_memory_used_bytes", "nv_gpu_power_usage",
    "nv_gpu_power_limit", "nv_energy_consumption",
    "nv_cpu_utilization", "nv_cpu_memory_total_bytes", "nv_cpu_memory_used_bytes",
    "nv_pinned_memory_pool_total_bytes", "nv_pinned_memory_pool_used_bytes",
})
# Standard series from Prometheus itself and kube-state-metrics that the alert rules use.
EXTERNAL_METRICS = frozenset({"up", "kube_deployment_status_replicas_ready", "kube_deployment_spec_replicas"})
