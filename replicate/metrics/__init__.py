"""Metrics: codebook statistics (codebook.py); image metrics arrive with the image pipeline."""
