/* Serves sw_metrics over HTTP (GET /metrics) with libmicrohttpd, on its own
 * thread, apart from the gRPC port. */
#ifndef SW_METRICS_HTTP_H
#define SW_METRICS_HTTP_H

#include <glib.h>

#include "metrics.h"

G_BEGIN_DECLS

typedef struct sw_metrics_http sw_metrics_http;

struct sockaddr_in;

/* "HOST:PORT" (an IPv4 address or name; port 0 picks one) to a socket
 * address, for the HTTP listeners. FALSE with an INVALID_ARGUMENT error
 * naming `flag` when it is not one. */
gboolean sw_http_parse_listen(const char *listen, const char *flag, struct sockaddr_in *addr, GError **error);

/* Listens on `listen` ("HOST:PORT", an IPv4 address or name; port 0 picks
 * one). `metrics` is borrowed and must outlive the server. */
sw_metrics_http *sw_metrics_http_start(const char *listen, sw_metrics *metrics, GError **error);
int sw_metrics_http_port(const sw_metrics_http *http);
void sw_metrics_http_stop(sw_metrics_http *http);

G_END_DECLS

#endif
