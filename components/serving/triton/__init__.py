"""Serving through NVIDIA Triton: the server process, the model repository, the client.

  server      start/stop a real tritonserver from the nvidia-pytriton wheel (`flightdeck serve`)
  repository  write <repo>/<model>/<version>/ and config.pbtxt for the gpu or cpu target
  client      model control (with the admin key) and scoring over gRPC, with retries
  routing     serving state, canary assignment, shadow records, the comparison report
  replicas    which Triton servers a deploy loads on (local, or the Kubernetes Service endpoints)
"""
