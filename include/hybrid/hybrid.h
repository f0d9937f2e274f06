/* The C API of hybrid, an inference engine for networks split between an edge device and the
   cloud: load a model, create a session, classify images. The session runs the model's edge
   partition, scores each input with a router, answers at the edge when the score is at or below
   the threshold and otherwise sends the input's cloud-side tensors through a transport (the cloud
   partition in this process by default) to the cloud partition.

   Conventions:
   - Every function returns a hybrid_status; HYBRID_OK is 0. On failure, hybrid_last_error() gives
     a message that says what is wrong; output parameters are then left unchanged.
   - Objects are opaque handles made by *_create or hybrid_model_load* and released by *_destroy.
     Destroying NULL does nothing; a handle that was destroyed, or that is not a handle of the
     expected kind, is refused with HYBRID_INVALID_ARGUMENT rather than used.
   - Threads: a model is immutable once loaded, so any number of threads may read it and create
     sessions from it at once. A session or a cloud is used by one thread at a time (a second
     thread calling into a session that is running gets HYBRID_BUSY). Options are not shared
     between threads while being set.
   - No function throws, aborts or keeps a pointer it was given beyond the call, except where
     noted (hybrid_model_load_from_memory, hybrid_options_set_transport). */
#ifndef HYBRID_HYBRID_H_
#define HYBRID_HYBRID_H_

#include <stddef.h>
#include <stdint.h>

#include "hybrid/version.h"

#if defined(__GNUC__)
#define HYBRID_API __attribute__((visibility("default")))
#else
#define HYBRID_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hybrid_status {
  HYBRID_OK = 0,
  HYBRID_INVALID_ARGUMENT = 1, /* a null pointer, a value out of range, a size that does not match,
                                  a destroyed or foreign handle */
  HYBRID_NOT_FOUND = 2,        /* a model file that cannot be opened, an output the model lacks */
  HYBRID_INVALID_MODEL = 3,    /* a model file that is corrupt, truncated or of another format */
  HYBRID_UNSUPPORTED = 4,      /* a model this build cannot run with the options given */
  HYBRID_UNAVAILABLE = 5,      /* returned by a transport whose cloud could not answer */
  HYBRID_BUSY = 6,             /* a session or cloud called from a second thread while running */
  HYBRID_OUT_OF_MEMORY = 7,
  HYBRID_INTERNAL = 8, /* a bug in hybrid: please report it with the message */
  HYBRID_REFUSED = 9   /* the cloud refused the request (another model version, a wrong token) */
} hybrid_status;

/* The library's version, "MAJOR.MINOR.PATCH" (compare with HYBRID_VERSION_STRING, the headers'). */
HYBRID_API const char* hybrid_version(void);

/* The model file format version this library reads (HYBRID_MODEL_FORMAT_VERSION of its build). */
HYBRID_API int32_t hybrid_model_format_version(void);

/* The message of the last call on this thread that failed ("" if none); valid until the next
   failing call on this thread. */
HYBRID_API const char* hybrid_last_error(void);

/* The name of a status code ("HYBRID_OK", "HYBRID_INVALID_ARGUMENT", ...); "unknown" otherwise. */
HYBRID_API const char* hybrid_status_name(hybrid_status status);

/* ---- Models ---- */

typedef struct hybrid_model hybrid_model;

/* Loads a model file (memory-mapped and verified). */
HYBRID_API hybrid_status hybrid_model_load(const char* path, hybrid_model** model);

/* Loads a model from `size` bytes at `data`, which the caller owns and must keep unchanged until
   the model and every session and cloud made from it are destroyed. 64-byte aligned data is used
   in place; otherwise the weights are copied. */
HYBRID_API hybrid_status hybrid_model_load_from_memory(const void* data, size_t size,
                                                       hybrid_model** model);

/* Releases the caller's handle. Sessions and clouds made from the model stay valid. */
HYBRID_API hybrid_status hybrid_model_destroy(hybrid_model* model);

/* The model's name as written by the trainer (owned by the model). */
HYBRID_API hybrid_status hybrid_model_name(const hybrid_model* model, const char** name);

/* The shape of one input image, NHWC: height, width and channels (pixels per image = h * w * c). */
HYBRID_API hybrid_status hybrid_model_input_shape(const hybrid_model* model, int32_t* height,
                                                  int32_t* width, int32_t* channels);

/* The number of classes the model answers. */
HYBRID_API hybrid_status hybrid_model_classes(const hybrid_model* model, int32_t* classes);

