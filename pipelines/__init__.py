"""Kubeflow Pipelines v2 definitions of the lifecycle, built from the same stage entry functions."""
