// The names gRPC gives its status codes, for messages, logs and metric labels.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

namespace hybrid::net {

// "UNAVAILABLE", "DEADLINE_EXCEEDED", ...; "status N" for a number outside gRPC's codes.
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace hybrid::net
