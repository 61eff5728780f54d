// Command ignitedouble serves the ignite/ignitetest double (a wire-compatible
// in-memory Ignite thin-client server) as a process of its own, so that
// it/kube/run.sh can restart ignetcd while its data stays: ignetcd runs on
// the Ignite engine against this process. It prints "host:port" on stdout
// and runs until SIGINT or SIGTERM. Not a real Ignite: test use only.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ignetcd/ignetcd/ignite/ignitetest"
)

func main() {
	srv, err := ignitetest.Start(ignitetest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ignitedouble:", err)
		os.Exit(1)
	}
	fmt.Println(srv.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	srv.Close()
}
