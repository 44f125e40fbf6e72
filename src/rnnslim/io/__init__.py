"""Model files: safetensors weights + a versioned JSON manifest. No pickle anywhere."""
