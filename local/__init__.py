"""The embedded runtime: template.yaml served on one machine with AWS emulated by moto's server."""
