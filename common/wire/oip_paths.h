/* The gRPC method paths stagewise serves and calls: the Open Inference
 * Protocol's service (package "inference", which every stock client
 * expects) and grpc.health.v1. One place, so server, hop, client and bench
 * cannot disagree. */
#ifndef SW_OIP_PATHS_H
#define SW_OIP_PATHS_H

#define SW_OIP_SERVICE "inference.GRPCInferenceService"
#define SW_HEALTH_SERVICE "grpc.health.v1.Health"

#define SW_PATH_SERVER_LIVE "/" SW_OIP_SERVICE "/ServerLive"
#define SW_PATH_SERVER_READY "/" SW_OIP_SERVICE "/ServerReady"
#define SW_PATH_MODEL_READY "/" SW_OIP_SERVICE "/ModelReady"
#define SW_PATH_SERVER_METADATA "/" SW_OIP_SERVICE "/ServerMetadata"
#define SW_PATH_MODEL_METADATA "/" SW_OIP_SERVICE "/ModelMetadata"
#define SW_PATH_MODEL_INFER "/" SW_OIP_SERVICE "/ModelInfer"
#define SW_PATH_MODEL_STATISTICS "/" SW_OIP_SERVICE "/ModelStatistics"
#define SW_PATH_MODEL_CONFIG "/" SW_OIP_SERVICE "/ModelConfig"
#define SW_PATH_HEALTH_CHECK "/" SW_HEALTH_SERVICE "/Check"
#define SW_PATH_HEALTH_WATCH "/" SW_HEALTH_SERVICE "/Watch"

#endif
