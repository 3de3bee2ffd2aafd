"""Data: synthetic distributions (synthetic.py) and image datasets (images.py)."""
