"""Fine-tuning: datasets, LoRA training on the serving weights, adapter export to GGUF, jobs."""