/* The name of class `index` (owned by the model), or its number as text when the model names none.
 */
HYBRID_API hybrid_status hybrid_model_class_name(const hybrid_model* model, int32_t index,
                                                 const char** name);

/* The number of named outputs (exits, the final classifier, the router). */
HYBRID_API hybrid_status hybrid_model_output_count(const hybrid_model* model, int32_t* count);

/* Output `index`: its name and its kind, "exit", "final", "router" or "other" (owned by the model).
 */
HYBRID_API hybrid_status hybrid_model_output(const hybrid_model* model, int32_t index,
                                             const char** name, const char** kind);

/* The number of tensors the cloud partition reads (0 for a model that runs at the edge only). */
HYBRID_API hybrid_status hybrid_model_cloud_input_count(const hybrid_model* model, int32_t* count);

/* Cloud input `index`: its name (owned by the model) and the floats it holds per sample. */
HYBRID_API hybrid_status hybrid_model_cloud_input(const hybrid_model* model, int32_t index,
                                                  const char** name, int64_t* values_per_sample);

/* ---- Options for sessions and clouds ---- */

typedef struct hybrid_options hybrid_options;

/* Options with their defaults: edge backend "native", cloud backend "onednn", every core, batch 1,
   the model's default exit and router, threshold 0, no abstaining, the cloud in this process. */
HYBRID_API hybrid_status hybrid_options_create(hybrid_options** options);
HYBRID_API hybrid_status hybrid_options_destroy(hybrid_options* options);

/* The backend of the edge partition: "native" (binary and low-bit layers on hybrid's kernels, the
   rest on oneDNN), "onednn", "xnnpack" or "ref". */
HYBRID_API hybrid_status hybrid_options_set_edge_backend(hybrid_options* options,
                                                         const char* backend);

/* The backend of the cloud partition when it runs in this process (same names). */
HYBRID_API hybrid_status hybrid_options_set_cloud_backend(hybrid_options* options,
                                                          const char* backend);

/* Worker threads of each partition; 0 uses every core. */
HYBRID_API hybrid_status hybrid_options_set_threads(hybrid_options* options, int32_t threads);

/* Images run through the edge partition at once (>= 1); hybrid_session_classify takes any count. */
HYBRID_API hybrid_status hybrid_options_set_batch(hybrid_options* options, int32_t batch);

/* The output whose probabilities answer at the edge: "" picks the model's own ("edge" for a
   selective-query model, else its last exit). Checked against the model by session_create. */
HYBRID_API hybrid_status hybrid_options_set_exit(hybrid_options* options, const char* output);

/* How inputs are scored: "learned" (the model's router; the default when it has one), "entropy"
   (the default otherwise), "maxprob" or "margin". Higher scores mean less confident. */
HYBRID_API hybrid_status hybrid_options_set_router(hybrid_options* options, const char* router);

/* Scores at or below the threshold are answered at the edge, the others in the cloud. INFINITY
   keeps every input at the edge, -INFINITY sends them all; `hybrid eval` finds the threshold for a
   target coverage. NaN is refused. */
HYBRID_API hybrid_status hybrid_options_set_threshold(hybrid_options* options, float threshold);

/* Nonzero: inputs above the threshold get no answer (HYBRID_ABSTAIN) instead of the cloud's. */
HYBRID_API hybrid_status hybrid_options_set_abstain(hybrid_options* options, int32_t abstain);

/* Runs the cloud partition for `count` samples: inputs[i] holds count * sizes[i] floats of cloud
   input i (hybrid_model_cloud_input); the function writes count * classes probabilities to
   `probabilities` and returns HYBRID_OK. HYBRID_UNAVAILABLE says the cloud could not answer (down,
   unreachable, too slow): the session then answers those inputs from the edge, flagged degraded.
   Any other status is an error that the classify call returns. */
typedef hybrid_status (*hybrid_transport_fn)(void* user_data, int32_t count, int32_t num_inputs,
                                             const float* const* inputs, const int64_t* sizes,
                                             float* probabilities, int32_t classes);

/* Called by a transport function on the thread that called it, before returning an error status:
   the reason the classify call then reports ("connection refused", say). */
HYBRID_API void hybrid_transport_error(const char* message);

/* Sends the cloud's inputs through `fn` (called with `user_data`, which must stay valid as long as
   the sessions created with these options) instead of the cloud partition in this process. NULL
   restores the in-process cloud. */
