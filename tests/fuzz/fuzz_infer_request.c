/* Fuzzes what a stage server does with a ModelInfer request's bytes before
 * torch sees them, against the specs of the real example export (its two
 * JSON files, committed beside this target): unpacking without copying raw
 * contents (sw_oip_unpack_infer_request), decoding raw or typed inputs
 * (sw_oip_decode_inputs) and checking them against the stage the model name
 * picks (sw_stage_prepare: shapes, datatypes, batch sizes, date strings).
 * The input is the packed inference.ModelInferRequest.
 *
 * What decodes is sent on as the pipeline's hop does (sw_oip_request_build,
 * packed as parts, joined) and must unpack and decode to the same tensors,
 * requested outputs and parameters; what a stage accepts is answered as a
 * stage answers (sw_oip_response_build) and must decode (as the client
 * does, sw_oip_decode_outputs) to the same tensors. */
#include <glib/gstdio.h>
#include <string.h>

#include "export.h"
#include "fuzz_support.h"
#include "oip_codec.h"
#include "stage.h"
#include "sw_error.h"

#ifndef SW_FUZZ_EXPORT_DIR
#error "SW_FUZZ_EXPORT_DIR: the folder with the example export's JSON files"
#endif

#define MODEL "example"

static sw_stage *stages[3];

static void copy_file(const char *from_dir, const char *to_dir, const char *name)
{
    char *from = g_build_filename(from_dir, name, NULL);
    char *to = g_build_filename(to_dir, name, NULL);
    char *text = NULL;
    gsize len = 0;
    GError *error = NULL;
    if (!g_file_get_contents(from, &text, &len, &error) || !g_file_set_contents(to, text, (gssize)len, &error)) {
        fprintf(stderr, "%s\n", error->message);
        abort();
    }
    g_free(text);
    g_free(from);
    g_free(to);
}

/* The three stages of the example export, with their specs but no module:
 * a copy of the export's JSON with empty module files, which a stage only
 * checks exist, removed again once the stages are made. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_fatal_criticals();
    char *dir = g_dir_make_tmp("stagewise-fuzz-request-XXXXXX", NULL);
    const char *json[] = {"model_hyperparameters.json", "training_set_metadata.json"};
    const char *modules[] = {"inference_preprocessor.pt", "inference_predictor-cpu.pt", "inference_postprocessor.pt"};
    for (size_t i = 0; i < G_N_ELEMENTS(json); i++)
        copy_file(SW_FUZZ_EXPORT_DIR, dir, json[i]);
    for (size_t i = 0; i < G_N_ELEMENTS(modules); i++) {
        char *path = g_build_filename(dir, modules[i], NULL);
        g_file_set_contents(path, "", 0, NULL);
        g_free(path);
    }
    GError *error = NULL;
    sw_export *export = sw_export_load(dir, &error);
    for (int kind = 0; export && kind < 3; kind++)
        stages[kind] = sw_stage_new((sw_stage_kind)kind, export, MODEL, "cpu", &error);
    if (export == NULL || stages[2] == NULL) {
        fprintf(stderr, "the example export: %s\n", error->message);
        abort();
    }
    sw_export_free(export);
    for (size_t i = 0; i < G_N_ELEMENTS(json); i++) {
        char *path = g_build_filename(dir, json[i], NULL);
        g_unlink(path);
        g_free(path);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(modules); i++) {
        char *path = g_build_filename(dir, modules[i], NULL);
        g_unlink(path);
        g_free(path);
    }
    g_rmdir(dir);
    g_free(dir);
    return 0;
}

/* The stage a server would run for `model_name`; anything else goes to the
 * preprocessor, whose checks are the most thorough. */
static const sw_stage *stage_for(const char *model_name)
{
    for (int kind = 0; kind < 3; kind++)
        if (strcmp(model_name, stages[kind]->model_name) == 0)
            return stages[kind];
    return stages[SW_STAGE_PREPROCESSOR];
}

