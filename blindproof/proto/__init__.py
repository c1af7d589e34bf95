"""Generated gRPC stubs of the wire contract in proto/blindproof/v1 (regenerate with
``python scripts/gen_proto.py``; never edit the *_pb2* files by hand)."""

from blindproof.proto import inference_pb2, inference_pb2_grpc, tensor_pb2

__all__ = ["inference_pb2", "inference_pb2_grpc", "tensor_pb2"]
