"""Everything that is the same for every signal: quantizer, search, coder, format, trainer."""
