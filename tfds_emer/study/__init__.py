"""A study of your own: a folder of recordings from any supported eye tracker, labelled your way,
checked and built into the TFDS dataset `emer_study/<name>`."""
