"""hector-py: a self-hosted LLM agent runner with first-class observability."""

__version__ = "0.1.0"
