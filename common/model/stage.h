/* One stage of a Ludwig model: its TorchScript module and its tensor specs.
 *
 * A stage turns decoded OIP inputs into OIP outputs: it checks them against
 * its specs, converts them to the values TorchScript expects (BYTES to
 * List[str] for the preprocessor), calls forward and encodes what comes back.
 * It holds no per-request state and no lock, so any number of threads may run
 * it at once. */
#ifndef SW_STAGE_H
#define SW_STAGE_H

#include <glib.h>

#include "audio_decode.h"
#include "export.h"
#include "feature_spec.h"
#include "image_decode.h"
#include "torch_shim.h"

G_BEGIN_DECLS

typedef struct sw_stage {
    sw_stage_kind kind;
    char *model_name; /* "<name>_<kind>" */
    char *device;
    char *module_path;
    /* Copies of the module on `device` (each with its own stream on a GPU);
     * empty until sw_stage_load_module(). */
    sw_torch_module **instances;
    int n_instances;
    gint next_instance; /* round robin for sw_stage_run() */
    GPtrArray *inputs;  /* sw_tensor_spec* */
    GPtrArray *outputs; /* sw_tensor_spec* */
    /* Bounds on the image and audio files a preprocessor decodes: the
     * SW_STAGE_DEFAULT_* values until the server sets its own, before it
     * serves. */
    sw_image_limits image_limits;
    sw_audio_limits audio_limits;
} sw_stage;

#define SW_STAGE_DEFAULT_MAX_IMAGE_PIXELS 50000000
#define SW_STAGE_DEFAULT_MAX_MEDIA_MB 64
#define SW_STAGE_DEFAULT_MAX_AUDIO_SAMPLES 20000000

/* The stage `kind` of `export` as model "<name>_<kind>" on `device` (NULL:
 * "cpu"), with its specs but not yet its module, so a server can answer
 * health and metadata while the module loads. NULL with an error when the
 * file is missing, a feature type is unsupported or the device unavailable. */
sw_stage *sw_stage_new(sw_stage_kind kind, const sw_export *export, const char *name, const char *device,
                       GError **error);
/* Loads `n_instances` (>= 1) copies of the module of a stage made by
 * sw_stage_new(). */
gboolean sw_stage_load_module(sw_stage *stage, int n_instances, GError **error);

/* sw_stage_new() and sw_stage_load_module() in one: loads the stage `kind` of `export` as model "<name>_<kind>" on
 * `device` (NULL: "cpu"). NULL with an error when the file is missing, the module does not load, a feature type is
 * unsupported or the device is unavailable. */
sw_stage *sw_stage_load(sw_stage_kind kind, const sw_export *export, const char *name, const char *device,
                        GError **error);
void sw_stage_free(sw_stage *stage);

/* Checks `decoded` (sw_value, one per request input; borrowed) against the
 * stage's inputs and returns the values to call forward with (new array) and
 * the batch size. NULL with an INVALID_ARGUMENT error naming the input and
 * what was expected. */
GPtrArray *sw_stage_prepare(const sw_stage *stage, GPtrArray *decoded, int64_t *batch_size, GError **error);

/* Runs forward on prepared values (borrowed) and returns the encoded outputs
 * (new array of sw_output), or NULL with the module's error. Takes the
 * instances in turn. */
GPtrArray *sw_stage_run(sw_stage *stage, GPtrArray *prepared, GError **error);
/* sw_stage_run() on instance `instance`; UNAVAILABLE unless
 * 0 <= instance < n_instances. */
GPtrArray *sw_stage_run_instance(sw_stage *stage, int instance, GPtrArray *prepared, GError **error);
/* TRUE when the stage decodes image or audio files (a preprocessor with
 * such inputs), whose cost a request's size does not bound. */
gboolean sw_stage_decodes_media(const sw_stage *stage);
/* Writable host memory for inputs to `instance` (pinned on a GPU: see
 * sw_torch_module_new_host_buffer()); fill it before sharing it. */
GBytes *sw_stage_new_input_buffer(sw_stage *stage, int instance, size_t size);

G_END_DECLS

#endif
