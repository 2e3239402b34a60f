"""Core services every stage uses: settings, the artifact store, metrics, the run log, the cluster.

  settings    FLIGHTDECK_* settings and profiles (local, aws), secret settings
  store       the artifact store (file:// or s3://) callers import, and open_store; built from
              artifact_store (the interface, publish), local_store and s3_store (the backends)
  metrics     the Prometheus metrics flightdeck exports, named in one place
  runlog      the run log each pipeline writes (flightdeck status, PipelineRunFailed)
  images      stage -> container image (containers/images.yaml)
  cluster     what a stage pod gets from the cluster: settings ConfigMap, Secrets, security context
"""