static void check_same_tensor(const char *name, const sw_tensor *a, const sw_tensor *b)
{
    FUZZ_CHECK(a->dtype == b->dtype, "'%s': %s became %s", name, sw_dtype_name(a->dtype), sw_dtype_name(b->dtype));
    FUZZ_CHECK(a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0,
               "'%s': the shape changed", name);
    size_t na = 0, nb = 0;
    const void *da = sw_tensor_data(a, &na);
    const void *db = sw_tensor_data(b, &nb);
    FUZZ_CHECK(na == nb, "'%s': %zu bytes became %zu", name, na, nb);
    FUZZ_CHECK(na == 0 || memcmp(da, db, na) == 0, "'%s': the contents changed", name);
    if (a->dtype != SW_DTYPE_BYTES)
        return;
    int64_t n = sw_tensor_element_count(a);
    for (int64_t i = 0; i <= n; i++)
        FUZZ_CHECK(a->offsets[i] == b->offsets[i], "'%s': element %" G_GINT64_FORMAT " moved", name, i);
}

static GBytes *join(GPtrArray *parts)
{
    GByteArray *all = g_byte_array_new();
    for (guint i = 0; i < parts->len; i++) {
        gsize len = 0;
        const guint8 *p = g_bytes_get_data(g_ptr_array_index(parts, i), &len);
        if (len)
            g_byte_array_append(all, p, (guint)len);
    }
    return g_byte_array_free_to_bytes(all);
}

static gboolean same_message(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    GBytes *pa = sw_protobuf_pack(a), *pb = sw_protobuf_pack(b);
    gboolean same = g_bytes_equal(pa, pb);
    g_bytes_unref(pa);
    g_bytes_unref(pb);
    return same;
}

/* Whether protobuf-c unpacks its own packing of `m`. Not always: it
 * accepts field number 0 when the key is written in two bytes (0x85 0x00)
 * and keeps it as an unknown field, but packs it back in one byte (0x05),
 * which it refuses. A request carrying such a field in a requested output
 * or parameter is passed on verbatim, and the next stage refuses it as the
 * client's invalid message: the client's fault, not the forwarding's. */
static gboolean reads_back(const ProtobufCMessage *m)
{
    GBytes *packed = sw_protobuf_pack(m);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(packed, &len);
    ProtobufCMessage *back = protobuf_c_message_unpack(m->descriptor, NULL, len, data);
    g_bytes_unref(packed);
    if (back == NULL)
        return FALSE;
    protobuf_c_message_free_unpacked(back, NULL);
    return TRUE;
}

static gboolean passes_through(const Inference__ModelInferRequest *req)
{
    for (size_t i = 0; i < req->n_outputs; i++)
        if (!reads_back(&req->outputs[i]->base))
            return FALSE;
    for (size_t i = 0; i < req->n_parameters; i++)
        if (!reads_back(&req->parameters[i]->base))
            return FALSE;
    return TRUE;
}

/* The decoded inputs sent on to the next stage and decoded there. */
static void check_forwarding(const Inference__ModelInferRequest *req, GPtrArray *decoded)
{
    GPtrArray *tensors = sw_output_array_new();
    for (guint i = 0; i < decoded->len; i++) {
        const sw_value *v = g_ptr_array_index(decoded, i);
        sw_output *o = g_new0(sw_output, 1);
        o->name = g_strdup(v->name);
        o->tensor = sw_tensor_share(v->tensor, 0, NULL);
        g_ptr_array_add(tensors, o);
    }
    Inference__ModelInferRequest *next = sw_oip_request_build(req->model_name, req->id, tensors, req);
    GPtrArray *parts = sw_oip_request_pack_parts(next);
    sw_oip_request_free(next);
    GBytes *packed = join(parts);
    g_ptr_array_unref(parts);

    GBytes *owner = NULL;
    GError *error = NULL;
    Inference__ModelInferRequest *again = sw_oip_unpack_infer_request(packed, &owner, &error);
    g_bytes_unref(packed);
    if (again == NULL && !passes_through(req)) {
        g_error_free(error);
        g_ptr_array_unref(tensors);
        return;
    }
    FUZZ_CHECK(again != NULL, "the forwarded request does not unpack: %s", error->message);
    FUZZ_CHECK(strcmp(again->model_name, req->model_name) == 0 && strcmp(again->id, req->id) == 0,
               "model name or id changed");
    FUZZ_CHECK(again->n_outputs == req->n_outputs, "%zu requested outputs became %zu", req->n_outputs,
               again->n_outputs);
    for (size_t i = 0; i < req->n_outputs; i++)
        FUZZ_CHECK(same_message(&req->outputs[i]->base, &again->outputs[i]->base), "requested output %zu changed", i);
    FUZZ_CHECK(again->n_parameters == req->n_parameters, "%zu parameters became %zu", req->n_parameters,
               again->n_parameters);
    for (size_t i = 0; i < req->n_parameters; i++)
        FUZZ_CHECK(same_message(&req->parameters[i]->base, &again->parameters[i]->base), "parameter %zu changed", i);
    GPtrArray *redecoded = sw_oip_decode_inputs(again, owner, &error);
    FUZZ_CHECK(redecoded != NULL, "the forwarded request does not decode: %s", error->message);
    FUZZ_CHECK(redecoded->len == decoded->len, "%u inputs became %u", decoded->len, redecoded->len);
    for (guint i = 0; i < decoded->len; i++) {
        const sw_value *a = g_ptr_array_index(decoded, i), *b = g_ptr_array_index(redecoded, i);
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->kind == b->kind, "input %u changed its name or kind", i);
        check_same_tensor(a->name, a->tensor, b->tensor);
    }
    g_ptr_array_unref(redecoded);
    g_bytes_unref(owner);
    g_ptr_array_unref(tensors);
}

