"""`python -m sympscale.bringup`: the node's week-one gating check in one command, with a report.

Sections, in order: devices (the launcher's detection against JAX's), isolation (a job process sees exactly
one device), numerics (the study's float64 operations on the device against the CPU), memory (predicted and
measured peak per strategy at the headline configuration), speed (its step time against a float64 GEMM), data
(generation time of each system's largest dataset) and sweep (one job per device through the real launcher).
"""
