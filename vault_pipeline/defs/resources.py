"""The vault resource: which storage backends a deployment uses, opened once per step.

``VaultResource`` turns configuration into the three storage ports (object store, catalog,
lake) and the provider clients. ``resources_for_env`` picks the configuration from
``VAULT_ENV`` when the definitions load: ``local`` (default) keeps everything under
``$VAULT_HOME``; ``prod`` uses S3 (through dagster-aws, with botocore's standard retries and
server-side encryption on every put), MongoDB and Delta on S3. Tests subclass the resource to
wire moto and mongomock in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import PrivateAttr

from vault_pipeline.providers.base import Provider
from vault_pipeline.providers.config import ConfigError, VaultConfig, load_config
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.lake import DeltaLake
from vault_pipeline.storage.object_store import ObjectStore


class VaultResource(dg.ConfigurableResource):
    """Storage and provider access for the vault's assets."""

    home: str = ".vault"
    config_path: str = "vault.yaml"
    object_store_backend: Literal["local", "s3"] = "local"
    catalog_backend: Literal["sqlite", "mongodb"] = "sqlite"
    bucket: str | None = None
    prefix: str = ""
    sse: str = "AES256"
    kms_key_id: str | None = None
    s3_max_attempts: int = 8
    region_name: str | None = None
    mongo_uri: str | None = None  # pass dg.EnvVar("VAULT_MONGO_URI"): never a literal secret
    mongo_database: str = "vault"
    lake_root: str | None = None  # default: $home/lake, or s3://{bucket}/{prefix}lake on S3

    _store: ObjectStore | None = PrivateAttr(default=None)
    _catalog: Catalog | None = PrivateAttr(default=None)
    _lake: DeltaLake | None = PrivateAttr(default=None)
    _config: VaultConfig | None = PrivateAttr(default=None)

    # ports ------------------------------------------------------------------------------
    def object_store(self) -> ObjectStore:
        if self._store is None:
            self._store = self._build_object_store()
        return self._store

    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = self._build_catalog()
        return self._catalog

    def lake(self) -> DeltaLake:
        if self._lake is None:
            self._lake = self._build_lake()
        return self._lake

    def vault_config(self) -> VaultConfig:
        """vault.yaml as of the first use in this step (read once, not per call)."""
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def provider(self, name: str) -> Provider:
        from vault_pipeline.providers.factory import build_provider

        # A push provider reads what was pushed from the vault's own inbox.
        return build_provider(self.vault_config().provider(name), store=self.object_store())

    def ledger_signer(self):
        """VAULT_LEDGER_KEY, or the key generated into ``home`` (0600) on the embedded default."""
        from vault_pipeline.core.ledger import load_or_create_ledger_key

        return load_or_create_ledger_key(Path(self.home))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        for port in (self._catalog, self._store):
            if port is not None:
                port.close()
        self._store = self._catalog = self._lake = self._config = None

    # backends ---------------------------------------------------------------------------
    def _build_object_store(self) -> ObjectStore:
        if self.object_store_backend == "s3":
            from dagster_aws.s3 import S3Resource

            from vault_pipeline.storage.s3_store import S3ObjectStore

            client = S3Resource(max_attempts=self.s3_max_attempts, region_name=self.region_name).get_client()
            return S3ObjectStore(client, self._require_bucket(), self.prefix, sse=self.sse, kms_key_id=self.kms_key_id)
        from vault_pipeline.storage.local_store import LocalObjectStore

        return LocalObjectStore(Path(self.home) / "objects")

    def _build_catalog(self) -> Catalog:
        if self.catalog_backend == "mongodb":
            from vault_pipeline.storage.mongo_catalog import MongoCatalog

            if not self.mongo_uri:
                raise dg.Failure("catalog_backend 'mongodb' needs mongo_uri (set VAULT_MONGO_URI)")
            return MongoCatalog.from_uri(self.mongo_uri, self.mongo_database)
        from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

        return SqliteCatalog(Path(self.home) / "catalog.db")

    def _build_lake(self) -> DeltaLake:
        if self.lake_root:
            root = self.lake_root
        elif self.object_store_backend == "s3":
            root = f"s3://{self._require_bucket()}/{self.prefix.strip('/') + '/' if self.prefix.strip('/') else ''}lake"
        else:
            root = str(Path(self.home) / "lake")
        options = {}
        if root.startswith("s3://"):
            for name in ("AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                if os.environ.get(name):
                    options[name] = os.environ[name]
        return DeltaLake(root, options)

    def _require_bucket(self) -> str:
        if not self.bucket:
            raise dg.Failure("object_store_backend 's3' needs a bucket (set VAULT_S3_BUCKET)")
        return self.bucket


def resources_for_env(env: str | None = None) -> dict[str, object]:
    """Resources of a deployment; read from the environment when the definitions load."""
    env = env or os.environ.get("VAULT_ENV", "local")
    home = os.environ.get("VAULT_HOME", ".vault")
    config_path = os.environ.get("VAULT_CONFIG", "vault.yaml")
    if env == "local":
        return {"vault": VaultResource(home=home, config_path=config_path)}
    if env == "prod":
        return {
            "vault": VaultResource(
                home=home,
                config_path=config_path,
                object_store_backend="s3",
                catalog_backend="mongodb",
                bucket=dg.EnvVar("VAULT_S3_BUCKET"),
                prefix=os.environ.get("VAULT_S3_PREFIX", ""),
                sse=os.environ.get("VAULT_S3_SSE", "AES256"),
                kms_key_id=os.environ.get("VAULT_S3_KMS_KEY_ID") or None,
                region_name=os.environ.get("AWS_REGION") or None,
                mongo_uri=dg.EnvVar("VAULT_MONGO_URI"),
                mongo_database=os.environ.get("VAULT_MONGO_DATABASE", "vault"),
                lake_root=os.environ.get("VAULT_LAKE_ROOT") or None,
            )
        }
    raise ValueError(f"VAULT_ENV={env!r} is not a deployment; use 'local' or 'prod'")


def resolved(vault: VaultResource) -> VaultResource:
    """``vault`` with its ``dg.EnvVar`` settings turned into their values, as a run resolves them.

    Only a Dagster run resolves a resource's EnvVar settings (reading one outside a run raises);
    code outside a run (the ``vault`` CLI, ``vault serve``, the client) gets a copy with the values.
    """
    values, missing, deferred = {}, [], False
    for name in type(vault).model_fields:
        value = getattr(vault, name)
        if isinstance(value, dg.EnvVar):
            deferred = True
            value = value.get_value()
            if not value:
                missing.append(getattr(vault, name).env_var_name)
        values[name] = value
    if missing:
        raise ConfigError(f"{', '.join(missing)} not set: the {vault.object_store_backend}/{vault.catalog_backend} "
                          "deployment (VAULT_ENV) needs it; export it")
    return type(vault)(**values) if deferred else vault


def vault_resource(env: str | None = None) -> VaultResource:
    """The deployment's ``vault`` resource for code outside a Dagster run, settings resolved."""
    return resolved(resources_for_env(env)["vault"])
