"""Rate–distortion and speed measurements of unicomp against baseline codecs."""
