"""Model compression (REQUIREMENTS 8.4 e): distillation, int8 quantization and pruning, each
producing a new signed artifact whose compression.json records the method, its parameters, and
size, latency and AUC before and after."""
