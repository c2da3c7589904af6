"""What a network of the family is, as data: the architectures, variants, activations and
`ModelSpec`, torch-free.

The command line, the run folder and the model card describe networks with these; only
`skipfold.models.build` turns a spec into torch modules (`wide_resnet`, `mlp`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from skipfold.common.messages import one_line

Variant = Literal["bn", "skipinit", "skipinit-reg", "none", "none-scaled"]
VARIANT_NAMES: tuple[str, ...] = Variant.__args__
# wrn: the pre-activation Wide-ResNet (depth 6N+4, width factor k); mlp: the BN paper's fully
# connected MNIST network (depth hidden layers of width units), flattening the image
Architecture = Literal["wrn", "mlp"]
ARCHITECTURES: tuple[str, ...] = Architecture.__args__
Activation = Literal["relu", "sigmoid"]
ACTIVATIONS: tuple[str, ...] = Activation.__args__
MLP_VARIANTS = ("bn", "none")
# Variants whose residual branch ends in a learnable scalar alpha.
ALPHA_VARIANTS = ("skipinit", "skipinit-reg")
# Options given as they are (the others get each variant's default in `ModelSpec.create`)
PLAIN_OPTIONS = ("architecture", "activation", "init_scale", "input_size")
OPTIONS = ("dropout", "alpha_init", "head_dropout", *PLAIN_OPTIONS)


def check_depth(depth: int) -> int:
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"depth must be 6N+4 with N >= 1 (10, 16, 22, 28, 40, 100, 1000, ...), got {depth!r}"
        )
    return depth


def check_architecture(architecture: str, variant: str, depth: int) -> None:
    """A Wide-ResNet's depth is 6N+4; an MLP has hidden layers with BN or without anything."""
    if architecture == "wrn":
        check_depth(depth)
    elif variant not in MLP_VARIANTS:
        raise ValueError(f"the mlp comes as {' or '.join(MLP_VARIANTS)}, not {variant!r}")


def check_alpha(variant: str, alpha_init: float | None) -> None:
    """alpha_init is an option of the variants with an alpha only."""
    if alpha_init is not None and variant not in ALPHA_VARIANTS:
        raise ValueError(f"alpha_init applies to {', '.join(ALPHA_VARIANTS)}, not to {variant!r}")


Depth = Annotated[StrictInt, Field(ge=1)]  # checked against the architecture
Width = Annotated[StrictInt, Field(ge=1)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
InitScale = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class ModelSpec(BaseModel):
    """Everything that rebuilds a network: `build_model(**spec.model_dump())`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: Variant
    depth: Depth
    width: Width
    num_classes: Annotated[StrictInt, Field(ge=2)] = 10
    dropout: Probability = 0.0  # inside every block, after the second activation
    head_dropout: Probability = 0.0  # before the classifier (0.6 for skipinit-reg)
    alpha_init: Annotated[float, Field(allow_inf_nan=False)] | None = None  # alpha variants only
    architecture: Architecture = "wrn"
    activation: Activation = "relu"
    init_scale: InitScale = 1.0  # every weight's initial standard deviation multiplied by it
    input_size: tuple[Width, Width] | None = None  # (height, width): the mlp's, which flattens

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        check_architecture(self.architecture, self.variant, self.depth)
        if (self.input_size is None) != (self.architecture == "wrn"):
            raise ValueError("input_size is the mlp's (it flattens the image), and only the mlp's")
        if (self.alpha_init is not None) != (self.variant in ALPHA_VARIANTS):
            raise ValueError(
                f"alpha_init is set for the variants with an alpha ({', '.join(ALPHA_VARIANTS)}) "
                f"and only for them; got {self.alpha_init!r} for {self.variant!r}"
            )
        return self

    @classmethod
    def create(
        cls, variant: str, depth: int, width: int, num_classes: int = 10, **options: Any
    ) -> ModelSpec:
        """A spec with each variant's defaults filled in; ValueError (one line) if invalid."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(OPTIONS)}")
        if variant not in VARIANT_NAMES:
            raise ValueError(
                f"unknown variant {variant!r}; choose one of {', '.join(VARIANT_NAMES)}"
            )
        has_alpha = variant in ALPHA_VARIANTS
        check_alpha(variant, options.get("alpha_init"))
        values = {
            "variant": variant,
            "depth": depth,
            "width": width,
            "num_classes": num_classes,
            "dropout": options.get("dropout", 0.0),
            "head_dropout": options.get("head_dropout", 0.6 if variant == "skipinit-reg" else 0.0),
            "alpha_init": (options.get("alpha_init") or 0.0) if has_alpha else None,
        }
        values |= {k: options[k] for k in PLAIN_OPTIONS if options.get(k) is not None}
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ValueError(one_line(exc)) from None

    @property
    def name(self) -> str:
        """'WRN-16-4 bn' or 'MLP-3x100 bn sigmoid', the way papers name the network."""
        if self.architecture == "mlp":
            name = f"MLP-{self.depth}x{self.width} {self.variant}"
        else:
            name = f"WRN-{self.depth}-{self.width} {self.variant}"
        name += "" if self.activation == "relu" else f" {self.activation}"
        return name + ("" if self.init_scale == 1.0 else f" init x{self.init_scale:g}")
