// Command ignitetest-server runs the ignite/ignitetest double as a standalone
// process, so that bench/run.sh can point a separately built ignetcd binary
// at it with --ignite-endpoints.
//
// It is a benchmark helper only. The double is NOT an Ignite substitute: it
// is an in-memory store on 127.0.0.1 speaking the thin-client protocol, with
// no durability, no replication and none of a real cluster's costs (no
// backups, no partition map exchange, no Java GC). Numbers measured against
// it say how fast ignetcd's own code path is, not how fast ignetcd is on
// Ignite; set IGNETCD_TEST_IGNITE=host:port for bench/run.sh to measure a
// real cluster instead.
//
// It prints "ADDR host:port" on stdout once listening (and writes host:port
// to -addr-file if given), then serves until SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/ignetcd/ignetcd/ignite/ignitetest"
)

func main() {
	addrFile := flag.String("addr-file", "", "write the listening host:port to this file")
	partitions := flag.Int("partitions", 0, "notification partitions (0: the double's default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "ignitetest-server:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	srv, err := ignitetest.Start(ignitetest.Options{Partitions: *partitions})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ignitetest-server:", err)
		os.Exit(1)
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile+".tmp", []byte(srv.Addr()+"\n"), 0o644); err == nil {
			err = os.Rename(*addrFile+".tmp", *addrFile)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "ignitetest-server:", err)
			srv.Close()
			os.Exit(1)
		}
	}
	fmt.Println("ADDR", srv.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	srv.Close()
}
