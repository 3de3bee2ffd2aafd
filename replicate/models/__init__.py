"""Models: MLP autoencoders for the synthetic studies (mlp.py); the image encoders and decoders arrive with the
image pipeline."""
