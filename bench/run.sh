#!/usr/bin/env bash
# bench/run.sh: etcd's own `benchmark` tool (etcd repo, tools/benchmark) against
#   etcd           a real etcd 3.6.16, default settings (fsync on)
#   etcd-nofsync   the same with --unsafe-no-fsync (like-for-like with the non-durable targets below)
#   ignetcd-mem    ignetcd on the in-memory engine
#   ignetcd-ignite ignetcd on the Ignite engine, over the ignite/ignitetest double run as a process
#                  (bench/cmd/ignitetest-server), or over a real cluster when IGNETCD_TEST_IGNITE=host:port
#   ignetcd-ignite-2nodes  two ignetcd nodes on one Ignite (the double or IGNETCD_TEST_IGNITE), the
#                  benchmark's clients spread over both: how frontends share the revision counter
#   ignetcd-ignite-2nodes-apart  the same two nodes on the same Ignite, each with its own keyspace
#                  (nothing shared): with -2nodes, isolates what sharing one keyspace costs (writes only)
# in one run on this machine, then prints one table (req/s, p50, p99, ratios to etcd, the server's and
# the benchmark tool's CPU per request, the tool's being a gauge of the machine's speed, and the heap
# bytes the server allocated per request, which the machine's speed does not move) and, with
# MEM=1, the memory per key for 1M keys. Not part of CI: it takes minutes and wants an idle machine.
#
#   bench/run.sh              full run (~30 min on 2 cores), writes the results into docs/performance.md
#   QUICK=1 bench/run.sh      smoke run (~2 min), stdout only
#
# Knobs (environment): TOTAL (requests per workload, 100000; QUICK 2000: at 20000 a write cell lasts
# about one second, the tool's own start-up is a third of its CPU and one GC or scheduler hiccup moves
# the cell by 10 % or more), ROUNDS (5, the table shows medians: this host's speed swings by a third
# within minutes, as the tool's CPU column shows, and a median of 5 outvotes a spell that hits two
# rounds of one target; QUICK 1), CLIENTS (100), CONNS (10),
# WATCH_PUTS (1000 at 100/s; QUICK 200), RUN_TIMEOUT (seconds per benchmark run, 180; QUICK 60),
# TARGETS ("etcd etcd-nofsync ignetcd-mem ignetcd-ignite ignetcd-ignite-2nodes ignetcd-ignite-2nodes-apart"; QUICK runs
# "etcd ignetcd-mem ignetcd-ignite"; "none": only MEM),
# MEM (1; QUICK 0), MEM_KEYS (1000000), MEM_VAL (100), MEM_TIMEOUT (900),
# REV (commit ignetcd is built from, HEAD; "worktree" builds the working tree as it is),
# OUT (docs/performance.md; QUICK and OUT=- print only), IGNETCD_TEST_IGNITE (a real cluster),
# IGNITE_PIDS (pids of Ignite server processes on this machine, counted in the Ignite rows' server CPU),
# WARM (with IGNETCD_TEST_IGNITE: puts sent through each Ignite target before round 1, not measured, so
# that round 1 does not time a cold JVM; 50000, 0 for none),
# IGNETCD_BIN_CACHE / IGNETCD_ETCD_BIN / IGNETCD_BENCHMARK_BIN (as it/etcdbin: cached binaries).
#
# Binaries: etcd is it/etcdbin's (same cache, $HOME/.cache/ignetcd/bin/v3.6.16/etcd), built the same
# way if missing: download the module from the Go module proxy, copy it, drop its replace directives,
# go build. The benchmark tool lives in the root module go.etcd.io/etcd/v3 (tools/benchmark); the
# proxy refuses go.etcd.io/etcd/v3@v3.6.16 (403, "not available"), so the newest v3.6.x it serves is
# used, with its etcd client modules pinned to v3.6.16. Everything listens on 127.0.0.1 only; every
# process started here is stopped on exit (by pid).
set -uo pipefail

ETCD_VERSION=v3.6.16
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
INVOCATION="$0${*:+ $*}"
for v in QUICK TOTAL ROUNDS CLIENTS CONNS WATCH_PUTS RUN_TIMEOUT TARGETS MEM MEM_KEYS MEM_VAL MEM_TIMEOUT REV OUT IGNETCD_TEST_IGNITE IGNITE_PIDS; do
	[[ -n "${!v:-}" ]] && INVOCATION="$v=${!v} $INVOCATION"
done

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
	TOTAL=${TOTAL:-2000} ROUNDS=${ROUNDS:-1} WATCH_PUTS=${WATCH_PUTS:-200} RUN_TIMEOUT=${RUN_TIMEOUT:-60} MEM=${MEM:-0}
	TARGETS=${TARGETS:-"etcd ignetcd-mem ignetcd-ignite"} OUT=${OUT:--}
