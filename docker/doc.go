// Package docker holds ignetcd's container image (Dockerfile) and the demo
// (docker-compose.yml: one Apache Ignite node, two ignetcd nodes, a one-shot
// etcdctl). No Docker engine runs where this project is built and tested, so
// docker_test.go checks both files statically against the binary's flags and
// runs the demo's etcdctl script against two in-process nodes.
package docker
