"""What the TPU estimates assume of a chip (salsa.aot's step-time bound, extraction's clips per host).

TPU v4: 275 TFLOP/s peak bf16 matmul rate and 1.2 TB/s HBM bandwidth per chip, 32 GiB of HBM, one
megacore device per chip, 4 chips per host (a v4-8 is one host, a v4-32 four).
"""

PEAK_FLOPS = {"v4": 275e12}
HBM_BANDWIDTH = {"v4": 1.2e12}
HBM_BYTES = {"v4": 32 * 2**30}
CHIPS_PER_HOST = {"v4": 4}
