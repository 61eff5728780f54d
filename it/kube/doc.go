// Package kube runs kube-apiserver's generic storage test suite
// (k8s.io/apiserver/pkg/storage/testing) through k8s.io/apiserver's etcd3
// store against ignetcd nodes started in-process, on the memory engine and
// on Ignite. It is a module of its own so that the server's go.mod stays
// free of Kubernetes dependencies; run it with (cd it/kube && go test ./...).
package kube
