/* The Open Inference Protocol's REST form (KServe v2 over HTTP/1.1) for one
 * stage, beside its gRPC port, on libmicrohttpd.
 *
 * Each HTTP request becomes the OIP request the gRPC port would get and
 * runs through the same sw_oip_service (sw_oip_service_infer for
 * inference), whose answer is rendered back as JSON (rest_codec.h).
 * Threading: libmicrohttpd's own polling threads (a small pool) read
 * requests and write answers and never run inference: an inference request
 * is suspended on its connection while a worker thread of this server runs
 * it, and resumed by whichever thread ends the call. The server borrows the
 * service and the auth; both must outlive it. */
#ifndef SW_REST_SERVER_H
#define SW_REST_SERVER_H

#include <glib.h>

#include "auth.h"
#include "metrics.h"
#include "oip_service.h"

G_BEGIN_DECLS

typedef struct sw_rest_server sw_rest_server;

typedef struct sw_rest_options {
    const char *listen;    /* "HOST:PORT" (IPv4 address or name; port 0 picks one) */
    int worker_threads;    /* >= 1: threads that run inference calls */
    size_t max_body_bytes; /* larger request bodies get 413; 0 no limit */
    int max_in_flight;     /* inference calls at once; more get 429; 0 no limit */
    /* TLS: PEM text, both or neither. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
    /* Mutual TLS (with the pair above): every request's connection must
     * carry a client certificate that this PEM's CA signed, checked before
     * anything else, health included: none is refused 401, one that does
     * not verify 403 (the handshake itself succeeds, so the refusal can
     * say why). NULL: no client certificate asked for. */
    const char *tls_client_ca_pem;
    sw_auth *auth;       /* NULL: no token asked for */
    sw_metrics *metrics; /* counts the calls this server refuses (token, limits); NULL: none */
} sw_rest_options;

/* Listens and serves at once. NULL with an error when the address cannot
 * be bound or TLS cannot be set up. */
sw_rest_server *sw_rest_server_start(sw_oip_service *service, const sw_rest_options *options, GError **error);
/* The bound port. */
int sw_rest_server_port(const sw_rest_server *server);
/* Stops accepting connections, waits for the inference calls in flight to
 * end and their answers to be queued, then stops every thread and frees the
 * server. Call before freeing the service and before the gRPC server's
 * shutdown: a call in flight may be on its hop to the next stage, whose
 * completion the gRPC server's polling thread delivers. NULL is a no-op. */
void sw_rest_server_stop(sw_rest_server *server);

G_END_DECLS

#endif