/* The prepared values answered as a stage answers, and decoded as the
 * client decodes a reply. */
static void check_answer(GPtrArray *prepared)
{
    GPtrArray *outputs = sw_output_array_new();
    GError *error = NULL;
    for (guint i = 0; i < prepared->len; i++) {
        sw_output *o = sw_output_from_value(g_ptr_array_index(prepared, i), &error);
        FUZZ_CHECK(o != NULL, "value %u is no output: %s", i, error->message);
        g_ptr_array_add(outputs, o);
    }
    Inference__ModelInferResponse *resp = sw_oip_response_build(MODEL, "id", outputs);
    GPtrArray *parts = sw_oip_response_pack_parts(resp);
    sw_oip_response_free(resp);
    GBytes *packed = join(parts);
    g_ptr_array_unref(parts);
    gsize len = 0;
    const uint8_t *data = g_bytes_get_data(packed, &len);
    Inference__ModelInferResponse *back = inference__model_infer_response__unpack(NULL, len, data);
    FUZZ_CHECK(back != NULL, "the answer does not unpack");
    GPtrArray *decoded = sw_oip_decode_outputs(back, &error);
    FUZZ_CHECK(decoded != NULL, "the answer does not decode: %s", error->message);
    FUZZ_CHECK(decoded->len == outputs->len, "%u outputs became %u", outputs->len, decoded->len);
    for (guint i = 0; i < outputs->len; i++) {
        const sw_output *a = g_ptr_array_index(outputs, i), *b = g_ptr_array_index(decoded, i);
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->json == b->json, "output %u changed its name or kind", i);
        check_same_tensor(a->name, a->tensor, b->tensor);
    }
    g_ptr_array_unref(decoded);
    inference__model_infer_response__free_unpacked(back, NULL);
    g_bytes_unref(packed);
    g_ptr_array_unref(outputs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly the message, so reading past it is an ASan report;
     * raw contents stay views into it, as in the server. */
    GBytes *message = g_bytes_new(data, size);
    GBytes *owner = NULL;
    GError *error = NULL;
    Inference__ModelInferRequest *req = sw_oip_unpack_infer_request(message, &owner, &error);
    g_bytes_unref(message);
    if (req == NULL) {
        FUZZ_CHECK(error && error->code == SW_CODE_INVALID_ARGUMENT, "refused without INVALID_ARGUMENT");
        g_error_free(error);
        return 0;
    }
    GPtrArray *decoded = sw_oip_decode_inputs(req, owner, &error);
    if (decoded == NULL) {
        FUZZ_CHECK(error && error->code == SW_CODE_INVALID_ARGUMENT, "not decoded, and no INVALID_ARGUMENT");
        g_clear_error(&error);
    } else {
        FUZZ_CHECK(decoded->len == req->n_inputs, "%zu inputs decoded as %u", req->n_inputs, decoded->len);
        check_forwarding(req, decoded);
        int64_t batch = 0;
        GPtrArray *prepared = sw_stage_prepare(stage_for(req->model_name), decoded, &batch, &error);
        if (prepared) {
            FUZZ_CHECK(batch > 0 && prepared->len == decoded->len, "batch %" G_GINT64_FORMAT, batch);
            check_answer(prepared);
            g_ptr_array_unref(prepared);
        } else {
            FUZZ_CHECK(error && error->code == SW_CODE_INVALID_ARGUMENT, "not prepared, and no INVALID_ARGUMENT");
            g_clear_error(&error);
        }
        g_ptr_array_unref(decoded);
    }
    g_bytes_unref(owner);
    return 0;
}
