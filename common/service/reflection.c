/* Server reflection over the embedded descriptor set: a small reader of
 * FileDescriptorSet / FileDescriptorProto (protobuf-c ships no C code
 * for protobuf's descriptor messages), an index of symbols, and the stream handler. */
#include "reflection.h"

#include <string.h>

#include "clip.h"
#include "descriptor_set.h"
#include "reflection.pb-c.h"
#include "sw_error.h"

/* One .proto file: its serialized FileDescriptorProto and what it imports. */
typedef struct proto_file {
    char *name;
    GBytes *bytes;
    GPtrArray *deps; /* file names */
} proto_file;

struct sw_reflection {
    GPtrArray *files;    /* proto_file, owned */
    GHashTable *by_name; /* file name -> proto_file */
    GHashTable *symbols; /* fully qualified name -> proto_file */
    GPtrArray *services; /* full service names */
};

/* Protobuf wire format: just what walking descriptors needs. */
typedef struct reader {
    const guint8 *p, *end;
} reader;

static gboolean read_varint(reader *r, guint64 *value)
{
    guint64 v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        guint8 b = *r->p++;
        v |= (guint64)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *value = v;
            return TRUE;
        }
    }
    return FALSE;
}

/* The next field: its number, and its bytes when length-delimited (others
 * are skipped; `len` 0 and `data` NULL). FALSE at the end or on bad data
 * (`*bad` set). */
static gboolean next_field(reader *r, guint32 *field, const guint8 **data, gsize *len, gboolean *bad)
{
    *data = NULL;
    *len = 0;
    if (r->p >= r->end)
        return FALSE;
    guint64 key, v;
    if (!read_varint(r, &key))
        goto fail;
    *field = (guint32)(key >> 3);
    switch (key & 7) {
    case 0:
        if (!read_varint(r, &v))
            goto fail;
        return TRUE;
    case 1:
        if (r->end - r->p < 8)
            goto fail;
        r->p += 8;
        return TRUE;
    case 5:
        if (r->end - r->p < 4)
            goto fail;
        r->p += 4;
        return TRUE;
    case 2:
        if (!read_varint(r, &v) || v > (guint64)(r->end - r->p))
            goto fail;
        *data = r->p;
        *len = (gsize)v;
        r->p += v;
        return TRUE;
    default: goto fail;
    }
fail:
    *bad = TRUE;
    return FALSE;
}

/* The string field `number` of a message (the last one), newly allocated,
 * or "" when absent. */
static char *string_field(const guint8 *data, gsize len, guint32 number, gboolean *bad)
{
    reader r = {data, data + len};
    guint32 field;
    const guint8 *d;
    gsize n;
    char *value = NULL;
    while (next_field(&r, &field, &d, &n, bad))
        if (field == number && d) {
            g_free(value);
            value = g_strndup((const char *)d, n);
        }
    return value ? value : g_strdup("");
}

static char *qualify(const char *scope, const char *name)
{
    return scope[0] ? g_strconcat(scope, ".", name, NULL) : g_strdup(name);
}

static void add_symbol(sw_reflection *r, proto_file *f, char *full)
{
    g_hash_table_replace(r->symbols, full, f);
}

/* A DescriptorProto (name 1, nested_type 3, enum_type 4) and its nested
 * messages and enums. */
static void index_message(sw_reflection *r, proto_file *f, const char *scope, const guint8 *data, gsize len,
                          gboolean *bad)
{
    char *name = string_field(data, len, 1, bad);
    char *full = qualify(scope, name);
    g_free(name);
    reader rd = {data, data + len};
    guint32 field;
    const guint8 *d;
    gsize n;
    while (next_field(&rd, &field, &d, &n, bad)) {
        if (field == 3 && d) {
            index_message(r, f, full, d, n, bad);
        } else if (field == 4 && d) {
            char *e = string_field(d, n, 1, bad);
            add_symbol(r, f, qualify(full, e));
            g_free(e);
        }
    }
    add_symbol(r, f, full);
}

/* A ServiceDescriptorProto (name 1, method 2: MethodDescriptorProto name 1). */
static void index_service(sw_reflection *r, proto_file *f, const char *package, const guint8 *data, gsize len,
                          gboolean *bad)
{
    char *name = string_field(data, len, 1, bad);
    char *full = qualify(package, name);
    g_free(name);
    g_ptr_array_add(r->services, g_strdup(full));
    reader rd = {data, data + len};
    guint32 field;
    const guint8 *d;
    gsize n;
    while (next_field(&rd, &field, &d, &n, bad))
        if (field == 2 && d) {
            char *m = string_field(d, n, 1, bad);
            add_symbol(r, f, qualify(full, m));
            g_free(m);
        }
    add_symbol(r, f, full);
}

