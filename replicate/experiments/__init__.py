"""One module per paper artifact (table or figure); the registry of all of them is replicate.registry."""
