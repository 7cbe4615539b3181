"""Training configuration: what to read, the model, and how to fit it. Loaded from YAML, validated."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from workloads.common.models import Strict, problems


class ModelConfig(Strict):
    hidden_layers: list[int] = Field(default_factory=lambda: [64, 32], min_length=1)
    dropout: float = Field(0.1, ge=0, lt=1)


class SplitConfig(Strict):
    validation: float = Field(0.15, gt=0, lt=0.5)
    test: float = Field(0.15, gt=0, lt=0.5)


class TrainConfig(Strict):
    model_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="the registered model's name")
    label_table: str
    label: str
    feature_tables: list[str] = Field(min_length=1)
    as_of: dict[str, str] = Field(
        default_factory=dict, description="table -> instant; unset tables are read at their latest commit"
    )
    model: ModelConfig = ModelConfig()
    split: SplitConfig = SplitConfig()
    epochs: int = Field(60, ge=1, le=1000)
    batch_size: int = Field(256, ge=8)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    class_weighting: bool = Field(False, description="weight positives by negatives/positives; shifts probabilities")
    patience: int = Field(8, ge=1, description="epochs without a better validation loss before stopping")
    seed: int = 42

    @model_validator(mode="after")
    def _tables(self) -> TrainConfig:
        if unknown := set(self.as_of) - {self.label_table, *self.feature_tables}:
            raise ValueError(f"as_of names tables this config does not read: {sorted(unknown)}")
        return self


class ConfigError(Exception):
    pass


def load_config(path: str | Path, **overrides) -> TrainConfig:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return TrainConfig.model_validate({**data, **overrides})
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except ValidationError as e:
        listed = "\n".join(f"  {p}" for p in problems(e, root="(config)"))
        raise ConfigError(f"{path}: invalid training config\n{listed}") from None