/* A FileDescriptorProto: name 1, package 2, dependency 3, message_type 4,
 * enum_type 5, service 6. */
static void index_file(sw_reflection *r, const guint8 *data, gsize len, gboolean *bad)
{
    proto_file *f = g_new0(proto_file, 1);
    f->name = string_field(data, len, 1, bad);
    f->bytes = g_bytes_new(data, len);
    f->deps = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(r->files, f);
    g_hash_table_replace(r->by_name, f->name, f);
    char *package = string_field(data, len, 2, bad);
    reader rd = {data, data + len};
    guint32 field;
    const guint8 *d;
    gsize n;
    while (next_field(&rd, &field, &d, &n, bad)) {
        if (d == NULL)
            continue;
        if (field == 3) {
            g_ptr_array_add(f->deps, g_strndup((const char *)d, n));
        } else if (field == 4) {
            index_message(r, f, package, d, n, bad);
        } else if (field == 5) {
            char *e = string_field(d, n, 1, bad);
            add_symbol(r, f, qualify(package, e));
            g_free(e);
        } else if (field == 6) {
            index_service(r, f, package, d, n, bad);
        }
    }
    g_free(package);
}

static void proto_file_free(gpointer data)
{
    proto_file *f = data;
    g_free(f->name);
    g_bytes_unref(f->bytes);
    g_ptr_array_unref(f->deps);
    g_free(f);
}

sw_reflection *sw_reflection_new(GError **error)
{
    sw_reflection *r = g_new0(sw_reflection, 1);
    r->files = g_ptr_array_new_with_free_func(proto_file_free);
    r->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    r->symbols = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    r->services = g_ptr_array_new_with_free_func(g_free);
    /* FileDescriptorSet: repeated FileDescriptorProto file = 1. */
    reader rd = {sw_descriptor_set, sw_descriptor_set + sw_descriptor_set_len};
    gboolean bad = FALSE;
    guint32 field;
    const guint8 *d;
    gsize n;
    while (next_field(&rd, &field, &d, &n, &bad))
        if (field == 1 && d)
            index_file(r, d, n, &bad);
    if (bad || r->files->len == 0) {
        g_set_error(error, SW_ERROR, SW_CODE_INTERNAL, "the embedded descriptor set cannot be read");
        sw_reflection_free(r);
        return NULL;
    }
    return r;
}

void sw_reflection_free(sw_reflection *r)
{
    if (r == NULL)
        return;
    g_hash_table_destroy(r->symbols);
    g_hash_table_destroy(r->by_name);
    g_ptr_array_unref(r->files);
    g_ptr_array_unref(r->services);
    g_free(r);
}

const GPtrArray *sw_reflection_services(const sw_reflection *r)
{
    return r->services;
}

/* `f` first, then every file it imports, directly or not, once each. */
static void add_with_deps(sw_reflection *r, proto_file *f, GPtrArray *out, GHashTable *seen)
{
    if (!g_hash_table_add(seen, f))
        return;
    g_ptr_array_add(out, f);
    for (guint i = 0; i < f->deps->len; i++) {
        proto_file *dep = g_hash_table_lookup(r->by_name, g_ptr_array_index(f->deps, i));
        if (dep)
            add_with_deps(r, dep, out, seen);
    }
}

static void send_error(sw_call *call, Grpc__Reflection__V1__ServerReflectionResponse *resp, int code,
                       const char *message)
{
    Grpc__Reflection__V1__ErrorResponse err = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    err.error_code = code;
    err.error_message = (char *)message;
    resp->message_response_case = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp->error_response = &err;
    sw_call_send(call, &resp->base);
}

static void send_file(sw_reflection *r, sw_call *call, Grpc__Reflection__V1__ServerReflectionResponse *resp,
                      proto_file *f)
{
    GPtrArray *files = g_ptr_array_new();
    GHashTable *seen = g_hash_table_new(NULL, NULL);
    add_with_deps(r, f, files, seen);
    ProtobufCBinaryData *protos = g_new(ProtobufCBinaryData, files->len);
    for (guint i = 0; i < files->len; i++) {
        gsize len = 0;
        protos[i].data = (uint8_t *)g_bytes_get_data(((proto_file *)g_ptr_array_index(files, i))->bytes, &len);
        protos[i].len = len;
    }
    Grpc__Reflection__V1__FileDescriptorResponse fdr = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    fdr.n_file_descriptor_proto = files->len;
    fdr.file_descriptor_proto = protos;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    resp->file_descriptor_response = &fdr;
    sw_call_send(call, &resp->base);
    g_free(protos);
    g_hash_table_destroy(seen);
    g_ptr_array_unref(files);
}

