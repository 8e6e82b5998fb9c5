"""A real Kubernetes test control plane (etcd + kube-apiserver) built from Go modules."""
