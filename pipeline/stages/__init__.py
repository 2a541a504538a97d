"""The pipeline stages, one module each, in flow order: detect, segment, depth, edges, generate, validate."""