fi
TOTAL=${TOTAL:-100000}
ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-100}
CONNS=${CONNS:-10}
VAL_SIZE=256
WATCH_PUTS=${WATCH_PUTS:-1000}
WATCH_RATE=100
RUN_TIMEOUT=${RUN_TIMEOUT:-180}
TARGETS=${TARGETS:-"etcd etcd-nofsync ignetcd-mem ignetcd-ignite ignetcd-ignite-2nodes ignetcd-ignite-2nodes-apart"}
[[ $TARGETS == none ]] && TARGETS=""
MEM=${MEM:-1}
MEM_KEYS=${MEM_KEYS:-1000000}
MEM_VAL=${MEM_VAL:-100}
MEM_TIMEOUT=${MEM_TIMEOUT:-900}
REV=${REV:-HEAD}
OUT=${OUT:-$REPO/docs/performance.md}
WARM=${WARM:-50000}

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ignetcd-bench.XXXXXX")
LOGS=$WORK/logs
BIN=$WORK/bin
mkdir -p "$LOGS" "$BIN"

# ---------------------------------------------------------------- processes
PIDS=()
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	rm -rf "$WORK/data" "$WORK/src" "$BIN"
	log "logs kept in $LOGS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_bg LOGNAME CMD... starts CMD in the background and sets BG_PID.
