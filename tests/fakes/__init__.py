"""Loopback servers that speak the real APIs (Ollama, OpenAI, Confluence, a chat webhook), for
the tests and the benchmarks: a fault is scripted on the server, the client under test is the
real one."""
