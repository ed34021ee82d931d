"""Fake upstreams for tests: LLM APIs (``llm_servers``) and a custom provider (``llm_custom``)."""
