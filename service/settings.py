"""The server's settings as it runs: `ServeOptions` (the fields, declared once) read from
flags and SKIPFOLD_* environment variables, flags winning."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from skipfold.service.model_selection import parse_selection
from skipfold.service.options import ENV_PREFIX, ServeOptions


class Settings(BaseSettings, ServeOptions):
    """`ServeOptions` with its environment: SKIPFOLD_ + the field's name in capitals."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    def allowed_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def pinned_versions(self) -> dict[str, list[int]]:
        """`models` parsed: name -> pinned versions (an empty list means the latest)."""
        return parse_selection(self.models)
