from . import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeployHeader(_message.Message):
    __slots__ = ("digest", "total_bytes", "key_id", "label", "mode")
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    digest: str
    total_bytes: int
    key_id: str
    label: str
    mode: str
    def __init__(self, digest: _Optional[str] = ..., total_bytes: _Optional[int] = ..., key_id: _Optional[str] = ..., label: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: DeployHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[DeployHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("deployment_id", "digest", "key_id", "label", "model_json", "size_bytes", "created_unix")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_JSON_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    digest: str
    key_id: str
    label: str
    model_json: str
    size_bytes: int
    created_unix: float
    def __init__(self, deployment_id: _Optional[str] = ..., digest: _Optional[str] = ..., key_id: _Optional[str] = ..., label: _Optional[str] = ..., model_json: _Optional[str] = ..., size_bytes: _Optional[int] = ..., created_unix: _Optional[float] = ...) -> None: ...

class DeployReply(_message.Message):
    __slots__ = ("deployment", "existed", "model_commitment")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    existed: bool
    model_commitment: bytes
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., existed: _Optional[bool] = ..., model_commitment: _Optional[bytes] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDeploymentsReply(_message.Message):
    __slots__ = ("deployments",)
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("deployment_id",)
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    def __init__(self, deployment_id: _Optional[str] = ...) -> None: ...

class DeleteDeploymentReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("deployment_id", "input", "start", "prove")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    PROVE_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    input: _tensor_pb2.Tensor
    start: int
    prove: bool
    def __init__(self, deployment_id: _Optional[str] = ..., input: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., start: _Optional[int] = ..., prove: _Optional[bool] = ...) -> None: ...

class InferReply(_message.Message):
    __slots__ = ("output", "request_id", "job_id")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    output: _tensor_pb2.Tensor
    request_id: str
    job_id: str
    def __init__(self, output: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., request_id: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GenerateOpen(_message.Message):
    __slots__ = ("deployment_id",)
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    def __init__(self, deployment_id: _Optional[str] = ...) -> None: ...

class GenerateStep(_message.Message):
    __slots__ = ("input",)
    INPUT_FIELD_NUMBER: _ClassVar[int]
    input: _tensor_pb2.Tensor
    def __init__(self, input: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("open", "step")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    open: GenerateOpen
    step: GenerateStep
    def __init__(self, open: _Optional[_Union[GenerateOpen, _Mapping]] = ..., step: _Optional[_Union[GenerateStep, _Mapping]] = ...) -> None: ...

class GenerateReply(_message.Message):
    __slots__ = ("output", "length")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    output: _tensor_pb2.Tensor
    length: int
    def __init__(self, output: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., length: _Optional[int] = ...) -> None: ...
