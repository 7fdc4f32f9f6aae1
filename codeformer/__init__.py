"""CodeFormer face restoration: the pure library behind the ComfyUI nodes and the CLI (no ComfyUI imports)."""
