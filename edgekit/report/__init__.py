"""Reports of a run: manifest.json and the terminal matrix."""
