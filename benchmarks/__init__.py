"""`make bench`: every performance figure, each as a number and a ratio against a baseline
measured in the same run. Each module bench_<area>.py exposes `run(ctx) -> list[Result]`."""
