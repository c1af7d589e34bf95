from . import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PcsParameters(_message.Message):
    __slots__ = ("security_bits", "blowup", "proximity_tests")
    SECURITY_BITS_FIELD_NUMBER: _ClassVar[int]
    BLOWUP_FIELD_NUMBER: _ClassVar[int]
    PROXIMITY_TESTS_FIELD_NUMBER: _ClassVar[int]
    security_bits: float
    blowup: int
    proximity_tests: int
    def __init__(self, security_bits: _Optional[float] = ..., blowup: _Optional[int] = ..., proximity_tests: _Optional[int] = ...) -> None: ...

class ModelCommitment(_message.Message):
    __slots__ = ("format", "version", "spec_json", "spec_digest", "weights", "params", "wellformed")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEC_DIGEST_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WELLFORMED_FIELD_NUMBER: _ClassVar[int]
    format: str
    version: int
    spec_json: str
    spec_digest: bytes
    weights: bytes
    params: PcsParameters
    wellformed: bytes
    def __init__(self, format: _Optional[str] = ..., version: _Optional[int] = ..., spec_json: _Optional[str] = ..., spec_digest: _Optional[bytes] = ..., weights: _Optional[bytes] = ..., params: _Optional[_Union[PcsParameters, _Mapping]] = ..., wellformed: _Optional[bytes] = ...) -> None: ...

class SoundnessTerm(_message.Message):
    __slots__ = ("name", "provable_bits", "conjectured_bits")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVABLE_BITS_FIELD_NUMBER: _ClassVar[int]
    CONJECTURED_BITS_FIELD_NUMBER: _ClassVar[int]
    name: str
    provable_bits: float
    conjectured_bits: float
    def __init__(self, name: _Optional[str] = ..., provable_bits: _Optional[float] = ..., conjectured_bits: _Optional[float] = ...) -> None: ...

class Soundness(_message.Message):
    __slots__ = ("provable_bits", "conjectured_bits", "terms")
    PROVABLE_BITS_FIELD_NUMBER: _ClassVar[int]
    CONJECTURED_BITS_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    provable_bits: float
    conjectured_bits: float
    terms: _containers.RepeatedCompositeFieldContainer[SoundnessTerm]
    def __init__(self, provable_bits: _Optional[float] = ..., conjectured_bits: _Optional[float] = ..., terms: _Optional[_Iterable[_Union[SoundnessTerm, _Mapping]]] = ...) -> None: ...

class ModelProof(_message.Message):
    __slots__ = ("format", "version", "model_digest", "spec_digest", "params", "start", "inputs", "outputs", "trace_commitment", "program_proof", "trace_opening", "weight_opening", "soundness", "trace_claims", "weight_claims", "companion_commitment", "public_digest")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SPEC_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TRACE_COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_PROOF_FIELD_NUMBER: _ClassVar[int]
    TRACE_OPENING_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_OPENING_FIELD_NUMBER: _ClassVar[int]
    SOUNDNESS_FIELD_NUMBER: _ClassVar[int]
    TRACE_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    COMPANION_COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_DIGEST_FIELD_NUMBER: _ClassVar[int]
    format: str
    version: int
    model_digest: bytes
    spec_digest: bytes
    params: PcsParameters
    start: int
    inputs: _containers.RepeatedCompositeFieldContainer[NamedTensor]
    outputs: _containers.RepeatedCompositeFieldContainer[NamedTensor]
    trace_commitment: bytes
    program_proof: bytes
    trace_opening: bytes
    weight_opening: bytes
    soundness: Soundness
    trace_claims: int
    weight_claims: int
    companion_commitment: bytes
    public_digest: bytes
    def __init__(self, format: _Optional[str] = ..., version: _Optional[int] = ..., model_digest: _Optional[bytes] = ..., spec_digest: _Optional[bytes] = ..., params: _Optional[_Union[PcsParameters, _Mapping]] = ..., start: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[NamedTensor, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[NamedTensor, _Mapping]]] = ..., trace_commitment: _Optional[bytes] = ..., program_proof: _Optional[bytes] = ..., trace_opening: _Optional[bytes] = ..., weight_opening: _Optional[bytes] = ..., soundness: _Optional[_Union[Soundness, _Mapping]] = ..., trace_claims: _Optional[int] = ..., weight_claims: _Optional[int] = ..., companion_commitment: _Optional[bytes] = ..., public_digest: _Optional[bytes] = ...) -> None: ...

class NamedTensor(_message.Message):
    __slots__ = ("name", "tensor")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    tensor: _tensor_pb2.Tensor
    def __init__(self, name: _Optional[str] = ..., tensor: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...
