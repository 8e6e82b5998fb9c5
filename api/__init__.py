"""The Reports API: REST (aiohttp) and gRPC (grpcio) front door with JWT access and refresh
tokens; every report it accepts becomes a ReportRequest for the operator. Guide: docs/api.md.

Modules: `auth` (token policy), `reports` (pure request rules), `service` (operations over the
Kubernetes API), `rest` and `grpc_api` (the two front doors), `openapi` (the served document),
`server` (runs both), `_kube` (the small async Kubernetes client), `problems` (errors).
"""