start_bg() {
	local name=$1
	shift
	"$@" >"$LOGS/$name.log" 2>&1 &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

wait_healthy() { # URL PID NAME
	local url=$1 pid=$2 name=$3 i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || { tail -20 "$LOGS/$name.log" >&2; return 1; }
		curl -fs -m 1 "$url/health" 2>/dev/null | grep -q '"health":"true"' && return 0
		sleep 0.1
	done
	tail -20 "$LOGS/$name.log" >&2
	return 1
}

heap_inuse() { curl -fs -m 5 "http://$1/metrics" | awk '/^go_memstats_heap_inuse_bytes / {printf "%.0f\n", $2; f = 1} END {if (!f) print 0}'; }
# alloc_bytes ENDPOINTS: the Go heap bytes allocated so far by the servers at ENDPOINTS (comma-separated;
# etcd's or ignetcd's /metrics, go_memstats_alloc_bytes_total), summed; "-" if one does not say.
alloc_bytes() {
	local e v sum=0
	for e in ${1//,/ }; do
		v=$(curl -fs -m 5 "http://$e/metrics" | awk '/^go_memstats_alloc_bytes_total / {printf "%.0f", $2}')
		[[ -n $v ]] || { echo -; return; }
		sum=$((sum + v))
	done
	echo "$sum"
}
rss_of() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }

# exec_clean_env CMD...: exec CMD without variables the servers would read as flags. Only for start_bg
# (it replaces the background subshell, so that BG_PID is the server's own pid).
exec_clean_env() {
	local -a unset=()
	local v
	for v in $(compgen -e); do
		[[ $v == ETCD_* || $v == IGNETCD_* ]] && unset+=(-u "$v")
	done
	exec env "${unset[@]}" "$@"
}

# ---------------------------------------------------------------- builds
CACHE=${IGNETCD_BIN_CACHE:-$HOME/.cache/ignetcd/bin}/$ETCD_VERSION
mkdir -p "$CACHE"
modenv() { env GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off CGO_ENABLED=0 GO111MODULE=on "$@"; }

# build_module MODULE VERSION PKG OUT [go mod edit args...]: it/etcdbin's recipe in shell.
build_module() {
	local module=$1 version=$2 pkg=$3 out=$4
	shift 4
	local w dir
	w=$(mktemp -d "$WORK/build.XXXX")
	dir=$(cd "$w" && modenv go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[[ -n $dir && -d $dir ]] || { log "go mod download $module@$version failed"; return 1; }
	cp -r "$dir" "$w/src" && chmod -R u+w "$w/src" || return 1
	local -a args=(-toolchain=none)
	local r
	for r in $(awk '/^replace \($/ {b = 1; next} b && /^\)/ {b = 0} b {print ($2 == "=>" ? $1 : $1 "@" $2)}
		/^replace [^(]/ {print ($3 == "=>" ? $2 : $2 "@" $3)}' "$w/src/go.mod"); do
		args+=("-dropreplace=$r")
	done
	(cd "$w/src" && modenv go mod edit "${args[@]}" "$@") || return 1
	if ! (cd "$w/src" && modenv go build -trimpath -ldflags="-s -w" -o "$out.tmp.$$" "$pkg") >"$LOGS/build-$(basename "$out").log" 2>&1; then
		log "build of $module $pkg failed, retrying after go mod tidy in the copy"
		(cd "$w/src" && modenv go mod tidy && modenv go build -trimpath -ldflags="-s -w" -o "$out.tmp.$$" "$pkg") \
			>>"$LOGS/build-$(basename "$out").log" 2>&1 || { tail -30 "$LOGS/build-$(basename "$out").log" >&2; return 1; }
	fi
	mv "$out.tmp.$$" "$out"
	rm -rf "$w"
}

build_tools() {
	exec 9>"$CACHE/.lock"
	flock 9
	ETCD_BIN=${IGNETCD_ETCD_BIN:-$CACHE/etcd}
	if [[ ! -x $ETCD_BIN ]]; then
		log "building etcd $ETCD_VERSION from the module proxy (first time only)"
		build_module go.etcd.io/etcd/server/v3 "$ETCD_VERSION" . "$CACHE/etcd" || die "building etcd"
	fi
	BENCHMARK_BIN=${IGNETCD_BENCHMARK_BIN:-$CACHE/benchmark}
	if [[ ! -x $BENCHMARK_BIN ]]; then
		local v=$ETCD_VERSION
		if ! (cd "$WORK" && modenv go mod download -json "go.etcd.io/etcd/v3@$v" >/dev/null 2>&1); then
			v=$(cd "$WORK" && modenv go list -m -versions go.etcd.io/etcd/v3 | tr ' ' '\n' | grep -E '^v3\.6\.[0-9]+$' | sort -V | tail -1)
			[[ -n $v ]] || die "no go.etcd.io/etcd/v3 v3.6.x on the module proxy"
			log "go.etcd.io/etcd/v3@$ETCD_VERSION is not on the module proxy; building tools/benchmark from $v"
		fi
		local -a pins=()
		local m
		for m in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3; do pins+=("-require=go.etcd.io/etcd/$m@$ETCD_VERSION"); done
		log "building etcd's benchmark tool (go.etcd.io/etcd/v3@$v ./tools/benchmark, clients pinned to $ETCD_VERSION)"
		build_module go.etcd.io/etcd/v3 "$v" ./tools/benchmark "$CACHE/benchmark" "${pins[@]}" || die "building the benchmark tool"
		echo "go.etcd.io/etcd/v3@$v tools/benchmark, etcd client modules $ETCD_VERSION" >"$CACHE/benchmark.version"
	fi
	BENCHMARK_VERSION=$(cat "$CACHE/benchmark.version" 2>/dev/null || echo "$BENCHMARK_BIN")
	flock -u 9
	exec 9>&-

	# ignetcd and the bench helpers, from one commit (the shared working tree may hold others'
	# half-done edits) unless REV=worktree.
	local src=$REPO
	if [[ $REV == worktree ]]; then
		SOURCE="working tree of $(git -C "$REPO" rev-parse --short HEAD) ($(git -C "$REPO" status --porcelain | wc -l) changed files)"
	else
		local commit
		commit=$(git -C "$REPO" rev-parse --verify "$REV^{commit}") || die "REV=$REV is not a commit"
		SOURCE="commit $(git -C "$REPO" log -1 --format='%h' "$commit") ($(git -C "$REPO" log -1 --format='%s' "$commit" | cut -c1-70))"
		src=$WORK/src
		mkdir -p "$src"
		git -C "$REPO" archive "$commit" | tar -x -C "$src" || die "git archive $REV"
		rm -rf "$src/bench/cmd" && mkdir -p "$src/bench" && cp -r "$BENCH_DIR/cmd" "$src/bench/cmd"
	fi
	log "building ignetcd from the $SOURCE"
	(cd "$src" && env GOFLAGS=-buildvcs=false GOWORK=off go build -o "$BIN/ignetcd" ./cmd/ignetcd &&
		env GOFLAGS=-buildvcs=false GOWORK=off go build -o "$BIN/benchload" ./bench/cmd/benchload &&
		env GOFLAGS=-buildvcs=false GOWORK=off go build -o "$BIN/ignitetest-server" ./bench/cmd/ignitetest-server) \
		>"$LOGS/build-ignetcd.log" 2>&1 || { cat "$LOGS/build-ignetcd.log" >&2; die "building ignetcd"; }
}

# ---------------------------------------------------------------- targets
IGNITE_PID=""
start_ignite() { # sets IGNITE_EP
	if [[ -n ${IGNETCD_TEST_IGNITE:-} ]]; then
		IGNITE_EP=$IGNETCD_TEST_IGNITE
		return 0
	fi
	local af=$WORK/ignite.addr i
	rm -f "$af"
	start_bg "ignitetest-server-$1" "$BIN/ignitetest-server" -addr-file "$af"
	IGNITE_PID=$BG_PID
	for ((i = 0; i < 100; i++)); do
		[[ -s $af ]] && { IGNITE_EP=$(cat "$af"); return 0; }
		sleep 0.1
	done
	return 1
}
stop_ignite() { [[ -n $IGNITE_PID ]] && stop_pid "$IGNITE_PID"; IGNITE_PID=""; }

# start_target NAME LOGTAG: sets EP (host:port) and TPID.
start_target() {
	local name=$1 tag=$2 port wtag=$2
	port=$("$BIN/benchload" freeport) || return 1
	local url=http://127.0.0.1:$port
	EP=127.0.0.1:$port
	case $name in
	etcd | etcd-nofsync)
		local pport extra=()
		pport=$("$BIN/benchload" freeport) || return 1
		[[ $name == etcd-nofsync ]] && extra=(--unsafe-no-fsync)
		mkdir -p "$WORK/data"
		rm -rf "$WORK/data/$tag"
		start_bg "$tag" exec_clean_env "$ETCD_BIN" --name=bench --data-dir="$WORK/data/$tag" \
			--listen-client-urls="$url" --advertise-client-urls="$url" \
			--listen-peer-urls="http://127.0.0.1:$pport" --initial-advertise-peer-urls="http://127.0.0.1:$pport" \
			--initial-cluster="bench=http://127.0.0.1:$pport" --initial-cluster-state=new \
			--log-level=error "${extra[@]}"
		;;
	ignetcd-mem)
		start_bg "$tag" exec_clean_env "$BIN/ignetcd" --name=bench --listen-client-urls="$url" --log-level=warn
		;;
	ignetcd-ignite)
		start_ignite "$tag" || return 1
		start_bg "$tag" exec_clean_env "$BIN/ignetcd" --name=bench --listen-client-urls="$url" --log-level=warn \
			--ignite-endpoints="$IGNITE_EP" --ignite-cache-prefix="bench$(date +%s)$RANDOM-"
		;;
	ignetcd-ignite-2nodes | ignetcd-ignite-2nodes-apart)
		# Two frontends; clientv3 spreads each client's requests over both. -2nodes: one keyspace,
		# so they share the revision counter and each applies the other's revisions. -apart: the
		# same processes on the same Ignite, but each node its own keyspace (cache prefix), so
		# nothing is shared: the difference between the two rows is what sharing costs.
		start_ignite "$tag" || return 1
		local prefix="bench$(date +%s)$RANDOM-" port2 prefix2
		prefix2=$prefix
		[[ $name == *-apart ]] && prefix2="${prefix%-}b-"
		port2=$("$BIN/benchload" freeport) || return 1
		start_bg "$tag" exec_clean_env "$BIN/ignetcd" --name=bench1 --listen-client-urls="$url" --log-level=warn \
			--ignite-endpoints="$IGNITE_EP" --ignite-cache-prefix="$prefix"
		TPID2=$BG_PID
		wait_healthy "$url" "$TPID2" "$tag" || return 1
		url=http://127.0.0.1:$port2
		EP="$EP,127.0.0.1:$port2"
		wtag=$tag-2
		start_bg "$tag-2" exec_clean_env "$BIN/ignetcd" --name=bench2 --listen-client-urls="$url" --log-level=warn \
			--ignite-endpoints="$IGNITE_EP" --ignite-cache-prefix="$prefix2"
		;;
	*) die "unknown target $name" ;;
	esac
	TPID=$BG_PID
	wait_healthy "$url" "$TPID" "$wtag"
}
stop_target() { stop_pid "$TPID"; [[ -n ${TPID2:-} ]] && stop_pid "$TPID2"; TPID2=""; stop_ignite; }

