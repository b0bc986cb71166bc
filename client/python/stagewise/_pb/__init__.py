"""gRPC stubs generated from the repository's proto/ when the package is built (setup.py)."""
