"""Data: synthetic distributions (synthetic.py); image datasets arrive with the image pipeline."""
