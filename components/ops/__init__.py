"""What people run: the CLI, on-call tools, the local server and the demo (the top layer).

  cli           the `flightdeck` command: every stage and command, listed in one place
  oncall        `flightdeck status` and `flightdeck rollback`
  registry_cli  `flightdeck registry`
  report_cli    `flightdeck monitor-report`: the HTML drift report of a monitored day, on demand
  serve         `flightdeck serve`: the local Triton server
  demo          `make demo`: the whole lifecycle on the local profile
  gpu_check     `make gpu-check`: CUDA training, GPU scoring and Triton on KIND_GPU against CPU (its Triton
                part in gpu_check_triton)

The commands: README.md, "The CLI"; what to do when an alert fires: RUNBOOK.md; the layers:
docs/ARCHITECTURE.md.
"""