# ---------------------------------------------------------------- workloads
WORKLOADS=(put-rand put-seq txn-put range-1key-lin range-1key-ser range-1000keys-limit100 watch-latency)
declare -A RPS P50 P99 CPU TOOL ALLOC PAIRED ROUND_ETCD NOTE
RANGE_PREFIX=/bench/range/

workload_args() { # WORKLOAD -> benchmark subcommand and flags
	case $1 in
	put-rand) echo "put --total $TOTAL --val-size $VAL_SIZE --key-size 8 --key-space-size 100000" ;;
	put-seq) echo "put --total $TOTAL --val-size $VAL_SIZE --key-size 8 --key-space-size $TOTAL --sequential-keys" ;;
	txn-put) echo "txn-put --total $TOTAL --val-size $VAL_SIZE --key-size 8 --key-space-size 100000 --txn-ops 1" ;;
	range-1key-lin) echo "range ${RANGE_PREFIX}00000000 --total $TOTAL --consistency l" ;;
	range-1key-ser) echo "range ${RANGE_PREFIX}00000000 --total $TOTAL --consistency s" ;;
	range-1000keys-limit100) echo "range $RANGE_PREFIX ${RANGE_PREFIX%/}0 --total $TOTAL --limit 100 --consistency l" ;;
	watch-latency) echo "watch-latency --put-total $WATCH_PUTS --put-rate $WATCH_RATE --streams 10 --watchers-per-stream 10 --key-size 32 --val-size $VAL_SIZE" ;;
	esac
}

