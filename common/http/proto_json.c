/* protobuf-c messages as JSON, walking their descriptors. */
#include "proto_json.h"

#include <math.h>
#include <string.h>

#include "json_text.h"

/* protobuf-c's map entries: a message "<Name>Entry" of a key and a value. */
static gboolean is_map_entry(const ProtobufCMessageDescriptor *d)
{
    return d && d->n_fields == 2 && g_str_has_suffix(d->name, "Entry") && strcmp(d->fields[0].name, "key") == 0 &&
           strcmp(d->fields[1].name, "value") == 0;
}

static void append_double(GString *out, double v)
{
    if (!isfinite(v)) {
        g_string_append(out, "null");
        return;
    }
    char text[G_ASCII_DTOSTR_BUF_SIZE];
    g_string_append(out, g_ascii_dtostr(text, sizeof text, v));
}

static void append_enum(GString *out, const ProtobufCEnumDescriptor *d, int value)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (v)
        sw_json_append_string(out, v->name);
    else
        g_string_append_printf(out, "%d", value);
}

/* One value of `field` at `p`. */
static void append_value(GString *out, const ProtobufCFieldDescriptor *field, const void *p)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: g_string_append_printf(out, "%" G_GINT32_FORMAT, *(const int32_t *)p); break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: g_string_append_printf(out, "%" G_GUINT32_FORMAT, *(const uint32_t *)p); break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: g_string_append_printf(out, "%" G_GINT64_FORMAT, *(const int64_t *)p); break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: g_string_append_printf(out, "%" G_GUINT64_FORMAT, *(const uint64_t *)p); break;
    case PROTOBUF_C_TYPE_FLOAT: append_double(out, *(const float *)p); break;
    case PROTOBUF_C_TYPE_DOUBLE: append_double(out, *(const double *)p); break;
    case PROTOBUF_C_TYPE_BOOL: g_string_append(out, *(const protobuf_c_boolean *)p ? "true" : "false"); break;
    case PROTOBUF_C_TYPE_ENUM: append_enum(out, field->descriptor, *(const int *)p); break;
    case PROTOBUF_C_TYPE_STRING: sw_json_append_string(out, *(char *const *)p ? *(char *const *)p : ""); break;
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        char *text = g_base64_encode(b->data, b->len);
        sw_json_append_string(out, text);
        g_free(text);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (m)
            sw_proto_json_append(out, m);
        else
            g_string_append(out, "null");
        break;
    }
    }
}

static size_t value_size(const ProtobufCFieldDescriptor *field)
{
    switch (field->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    default: return sizeof(uint32_t);
    }
}

/* A map field: {"key": value, ...}; keys of any scalar type as strings. */
static void append_map(GString *out, ProtobufCMessage *const *entries, size_t n)
{
    g_string_append_c(out, '{');
    for (size_t i = 0; i < n; i++) {
        const ProtobufCMessageDescriptor *d = entries[i]->descriptor;
        const char *base = (const char *)entries[i];
        g_string_append(out, i ? "," : "");
        if (d->fields[0].type == PROTOBUF_C_TYPE_STRING) {
            append_value(out, &d->fields[0], base + d->fields[0].offset);
        } else {
            GString *key = g_string_new(NULL);
            append_value(key, &d->fields[0], base + d->fields[0].offset);
            sw_json_append_string(out, key->str);
            g_string_free(key, TRUE);
        }
        g_string_append_c(out, ':');
        append_value(out, &d->fields[1], base + d->fields[1].offset);
    }
    g_string_append_c(out, '}');
}

/* FALSE for a field the message does not carry: an unset message, an
 * optional scalar without its has_ flag, a oneof member not chosen. */
static gboolean is_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return *(void *const *)(base + f->offset) != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset && f->type != PROTOBUF_C_TYPE_STRING)
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    return TRUE;
}

void sw_proto_json_append(GString *out, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    gboolean first = TRUE;
    g_string_append_c(out, '{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        gboolean repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (!repeated && !is_present(m, f))
            continue;
        g_string_append(out, first ? "" : ",");
        first = FALSE;
        sw_json_append_string(out, f->name);
        g_string_append_c(out, ':');
        if (!repeated) {
            append_value(out, f, base + f->offset);
            continue;
        }
        size_t n = *(const size_t *)(base + f->quantifier_offset);
        const char *items = *(const char *const *)(base + f->offset);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor)) {
            append_map(out, (ProtobufCMessage *const *)items, n);
            continue;
        }
        g_string_append_c(out, '[');
        for (size_t k = 0; k < n; k++) {
            g_string_append(out, k ? "," : "");
            append_value(out, f, items + k * value_size(f));
        }
        g_string_append_c(out, ']');
    }
    g_string_append_c(out, '}');
}

char *sw_proto_json(const ProtobufCMessage *message)
{
    GString *out = g_string_new(NULL);
    sw_proto_json_append(out, message);
    return g_string_free(out, FALSE);
}