HYBRID_API hybrid_status hybrid_options_set_transport(hybrid_options* options,
                                                      hybrid_transport_fn fn, void* user_data);

/* Sends the cloud's inputs over gRPC to hybrid servers (`hybrid serve`, or a load balancer in
   front of them) at "HOST:PORT[,HOST:PORT...]", in their compact wire form, each request with a
   deadline of `deadline_ms` (0: 2000) and retried on the next endpoint; when none answers, the
   session answers from the edge, flagged degraded. NULL or "" restores the in-process cloud. A
   transport set with hybrid_options_set_transport takes precedence. */
HYBRID_API hybrid_status hybrid_options_set_cloud(hybrid_options* options, const char* endpoints,
                                                  int32_t deadline_ms);

/* The bearer token the servers require (NULL or "": none). */
HYBRID_API hybrid_status hybrid_options_set_cloud_token(hybrid_options* options, const char* token);

/* Talks TLS to the servers, trusting the CA certificate in `ca_file` (PEM); `cert_file` and
   `key_file` (PEM, or NULL) give a client certificate to servers that require one. NULL ca_file
   turns TLS off. The files are read when a session is created. */
HYBRID_API hybrid_status hybrid_options_set_cloud_tls(hybrid_options* options, const char* ca_file,
                                                      const char* cert_file, const char* key_file);

/* ---- Sessions ---- */

typedef struct hybrid_session hybrid_session;

typedef enum hybrid_where {
  HYBRID_EDGE = 0,   /* answered by the edge partition (also when the cloud could not answer) */
  HYBRID_CLOUD = 1,  /* answered by the cloud partition */
  HYBRID_ABSTAIN = 2 /* not answered (abstaining above the threshold) */
} hybrid_where;

typedef struct hybrid_answer {
  int32_t label;    /* the class answered, -1 when abstaining */
  float confidence; /* its probability */
  int32_t where;    /* a hybrid_where */
  float score;      /* the router's score (higher: less confident at the edge) */
  int32_t degraded; /* nonzero: meant for the cloud, which could not answer; the edge's answer */
  /* Milliseconds of the batch this input was in: the edge partition and router; the transport and
     cloud partition (0 when nothing was sent); and both with the copying between them. */
  double edge_ms, cloud_ms, total_ms;
} hybrid_answer;

/* Plans a session on `model` with `options` (NULL: the defaults). Every costly step (planning,
   packing weights, the in-process cloud) happens here, none in classify. */
HYBRID_API hybrid_status hybrid_session_create(const hybrid_model* model,
                                               const hybrid_options* options,
                                               hybrid_session** session);
HYBRID_API hybrid_status hybrid_session_destroy(hybrid_session* session);

/* Classifies `count` images: `size` bytes of u8 pixels, NHWC, each image of the model's input
   shape (size == count * h * w * c), normalized with the model's mean and standard deviation.
   Writes `count` answers. */
HYBRID_API hybrid_status hybrid_session_classify(hybrid_session* session, const uint8_t* pixels,
                                                 size_t size, int32_t count,
                                                 hybrid_answer* answers);

/* Moves the session's threshold (a new operating point); NaN is refused. */
HYBRID_API hybrid_status hybrid_session_set_threshold(hybrid_session* session, float threshold);

/* The output that answers at the edge and the router in use (owned by the session). */
HYBRID_API hybrid_status hybrid_session_exit(const hybrid_session* session, const char** output);
HYBRID_API hybrid_status hybrid_session_router(const hybrid_session* session, const char** router);

/* ---- The cloud side of a transport ---- */

typedef struct hybrid_cloud hybrid_cloud;

/* Plans the cloud partition of `model` on the options' cloud backend, threads and batch (NULL: the
   defaults): what a server on the other side of a custom transport runs. */
HYBRID_API hybrid_status hybrid_cloud_create(const hybrid_model* model,
                                             const hybrid_options* options, hybrid_cloud** cloud);
HYBRID_API hybrid_status hybrid_cloud_destroy(hybrid_cloud* cloud);

/* Runs the cloud partition on `count` samples, with the arguments of a hybrid_transport_fn:
   sizes[i] must equal the model's cloud input i's values per sample, `classes` the model's classes.
 */
HYBRID_API hybrid_status hybrid_cloud_run(hybrid_cloud* cloud, int32_t count, int32_t num_inputs,
                                          const float* const* inputs, const int64_t* sizes,
                                          float* probabilities, int32_t classes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HYBRID_HYBRID_H_ */