# parse FILE [SECTION]: "req/s p50_ms p99_ms errors" from a benchmark report (after SECTION if given).
parse() {
	awk -v sec="${2:-}" '
		BEGIN { on = (sec == "") }
		sec != "" && index($0, sec) { on = 1; next }
		on && /Requests\/sec:/ && rps == "" { rps = $2 }
		on && /^[[:space:]]*50% in/ && p50 == "" { p50 = $3 }
		on && /^[[:space:]]*99% in/ && p99 == "" { p99 = $3 }
		/Error distribution:/ { e = 1; next }
		e && /^[[:space:]]*\[[0-9]+\]/ { x = $1; gsub(/[^0-9]/, "", x); errs += x }
		END {
			if (rps == "") { print "- - - " errs + 0; exit }
			printf "%.0f %.2f %.2f %d\n", rps, p50 * 1000, p99 * 1000, errs
		}' "$1"
}

# cpu_ticks PID...: user+system CPU time of the processes so far, in clock ticks.
cpu_ticks() {
	local p sum=0 f
	for p in "$@"; do
		[[ -n $p ]] || continue
		f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
		# fields after "pid (comm)": state is 1st, utime 12th, stime 13th
		sum=$((sum + $(awk '{print $12 + $13}' <<<"$f")))
	done
	echo "$sum"
}
CLK_TCK=$(getconf CLK_TCK)

# children_cpu: sets CHILDREN_CPU to the user+system CPU seconds of this shell's finished children
# so far (bash's `times`, which must run in this shell, not in a $(...): a subshell's children start
# at zero). The benchmark tool's share of it is a gauge of the machine's speed during a cell: the
# tool does the same work for a target in every round, so a cell where it costs more than in that
# target's other rounds ran in a slow spell of this (shared) machine.
children_cpu() {
	times >"$WORK/times.txt"
	CHILDREN_CPU=$(awk 'NR == 2 {
		n = 0
		for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); n += p[1] * 60 + p[2] }
		printf "%.3f\n", n
	}' "$WORK/times.txt")
}

run_workload() { # TARGET WORKLOAD
	local t=$1 w=$2 f=$LOGS/$1.$2.txt rc clients=$CLIENTS conns=$CONNS section=""
	if [[ $w == watch-latency ]]; then clients=10 conns=10 section="Watch events summary"; fi
	# Server-side CPU (every process of the target: etcd; ignetcd node(s) and the double) per request.
	local procs=("${TPIDS[$t]}" "${TPIDS2[$t]:-}" "${IGPIDS[$t]:-}") cpu0
	# A real Ignite node on this machine (IGNITE_PIDS) is part of the Ignite targets' server.
	# shellcheck disable=SC2206
	[[ $t == ignetcd-ignite* && -n ${IGNITE_PIDS:-} ]] && procs+=($IGNITE_PIDS)
	cpu0=$(cpu_ticks "${procs[@]}")
	local tool0 alloc0
	alloc0=$(alloc_bytes "$EP")
	children_cpu
	tool0=$CHILDREN_CPU
	# shellcheck disable=SC2046
	timeout -k 10 "$RUN_TIMEOUT" "$BENCHMARK_BIN" --endpoints="$EP" --clients="$clients" --conns="$conns" --precise \
		$(workload_args "$w") >"$f" 2>"$LOGS/$1.$2.stderr"
	rc=$?
	local cpus=$(($(cpu_ticks "${procs[@]}") - cpu0)) tool alloc1
	children_cpu
	alloc1=$(alloc_bytes "$EP")
	tool=$(awk -v a="$tool0" -v b="$CHILDREN_CPU" 'BEGIN { printf "%.2f", b - a }')
	local rps p50 p99 errs
	read -r rps p50 p99 errs < <(parse "$f" "$section")
	local note=""
	if ((rc == 124 || rc == 137)); then
		note="timeout after ${RUN_TIMEOUT}s"
	elif ((rc != 0)) || [[ $rps == - ]]; then
		note="failed (exit $rc): $(grep -v 'INFO: \[core\]' "$LOGS/$1.$2.stderr" | tail -1 | cut -c1-120)"
	fi
	((errs > 0)) && note="${note:+$note; }$errs errors"
	# One value per round; the table shows the median of each column.
	if [[ -z $note && $rps != - ]]; then
		RPS[$w,$t]="${RPS[$w,$t]:-} $rps" P50[$w,$t]="${P50[$w,$t]:-} $p50" P99[$w,$t]="${P99[$w,$t]:-} $p99"
		# This round's ratio to etcd's cell of the same round (etcd runs first, so minutes apart at
		# most, on the machine as it then was): their median cancels a slow spell over both cells.
		[[ $t == etcd ]] && ROUND_ETCD[$w]=$rps
		[[ $t != etcd && -n ${ROUND_ETCD[$w]:-} && ${ROUND_ETCD[$w]} != - ]] &&
			PAIRED[$w,$t]="${PAIRED[$w,$t]:-} $(awk -v a="$rps" -v b="${ROUND_ETCD[$w]}" 'BEGIN { printf "%.2f", a / b }')"
		if [[ $w != watch-latency ]]; then
			CPU[$w,$t]="${CPU[$w,$t]:-} $(awk -v c="$cpus" -v hz="$CLK_TCK" -v n="$TOTAL" 'BEGIN { printf "%.0f", c / hz * 1e6 / n }')"
			TOOL[$w,$t]="${TOOL[$w,$t]:-} $(awk -v c="$tool" -v n="$TOTAL" 'BEGIN { printf "%.0f", c * 1e6 / n }')"
			[[ $alloc0 != - && $alloc1 != - ]] && ALLOC[$w,$t]="${ALLOC[$w,$t]:-} $(((alloc1 - alloc0) / TOTAL))"
		fi
	fi
	[[ -n $note ]] && NOTE[$w,$t]="${NOTE[$w,$t]:+${NOTE[$w,$t]}; }round $ROUND: $note"
	cp "$f" "$LOGS/$1.$2.round$ROUND.txt"
	log "  $t: ${rps} req/s, p50 ${p50} ms, p99 ${p99} ms, server CPU $cpus ticks, tool CPU ${tool} s $note"
}

