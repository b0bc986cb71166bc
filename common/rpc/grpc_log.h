/* gRPC core's own log messages, written as stagewise log lines. */
#ifndef SW_GRPC_LOG_H
#define SW_GRPC_LOG_H

/* Sends gRPC core's log messages through sw_log (process-wide: call once,
 * from a server's main, never from a library a user links). */
void sw_log_capture_grpc(void);

#endif
