"""The conformance harness: start the real `stratus` binary and drive it with the official Python SDK."""
