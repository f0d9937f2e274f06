/* Classifies the first N images of an IDX file twice through the C API, everything at the edge and
   everything in the cloud, and prints one CSV line per image: index, edge class, cloud class. */
#include <hybrid/hybrid.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int fail(hybrid_status s) {
  fprintf(stderr, "error: %s: %s\n", hybrid_status_name(s), hybrid_last_error());
  return 1;
}

/* Classifies `count` images with the session's threshold at `threshold`; copies the name of the
   output that answers at the edge into `exit_name` (`exit_size` bytes). */
static hybrid_status run(const hybrid_model* model, float threshold, const uint8_t* pixels,
                         size_t size, int32_t count, hybrid_answer* answers, char* exit_name,
                         size_t exit_size) {
  hybrid_options* options = NULL;
  hybrid_session* session = NULL;
  const char* exit = NULL;
  hybrid_status s = hybrid_options_create(&options);
  if (s == HYBRID_OK) s = hybrid_options_set_threshold(options, threshold);
  if (s == HYBRID_OK) s = hybrid_options_set_batch(options, 16);
  if (s == HYBRID_OK) s = hybrid_session_create(model, options, &session);
  if (s == HYBRID_OK) s = hybrid_session_classify(session, pixels, size, count, answers);
  if (s == HYBRID_OK) s = hybrid_session_exit(session, &exit);
  if (s == HYBRID_OK) snprintf(exit_name, exit_size, "%s", exit);
  hybrid_session_destroy(session);
  hybrid_options_destroy(options);
  return s;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: classify MODEL IMAGES.idx COUNT\n");
    return 2;
  }
  fprintf(stderr, "hybrid %s (headers %s), model format %d\n", hybrid_version(),
          HYBRID_VERSION_STRING, (int)hybrid_model_format_version());
  hybrid_model* model = NULL;
  hybrid_status s = hybrid_model_load(argv[1], &model);
  if (s != HYBRID_OK) return fail(s);
  int32_t h = 0, w = 0, c = 0;
  s = hybrid_model_input_shape(model, &h, &w, &c);
  if (s != HYBRID_OK) return fail(s);
  const int32_t count = atoi(argv[3]);
  const size_t size = (size_t)count * h * w * c;
  uint8_t* pixels = malloc(size);
  hybrid_answer* edge = malloc(sizeof(hybrid_answer) * count);
  hybrid_answer* cloud = malloc(sizeof(hybrid_answer) * count);
  FILE* f = fopen(argv[2], "rb");
  if (f == NULL || pixels == NULL || edge == NULL || cloud == NULL || fseek(f, 16, SEEK_SET) != 0 ||
      fread(pixels, 1, size, f) != size) {
    fprintf(stderr, "error: cannot read %d images from %s\n", (int)count, argv[2]);
    return 1;
  }
  fclose(f);
  char exit_name[256];
  s = run(model, INFINITY, pixels, size, count, edge, exit_name, sizeof exit_name);
  if (s != HYBRID_OK) return fail(s);
  s = run(model, -INFINITY, pixels, size, count, cloud, exit_name, sizeof exit_name);
  if (s != HYBRID_OK) return fail(s);
  printf("index,%s,final\n", exit_name);
  for (int32_t i = 0; i < count; ++i) {
    if (edge[i].where != HYBRID_EDGE || cloud[i].where != HYBRID_CLOUD) {
      fprintf(stderr, "error: image %d was not answered where its threshold says\n", (int)i);
      return 1;
    }
    printf("%d,%d,%d\n", (int)i, (int)edge[i].label, (int)cloud[i].label);
  }
  free(pixels);
  free(edge);
  free(cloud);
  return hybrid_model_destroy(model) == HYBRID_OK ? 0 : 1;
}
