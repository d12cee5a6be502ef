"""torch reference backend (placeholder until its kernels land)."""