# All targets run side by side (idle ones cost next to nothing) and each workload is run against
# every target in turn, so that load from elsewhere on the machine spreads over the targets of a
# workload instead of landing on whichever target happened to run last.
declare -A EPS TPIDS TPIDS2 IGPIDS UP
setup_target() {
	local t=$1 w
	UP[$t]=0
	log "starting $t"
	if ! start_target "$t" "$t"; then
		for w in "${WORKLOADS[@]}"; do NOTE[$w,$t]="server did not start (see $t.log)"; done
		stop_target
		return
	fi
	EPS[$t]=$EP TPIDS[$t]=$TPID IGPIDS[$t]=$IGNITE_PID UP[$t]=1 TPIDS2[$t]=${TPID2:-}
	IGNITE_PID="" TPID2=""
	if ! "$BIN/benchload" load -endpoints "$EP" -prefix "$RANGE_PREFIX" -keys 1000 -val-size "$VAL_SIZE" \
		-request-timeout 60s -timeout 300s >"$LOGS/$t.load-range.txt" 2>&1; then
		log "  loading the 1000 range keys into $t failed: $(tail -1 "$LOGS/$t.load-range.txt")"
	fi
	# A real node's JIT compiles its transaction path during the first minute of writes; without a
	# warm-up, round 1 of an Ignite target measures that (5 700 puts/s against 9 800-12 000 in the
	# later rounds of the 03:11 run, docs/performance.md). The double needs none.
	if [[ -n ${IGNETCD_TEST_IGNITE:-} && $t == ignetcd-ignite* && $WARM -gt 0 ]]; then
		log "  warming $t: $WARM puts"
		# shellcheck disable=SC2046
		timeout -k 10 "$RUN_TIMEOUT" "$BENCHMARK_BIN" --endpoints="$EP" --clients="$CLIENTS" --conns="$CONNS" \
			$(TOTAL=$WARM workload_args put-rand) >"$LOGS/$t.warm.txt" 2>&1 ||
			log "  warming $t failed: $(tail -1 "$LOGS/$t.warm.txt")"
	fi
}
teardown_target() {
	local t=$1
	[[ -n ${TPIDS[$t]:-} ]] && stop_pid "${TPIDS[$t]}"
	[[ -n ${TPIDS2[$t]:-} ]] && stop_pid "${TPIDS2[$t]}"
	[[ -n ${IGPIDS[$t]:-} ]] && stop_pid "${IGPIDS[$t]}"
	UP[$t]=0
}
run_all() {
	local t w
	for t in $TARGETS; do setup_target "$t"; done
	for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	LOADS="${LOADS:+$LOADS; }round $ROUND: $(cut -d' ' -f1 /proc/loadavg)"
	for w in "${WORKLOADS[@]}"; do
		log "round $ROUND/$ROUNDS: $w"
		ROUND_ETCD[$w]=- # etcd's cell of this round, once it has run (run_workload)
		for t in $TARGETS; do
			[[ ${UP[$t]} == 1 ]] || continue
			if ! kill -0 "${TPIDS[$t]}" 2>/dev/null; then
				log "  $t exited; see $LOGS/$t.log"
				UP[$t]=0
				NOTE[$w,$t]="server exited (see $t.log)"
				continue
			fi
			if [[ $t == *-apart && $w != put-* && $w != txn-put ]]; then
				NOTE[$w,$t]="not run: two keyspaces, reads would see half the keys"
				continue
			fi
			EP=${EPS[$t]}
			run_workload "$t" "$w"
		done
	done
	done
	for t in $TARGETS; do teardown_target "$t"; done
}

