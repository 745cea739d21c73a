"""The vault's HTTP API for auditors and services (FastAPI): ingest jobs, log search, raw bytes.

``app.create_app`` builds the application from its collaborators (catalog, object store, job
service, key ring) so tests can wire mocks in; ``server`` is the ``vault serve`` entry point.
"""
