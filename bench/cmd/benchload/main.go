// Command benchload is a bench/run.sh helper (not part of ignetcd).
//
//	benchload load -endpoints host:port -prefix /p/ -keys N -val-size B
//	    puts N keys prefix%08d through clientv3, -ops-per-txn puts per Txn,
//	    from -workers concurrent goroutines; prints the rate.
//	benchload freeport
//	    prints a loopback TCP port that was free a moment ago, drawn from
//	    20000-32767 (below Linux's ephemeral range, as it/etcdbin does).
//	benchload mem -engine memory|ignite [-ignite-endpoints host:port] -keys N
//	    starts an ignetcd node in this process (package embed) on a loopback
//	    port, loads N keys into it the same way, and prints the growth of the
//	    live Go heap (after runtime.GC) and of RSS per key. With the Ignite
//	    engine the data lives in the Ignite process, so this is the cost of
//	    the frontend's index alone.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ignetcd/ignetcd/embed"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "load":
		err = loadCmd(os.Args[2:])
	case "mem":
		err = memCmd(os.Args[2:])
	case "freeport":
		err = freePortCmd()
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchload:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchload load|mem|freeport [flags] (see the package comment)")
	os.Exit(2)
}

type loadOpts struct {
	prefix                     string
	keys, valSize              int
	opsPerTxn, workers         int
	timeout, reqTimeout, stall time.Duration
}

var errStalled = errors.New("load stalled")

func (o *loadOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.prefix, "prefix", "/bench/k/", "key prefix; keys are prefix%08d")
	fs.IntVar(&o.keys, "keys", 1000, "number of keys")
	fs.IntVar(&o.valSize, "val-size", 256, "value size in bytes")
	fs.IntVar(&o.opsPerTxn, "ops-per-txn", 100, "puts per Txn (etcd's --max-txn-ops is 128)")
	fs.IntVar(&o.workers, "workers", 8, "concurrent writers")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.DurationVar(&o.stall, "stall", 60*time.Second, "give up when no Txn completed for this long (0: never)")
	fs.DurationVar(&o.reqTimeout, "request-timeout", 30*time.Second, "give up on one Txn after this long")
}

func loadCmd(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated client endpoints")
	var o loadOpts
	o.register(fs)
	fs.Parse(args)
	return load(strings.Split(*endpoints, ","), o)
}

func load(endpoints []string, o loadOpts) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	val := make([]byte, o.valSize)
	rand.Read(val)
	for i := range val { // printable, like the benchmark tool's values
		val[i] = 'a' + val[i]%26
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	start := time.Now()
	var next, done atomic.Int64
	stopProgress := make(chan struct{})
	defer close(stopProgress)
	stalled := make(chan int64, 1)
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		last, lastMoved := int64(-1), time.Now()
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				n := done.Load()
				fmt.Fprintf(os.Stderr, "benchload: %d/%d keys after %v\n", n, o.keys, time.Since(start).Round(time.Second))
				if n != last {
					last, lastMoved = n, now
				} else if o.stall > 0 && now.Sub(lastMoved) >= o.stall {
					stalled <- n
					cancel()
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, o.workers)
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := int(next.Add(int64(o.opsPerTxn))) - o.opsPerTxn
				if first >= o.keys {
					return
				}
				last := min(first+o.opsPerTxn, o.keys)
				ops := make([]clientv3.Op, 0, last-first)
				for i := first; i < last; i++ {
					ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s%08d", o.prefix, i), string(val)))
				}
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					rctx, rcancel := context.WithTimeout(ctx, o.reqTimeout)
					_, err = cli.Txn(rctx).Then(ops...).Commit()
					rcancel()
					if err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				done.Add(int64(last - first))
				if err != nil {
					errs <- fmt.Errorf("txn putting keys %d..%d: %w", first, last-1, err)
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	select {
	case n := <-stalled:
		return fmt.Errorf("%w: no progress for %v at %d/%d keys", errStalled, o.stall, n, o.keys)
	default:
	}
	if err := <-errs; err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Printf("LOADED keys=%d val_size=%d took=%.1fs keys_per_s=%.0f\n", o.keys, o.valSize, d.Seconds(), float64(o.keys)/d.Seconds())
	return nil
}

func freePortCmd() error {
	for i := 0; i < 200; i++ {
		p := 20000 + mrand.IntN(12768)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		fmt.Println(p)
		return nil
	}
	return errors.New("no free port found in 20000-32767")
}

func memCmd(args []string) error {
	fs := flag.NewFlagSet("mem", flag.ExitOnError)
	engine := fs.String("engine", "memory", "memory or ignite")
	ignite := fs.String("ignite-endpoints", "", "Ignite thin-client endpoints (engine ignite)")
	cachePrefix := fs.String("ignite-cache-prefix", "", "cache name prefix (default: a fresh one per run)")
	var o loadOpts
	o.register(fs)
	fs.Parse(args)

	cfg := embed.Config{
		Name:             "bench-mem",
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		MaxRequestBytes:  1572864,
		MaxTxnOps:        128,
		Logger:           zerolog.New(os.Stderr).Level(zerolog.WarnLevel),
	}
	switch *engine {
	case "memory":
	case "ignite":
		if *ignite == "" {
			return errors.New("-engine ignite needs -ignite-endpoints")
		}
		cfg.IgniteEndpoints = strings.Split(*ignite, ",")
		cfg.Prefix = *cachePrefix
		if cfg.Prefix == "" {
			cfg.Prefix = fmt.Sprintf("benchmem%d-", time.Now().UnixNano())
		}
	default:
		return fmt.Errorf("-engine %q: want memory or ignite", *engine)
	}
	ctx := context.Background()
	node, err := embed.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	// Warm up the client path once so that its one-off allocations are in
	// the baseline.
	if err := load(node.Endpoints(), loadOpts{prefix: "/warmup/", keys: 1, valSize: o.valSize, opsPerTxn: 1, workers: 1, timeout: time.Minute, reqTimeout: 30 * time.Second}); err != nil {
		return err
	}
	heap0, rss0 := measure()
	if err := load(node.Endpoints(), o); err != nil {
		// The node may be wedged; show where, and do not wait for Close.
		fmt.Fprintf(os.Stderr, "benchload: %v\nbenchload: goroutines of the in-process node:\n", err)
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		fmt.Fprintf(os.Stderr, "benchload: %v\n", err)
		os.Exit(1)
	}
	heap1, rss1 := measure()
	n := float64(o.keys)
	fmt.Printf("MEM engine=%s keys=%d val_size=%d heap_before=%d heap_after=%d heap_per_key=%.0f rss_before=%d rss_after=%d rss_per_key=%.0f\n",
		*engine, o.keys, o.valSize, heap0, heap1, float64(int64(heap1)-int64(heap0))/n, rss0, rss1, float64(rss1-rss0)/n)
	return nil
}

// measure returns the process RSS as it is (garbage included, as an
// operator sees it, and as etcd's is measured) and then the live heap after
// a full GC.
func measure() (heap uint64, rss int64) {
	rss = readRSS()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, rss
}

func readRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return -1
}