# ---------------------------------------------------------------- memory per key
declare -a MEMROWS=()
mem_row() { MEMROWS+=("$1"); log "  $1"; }
measure_memory() {
	log "memory per key: $MEM_KEYS keys of $MEM_VAL B values"
	local line keys_s
	# etcd: RSS of the server process before and after the load (heap growth is not observable from outside).
	if start_target etcd mem-etcd; then
		local rss0 rss1 h0 h1
		rss0=$(rss_of "$TPID")
		h0=$(heap_inuse "$EP")
		if timeout -k 10 "$MEM_TIMEOUT" "$BIN/benchload" load -endpoints "$EP" -prefix /bench/mem/ -keys "$MEM_KEYS" \
			-val-size "$MEM_VAL" >"$LOGS/mem-etcd.load.txt" 2>&1; then
			sleep 2
			rss1=$(rss_of "$TPID")
			h1=$(heap_inuse "$EP")
			keys_s=$(sed -n 's/.*keys_per_s=\([0-9]*\).*/\1/p' "$LOGS/mem-etcd.load.txt")
			mem_row "| etcd $ETCD_VERSION (bbolt mmap + treeIndex) | $MEM_KEYS | $keys_s | $(((rss1 - rss0) / MEM_KEYS)) | no GC from outside; heap in use grew $(((h1 - h0) / MEM_KEYS)) |"
		else
			mem_row "| etcd $ETCD_VERSION | $MEM_KEYS | load failed: $(tail -1 "$LOGS/mem-etcd.load.txt" | cut -c1-100) | | |"
		fi
		stop_target
	fi
	# ignetcd: in-process node (package embed), live heap after GC and RSS, before and after.
	local engine
	for engine in memory ignite; do
		local -a extra=()
		if [[ $engine == ignite ]]; then
			start_ignite mem || { mem_row "| ignetcd, Ignite engine | $MEM_KEYS | ignite double did not start | | |"; continue; }
			extra=(-ignite-endpoints "$IGNITE_EP")
		fi
		if timeout -k 10 "$MEM_TIMEOUT" "$BIN/benchload" mem -engine "$engine" "${extra[@]}" -keys "$MEM_KEYS" \
			-val-size "$MEM_VAL" >"$LOGS/mem-ignetcd-$engine.txt" 2>&1; then
			line=$(grep '^MEM ' "$LOGS/mem-ignetcd-$engine.txt")
			keys_s=$(grep '^LOADED keys='"$MEM_KEYS" "$LOGS/mem-ignetcd-$engine.txt" | sed -n 's/.*keys_per_s=\([0-9]*\).*/\1/p')
			local heap rss what
			heap=$(sed -n 's/.*heap_per_key=\([-0-9]*\).*/\1/p' <<<"$line")
			rss=$(sed -n 's/.*rss_per_key=\([-0-9]*\).*/\1/p' <<<"$line")
			what="ignetcd, memory engine (index + the engine's copy of the data)"
			[[ $engine == ignite ]] && what="ignetcd, Ignite engine (frontend only; data in the Ignite process)"
			mem_row "| $what | $MEM_KEYS | $keys_s | $rss | $heap |"
		else
			mem_row "| ignetcd, $engine engine | $MEM_KEYS | failed: $(grep '^benchload: ' "$LOGS/mem-ignetcd-$engine.txt" | tail -1 | cut -c12-140) (log: mem-ignetcd-$engine.txt) | | |"
		fi
		stop_ignite
	done
}

