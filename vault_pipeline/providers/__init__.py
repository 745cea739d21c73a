"""Provider clients: where records come from (REST APIs over httpx, or the built-in simulator).

Providers are configured in ``vault.yaml``; ``build_provider`` turns a configuration entry into
a client that yields byte-exact response pages for an hourly window.
"""
