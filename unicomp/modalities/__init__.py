"""Built-in modalities: each says how a file becomes a tensor and back."""
