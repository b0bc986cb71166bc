/* A TCP listener of our own, for plaintext ports: it accepts connections on
 * its own thread and hands each to a callback (the server gives them to
 * gRPC), because gRPC core 1.51's listener stops accepting for good after
 * one EMFILE. This one never stops: it keeps descriptors in reserve, closes
 * new connections at once while the process is near its open-file limit,
 * and recovers from EMFILE and ENFILE by accepting and closing with a spare
 * descriptor.
 *
 * Threading: new/port/free from one thread; the callback runs on the
 * listener's thread. */
#ifndef SW_LISTENER_H
#define SW_LISTENER_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct sw_listener sw_listener;

/* Takes `fd`, a connected socket: the callback owns it from now on. */
typedef void (*sw_listener_accept_func)(int fd, void *user_data);
/* Told of each connection closed at once for want of descriptors. */
typedef void (*sw_listener_refused_func)(void *user_data);

typedef struct sw_listener_options {
    const char *address; /* "HOST:PORT" or "[V6]:PORT"; port 0 picks a free one */
    /* Descriptors kept free for everything else the process opens (files,
     * channels to the next stage): a connection that would leave fewer is
     * closed at once. 0: a default of 64. */
    int reserve_fds;
    sw_listener_accept_func on_accept;
    sw_listener_refused_func on_refused; /* may be NULL */
    void *user_data;
} sw_listener_options;

/* Binds and listens; accepts nothing until sw_listener_start(). NULL with
 * an error when the address does not resolve or cannot be bound. */
sw_listener *sw_listener_new(const sw_listener_options *options, GError **error);
int sw_listener_port(const sw_listener *listener);
/* Starts the accepting thread. */
void sw_listener_start(sw_listener *listener);
/* Connections accepted and handed on, and closed at once, so far; from
 * any thread. */
guint64 sw_listener_accepted(sw_listener *listener);
guint64 sw_listener_refused(sw_listener *listener);
/* Stops accepting (joining the thread) and closes the socket. */
void sw_listener_free(sw_listener *listener);

/* TRUE when `address` is one sw_listener can serve: HOST:PORT, not a unix
 * socket or a URI. */
gboolean sw_listener_serves(const char *address);

G_END_DECLS

#endif
