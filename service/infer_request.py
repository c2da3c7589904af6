"""The Open Inference Protocol's inference request body, as a typed model.

One type checks every request before any work (and documents the body in the OpenAPI spec):
wrong types, a negative `classification`, parameters that are lists, integers as strings are a
400 that names the field. Fields the protocol does not define are ignored, as Triton does
(KServe's client sends `model_name`, for one). The JSON is parsed by pydantic's own parser,
which bounds nesting depth and integer size while it reads, so a hostile body costs no more
than its length.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
# The protocol's tensor datatypes; a model says which one each of its inputs takes.
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES", "BF16",
]  # fmt: skip


MAX_PARAMETERS = 64


class _Parameters(BaseModel):
    """Parameters the protocol lets clients add; the ones skipfold reads are typed fields.
    The others are checked here, stopping at the first bad one: a body of a million bad
    parameters is one error, not a million."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Any] = Field(init=False)

    @model_validator(mode="after")
    def _extra_values(self) -> _Parameters:
        extra = self.__pydantic_extra__ or {}
        if len(extra) > MAX_PARAMETERS:
            raise ValueError(f"{len(extra):,} parameters; at most {MAX_PARAMETERS}")
        for key, value in extra.items():
            if value is None or not isinstance(value, str | bool | int | float):
                raise ValueError(f"parameter {key!r} must be a string, number or boolean")
        return self


class RequestParameters(_Parameters):
    binary_data_output: StrictBool = Field(
        False, description="binary tensor data extension: every output as raw bytes"
    )


class InputParameters(_Parameters):
    binary_data_size: NonNegativeInt | None = Field(
        None, description="the tensor's bytes follow the JSON header (binary extension)"
    )


class OutputParameters(_Parameters):
    binary_data: StrictBool | None = Field(None, description="this output as raw bytes")
    classification: NonNegativeInt | None = Field(
        None, description="classification extension: the top k as 'score:index:label' (0: off)"
    )


class InferInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: StrictStr
    shape: list[NonNegativeInt] = Field(max_length=8)
    datatype: Datatype
    parameters: InputParameters | None = None
    data: list[Any] | None = Field(
        None, description="the tensor's values, flat or nested, row-major (integers for UINT8)"
    )


class RequestedOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: StrictStr
    parameters: OutputParameters | None = None


class InferRequest(BaseModel):
    """POST /v2/models/{name}[/versions/{v}]/infer, the JSON part."""

    model_config = ConfigDict(frozen=True)

    id: StrictStr | None = Field(None, max_length=256, description="echoed in the response")
    parameters: RequestParameters | None = None
    inputs: list[InferInput] = Field(min_length=1, max_length=16)
    outputs: list[RequestedOutput] | None = Field(
        None, max_length=16, description="default: every output of the model"
    )
