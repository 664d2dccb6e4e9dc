"""Names and schemas that the server, the worker and the core library must agree on.

Torch-free and web-free (standard library and pydantic only), so every layer may import it:
a string that two layers share lives here once, not as a literal in each.
"""