static void send_services(sw_reflection *r, sw_call *call, Grpc__Reflection__V1__ServerReflectionResponse *resp)
{
    guint n = r->services->len;
    Grpc__Reflection__V1__ServiceResponse *items = g_new(Grpc__Reflection__V1__ServiceResponse, n);
    Grpc__Reflection__V1__ServiceResponse **ptrs = g_new(Grpc__Reflection__V1__ServiceResponse *, n);
    for (guint i = 0; i < n; i++) {
        items[i] = (Grpc__Reflection__V1__ServiceResponse)GRPC__REFLECTION__V1__SERVICE_RESPONSE__INIT;
        items[i].name = g_ptr_array_index(r->services, i);
        ptrs[i] = &items[i];
    }
    Grpc__Reflection__V1__ListServiceResponse list = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    list.n_service = n;
    list.service = ptrs;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    resp->list_services_response = &list;
    sw_call_send(call, &resp->base);
    g_free(ptrs);
    g_free(items);
}

static void send_not_found(sw_call *call, Grpc__Reflection__V1__ServerReflectionResponse *resp, const char *what,
                           const char *name)
{
    char *msg = g_strdup_printf("%s '" SW_CLIP_FMT "' not found", what, SW_CLIP(name));
    send_error(call, resp, SW_CODE_NOT_FOUND, msg);
    g_free(msg);
}

/* One ServerReflectionRequest: one response on the stream. */
static void on_request(sw_call *call, GBytes *message, void *user_data)
{
    sw_reflection *r = user_data;
    if (message == NULL) { /* the client is done */
        sw_call_finish(call, SW_CODE_OK, NULL);
        return;
    }
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(message, &len);
    Grpc__Reflection__V1__ServerReflectionRequest *req =
        grpc__reflection__v1__server_reflection_request__unpack(NULL, len, data);
    if (req == NULL) {
        sw_call_finish(call, SW_CODE_INVALID_ARGUMENT, "the ServerReflectionRequest cannot be parsed");
        return;
    }
    Grpc__Reflection__V1__ServerReflectionResponse resp = GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    resp.valid_host = req->host;
    resp.original_request = req;
    proto_file *f;
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        send_services(r, call, &resp);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        if ((f = g_hash_table_lookup(r->by_name, req->file_by_filename)) != NULL)
            send_file(r, call, &resp, f);
        else
            send_not_found(call, &resp, "file", req->file_by_filename);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        if ((f = g_hash_table_lookup(r->symbols, req->file_containing_symbol)) != NULL)
            send_file(r, call, &resp, f);
        else
            send_not_found(call, &resp, "symbol", req->file_containing_symbol);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION: {
        /* No file here declares an extension. */
        Grpc__Reflection__V1__ExtensionRequest *ext = req->file_containing_extension;
        char *what = g_strdup_printf("%d of %s", ext ? ext->extension_number : 0, ext ? ext->containing_type : "");
        send_not_found(call, &resp, "extension", what);
        g_free(what);
        break;
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        if (g_hash_table_contains(r->symbols, req->all_extension_numbers_of_type)) {
            Grpc__Reflection__V1__ExtensionNumberResponse numbers =
                GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
            numbers.base_type_name = req->all_extension_numbers_of_type;
            resp.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
            resp.all_extension_numbers_response = &numbers;
            sw_call_send(call, &resp.base);
        } else {
            send_not_found(call, &resp, "type", req->all_extension_numbers_of_type);
        }
        break;
    default: send_error(call, &resp, SW_CODE_INVALID_ARGUMENT, "the request asks for nothing"); break;
    }
    grpc__reflection__v1__server_reflection_request__free_unpacked(req, NULL);
}

size_t sw_reflection_methods(sw_reflection *r, sw_method *methods)
{
    static const char *const paths[SW_REFLECTION_METHODS] = {
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    };
    for (size_t i = 0; i < SW_REFLECTION_METHODS; i++)
        methods[i] = (sw_method){
            .path = paths[i],
            .dispatch = SW_DISPATCH_INLINE,
            .on_message = on_request,
            .user_data = r,
        };
    return SW_REFLECTION_METHODS;
}
