"""How the bundled default models are made: the corpus they come from, the command line
that trains and exports them (recipe.py) and each modality's recipe (image.py,
speech.py). The scripts under benchmarks/ are thin entry points onto this; nothing
under unicomp/core/ imports it."""
