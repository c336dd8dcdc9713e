"""Device-portable compute kernels (a CPU and a CUDA path behind each function) and the device
micro-benchmarks that measure them."""