# ---------------------------------------------------------------- report
median() { # VALUES... -> the median (mean of the middle two for an even count), or -
	(($# == 0)) && { echo "-"; return; }
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print (m == int(m) ? m : sprintf("%.2f", m))}'
}
fmt_ratio() { # A B -> A/B with two decimals, or -
	[[ $1 == - || $2 == - || -z $1 || -z $2 ]] && { echo "-"; return; }
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}
table() {
	local w t r
	echo "| workload | target | req/s | p50 ms | p99 ms | req/s ÷ etcd | same, median of rounds | p99 ÷ etcd | server CPU µs/req | tool CPU µs/req | server alloc B/req | note |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for w in "${WORKLOADS[@]}"; do
		for t in $TARGETS; do
			local rps p50 p99 erps ep99 rr pr cpu tool alloc paired
			rps=$(median ${RPS[$w,$t]:-}) p50=$(median ${P50[$w,$t]:-}) p99=$(median ${P99[$w,$t]:-})
			cpu=$(median ${CPU[$w,$t]:-}) tool=$(median ${TOOL[$w,$t]:-}) alloc=$(median ${ALLOC[$w,$t]:-})
			erps=$(median ${RPS[$w,etcd]:-}) ep99=$(median ${P99[$w,etcd]:-})
			rr=$(fmt_ratio "$rps" "$erps")
			paired=$(median ${PAIRED[$w,$t]:-})
			[[ $t == etcd && $rr != - ]] && paired=1.00
			pr=$(fmt_ratio "$p99" "$ep99")
			[[ $w == watch-latency ]] && rr="n/a" paired="n/a"
			echo "| $w | $t | $rps | $p50 | $p99 | $rr | $paired | $pr | $cpu | $tool | $alloc | ${NOTE[$w,$t]:-} |"
		done
	done
}

machine() {
	echo "- date: $STARTED to $(date -u '+%H:%M UTC')"
	echo "- machine: $(nproc) CPUs ($(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)), kernel $(uname -r); etcd data dir on $(stat -f -c %T "$WORK") ($WORK)"
	echo "- memory (\`free -h\`): $(free -h | awk '/^Mem:/ {print "total " $2 ", used " $3 ", available " $7}')"
	echo "- $(go version)"
	echo "- load average (1/5/15 min): at start $LOAD_BEFORE; at the end $(cut -d' ' -f1-3 /proc/loadavg); 1-min at the start of each round: ${LOADS:-}"
	echo "- command: \`$INVOCATION\` (in the repository root)"
	echo "- ignetcd: built from the $SOURCE"
	echo "- etcd: $("$ETCD_BIN" --version | head -1); benchmark tool: $BENCHMARK_VERSION"
	echo "- targets run side by side; each workload ran against each target in turn, in the order of the table;" \
		"$ROUNDS round(s) of all workloads, each cell is the median over the rounds (every run's report is in the logs)"
	echo "- per workload: $TOTAL requests, $CLIENTS clients over $CONNS gRPC connections, $VAL_SIZE B values;" \
		"watch-latency: $WATCH_PUTS puts at $WATCH_RATE/s, 10 streams x 10 watchers (10 clients)"
}

report() {
	echo "### Results"
	echo
	machine
	echo
	table
	echo
	echo "p50/p99 are the benchmark tool's latency percentiles (for watch-latency: put-to-event latency over all 100" \
		"watchers; its req/s is events/s, fixed by the put rate, so no ratio). Ratios are to the \`etcd\` row" \
		"(fsync on): the first is the ratio of the medians, the second the median of each round's ratio to etcd's" \
		"cell of the same round (run first, a minute or two earlier); on a machine whose speed drifts, the second" \
		"compares cells that ran close together. \`etcd-nofsync\`, \`ignetcd-mem\` and the ignitetest double are not durable." \
		"Server CPU is the user+system CPU time of every process of the target (etcd; the ignetcd node(s) and" \
		"the ignitetest double, or the Ignite processes given in IGNITE_PIDS) over the run, divided by the" \
		"requests; the benchmark tool's own CPU is not in it: it is the next column, the same work for a target" \
		"in every round, so a cell where it is higher than in that target's other rounds or runs ran while this" \
		"machine was slow. Server alloc is the Go heap bytes the etcd or ignetcd process(es) allocated per request" \
		"(go_memstats_alloc_bytes_total from their /metrics; the double's are not counted): unlike CPU time it" \
		"does not depend on the machine's speed, and it drives the garbage collector's share of the CPU.${IGNETCD_TEST_IGNITE:+ Ignite: the cluster at $IGNETCD_TEST_IGNITE${IGNITE_PIDS:+ (server pids $IGNITE_PIDS on this machine)}, not the double.}"
	if ((${#MEMROWS[@]} > 0)); then
		echo
		echo "Memory per key ($MEM_KEYS keys \`/bench/mem/%08d\`, $MEM_VAL B values, loaded 100 puts per Txn by 8 writers):"
		echo
		echo "| server | keys | load keys/s | RSS growth B/key | live Go heap growth B/key (after GC) |"
		echo "|---|---:|---:|---:|---:|"
		printf '%s\n' "${MEMROWS[@]}"
	fi
}

write_doc() {
	local out=$1 body=$2 tmp
	mkdir -p "$(dirname "$out")"
	if [[ ! -f $out ]] || ! grep -q '<!-- bench:begin -->' "$out"; then
		{
			echo "# Performance"
			echo
			echo "Measured with \`bench/run.sh\` (see its header for what it runs and the knobs). Everything between the"
			echo "markers below is rewritten by the script; notes outside them are kept."
			echo
			echo "<!-- bench:begin -->"
			echo "<!-- bench:end -->"
		} >"$out"
	fi
	tmp=$(mktemp)
	BENCH_BODY=$body awk '
		/<!-- bench:begin -->/ { print; print ENVIRON["BENCH_BODY"]; skip = 1; next }
		/<!-- bench:end -->/ { skip = 0 }
		!skip { print }' "$out" >"$tmp" && mv "$tmp" "$out"
	log "wrote $out"
}

# ---------------------------------------------------------------- main
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M')
log "work dir $WORK; load average $LOAD_BEFORE"
build_tools
run_all
if [[ $MEM == 1 ]]; then measure_memory; fi
BODY=$(report)
echo
echo "$BODY"
if [[ $OUT != - ]]; then write_doc "$OUT" "$BODY"; fi
