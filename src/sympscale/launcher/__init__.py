"""Process-per-device launching: device discovery, the job scheduler, and the child-process entry point.

The parent never imports JAX: it only discovers devices, queues jobs and starts one fresh Python process per
job with exactly one device visible. The Hydra plugin (`hydra_plugins.sympscale_launcher`) is a thin wrapper.
"""
