"""pytest hooks of the nerfcompress plugin."""
