"""A client of hybrid's cloud server written against the published protocol only: stubs generated
from net/proto/*.proto, Debian's python3-grpcio. It reads the server's and the model's metadata,
checks health, runs an inference with raw FP32 contents, checks that a malformed request is refused,
and compares the server's answer with the C API (libhybrid through ctypes) run on the same input.

Usage: python_client.py PORT MODEL_FILE LIBHYBRID STUBS_DIR
"""
import array
import ctypes
import random
import sys

port, model_file, libhybrid, stubs = sys.argv[1:5]
sys.path.insert(0, stubs)
import grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import inference_pb2 as pb  # noqa: E402
import inference_pb2_grpc  # noqa: E402

channel = grpc.insecure_channel(f"127.0.0.1:{port}")
stub = inference_pb2_grpc.GRPCInferenceServiceStub(channel)

assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
server = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
assert server.name == "hybrid", server
health = health_pb2_grpc.HealthStub(channel).Check(
    health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"), timeout=10)
assert health.status == health_pb2.HealthCheckResponse.SERVING, health

# The model: the server's only one here.
lib = ctypes.CDLL(libhybrid)
model = ctypes.c_void_p()
assert lib.hybrid_model_load(model_file.encode(), ctypes.byref(model)) == 0
name = ctypes.c_char_p()
assert lib.hybrid_model_name(model, ctypes.byref(name)) == 0
meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=name.value.decode()), timeout=10)
assert len(meta.inputs) == 1 and len(meta.outputs) == 1, meta
tensor = meta.inputs[0]
assert tensor.datatype == "FP32" and tensor.shape[0] == -1, tensor
values = 1
for d in tensor.shape[1:]:
    values *= d
classes = meta.outputs[0].shape[1]
print(f"model {meta.name} version {meta.versions[0]}: input {tensor.name} {tensor.datatype} "
      f"{list(tensor.shape)}, output {meta.outputs[0].name} [-1, {classes}]")

# An inference of 3 samples with raw contents.
count = 3
rng = random.Random(5)
features = array.array("f", (rng.uniform(0, 2) for _ in range(count * values)))
request = pb.ModelInferRequest(model_name=meta.name, id="py-1")
request.inputs.add(name=tensor.name, datatype="FP32", shape=[count] + list(tensor.shape[1:]))
request.raw_input_contents.append(features.tobytes())
response = stub.ModelInfer(request, timeout=30)
assert response.id == "py-1" and response.model_version == meta.versions[0], response
out = response.outputs[0]
assert out.datatype == "FP32" and list(out.shape) == [count, classes], out
probs = array.array("f")
probs.frombytes(response.raw_output_contents[0])
for i in range(count):
    row = probs[i * classes:(i + 1) * classes]
    assert abs(sum(row) - 1) < 1e-4, row

# The same input through the C API in this process: the same probabilities, bit for bit.
cloud = ctypes.c_void_p()
assert lib.hybrid_cloud_create(model, None, ctypes.byref(cloud)) == 0, \
    ctypes.c_char_p(lib.hybrid_last_error()).value
inputs = (ctypes.POINTER(ctypes.c_float) * 1)(
    (ctypes.c_float * len(features)).from_buffer(features))
sizes = (ctypes.c_int64 * 1)(values)
local = (ctypes.c_float * (count * classes))()
lib.hybrid_last_error.restype = ctypes.c_char_p
status = lib.hybrid_cloud_run(cloud, count, 1, inputs, sizes, local, classes)
assert status == 0, lib.hybrid_last_error()
assert list(local) == list(probs), (list(local), list(probs))
lib.hybrid_cloud_destroy(cloud)
lib.hybrid_model_destroy(model)

# A malformed request is refused with INVALID_ARGUMENT naming the problem.
bad = pb.ModelInferRequest(model_name=meta.name)
bad.inputs.add(name=tensor.name, datatype="INT8", shape=[1] + list(tensor.shape[1:]))
bad.raw_input_contents.append(bytes(values))
try:
    stub.ModelInfer(bad, timeout=10)
    sys.exit("a request with the wrong datatype was answered")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert "datatype INT8" in e.details(), e.details()
print("ok: the Python client read the metadata, ran an inference equal to the C API's, and got "
      "INVALID_ARGUMENT for a wrong datatype")
