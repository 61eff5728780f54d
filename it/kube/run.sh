#!/usr/bin/env bash
# it/kube/run.sh — a real kube-apiserver on ignetcd, exercised with kubectl; then the same
# steps on a real etcd for comparison. Not part of CI (the first build of kube-apiserver
# and kubectl from the Go module proxy takes 10-20 minutes on two cores).
#
#   it/kube/run.sh [ignetcd|etcd|both]      (default: both)
#
# Builds (cached in ${IGNETCD_BIN_CACHE:-~/.cache/ignetcd/bin}):
#   kube-apiserver, kubectl  k8s.io/kubernetes $KUBE_VERSION (default v1.34.4), built in a
#                            throwaway module that requires k8s.io/kubernetes and replaces each
#                            staging module (k8s.io/api, ...) by its v0.x release, since the
#                            k8s.io/kubernetes module points them at ./staging, absent from its zip
#   etcd                     3.6.16, by it/etcdbin (go test -run TestEtcdbinBuildAndVersion ./it/etcdbin)
#   ignetcd, ignitedouble    from this tree
# ignetcd runs on the Ignite engine against it/kube/ignitedouble (the ignitetest double as a
# process), so that ignetcd can be restarted while its data stays, as with a real Ignite.
# Everything listens on 127.0.0.1; certificates are throwaway (openssl), in a temp dir.
# Prints one "PASS|FAIL <backend> <step>" line per step and a summary; exits 1 if any failed.
set -u -o pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
CACHE=${IGNETCD_BIN_CACHE:-$HOME/.cache/ignetcd/bin}
KUBEBIN=$CACHE/kube-$KUBE_VERSION
ETCD=${IGNETCD_ETCD_BIN:-$CACHE/v3.6.16/etcd}
EVENT_TTL=${EVENT_TTL:-10}
WORK=$(mktemp -d /tmp/ignetcd-kube.XXXXXX)
PIDS=()
PASSED=0
FAILED=0

log() { echo "--- $*" >&2; }

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	if [ "$FAILED" -eq 0 ] && [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else echo "logs and data kept in $WORK" >&2; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- builds

build_kube() {
	if [ -x "$KUBEBIN/kube-apiserver" ] && [ -x "$KUBEBIN/kubectl" ]; then return 0; fi
	log "building kube-apiserver and kubectl $KUBE_VERSION from the Go module proxy (slow, once)"
	local mod staging dir
	mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p') || return 1
	[ -n "$mod" ] || { echo "cannot download k8s.io/kubernetes@$KUBE_VERSION" >&2; return 1; }
	staging="v0.${KUBE_VERSION#v1.}"
	dir=$(mktemp -d /tmp/kubebuild.XXXXXX)
	printf 'module kubebuild\n\ngo 1.24\n\nrequire k8s.io/kubernetes %s\n' "$KUBE_VERSION" >"$dir/go.mod"
	# Every "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.N.M".
	local args=()
	for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$mod"); do
		args+=("-replace=$m=$m@$staging")
	done
	(cd "$dir" && go mod edit "${args[@]}") || return 1
	mkdir -p "$KUBEBIN"
	local minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	local ldflags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1"
	ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
	ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
	(cd "$dir" && GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$KUBEBIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver &&
		GOFLAGS=-mod=mod go build -ldflags "$ldflags" -o "$KUBEBIN/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl) || return 1
	mv "$KUBEBIN/kube-apiserver.tmp" "$KUBEBIN/kube-apiserver"
	mv "$KUBEBIN/kubectl.tmp" "$KUBEBIN/kubectl"
	rm -rf "$dir"
}

build_local() {
	log "building ignetcd and ignitedouble from $REPO"
	(cd "$REPO" && go build -o "$WORK/ignetcd" ./cmd/ignetcd) || return 1
	(cd "$REPO/it/kube" && GOFLAGS=-mod=mod go build -o "$WORK/ignitedouble" ./ignitedouble) || return 1
	if [ ! -x "$ETCD" ]; then
		log "building etcd 3.6.16 (it/etcdbin)"
		(cd "$REPO" && go test -count=1 -run TestEtcdbinBuildAndVersion ./it/etcdbin) >/dev/null || return 1
	fi
}

# ---------------------------------------------------------------- certificates

make_certs() {
	local d=$WORK/pki
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=throwaway-ca
		openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc\n' >san.ext
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile san.ext
		openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin"
		openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2
		openssl genrsa -out sa.key 2048
		openssl rsa -in sa.key -pubout -out sa.pub
	) >"$WORK/openssl.log" 2>&1
}

write_kubeconfig() { # port
	cat >"$WORK/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:$1", certificate-authority: "$WORK/pki/ca.crt"}
users:
- name: admin
  user: {client-certificate: "$WORK/pki/admin.crt", client-key: "$WORK/pki/admin.key"}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
EOF
}

# ---------------------------------------------------------------- processes

ETCD_PORT=${ETCD_PORT:-32379}
PEER_PORT=${PEER_PORT:-32380}
API_PORT=${API_PORT:-36443}
BACKEND_PID=
DOUBLE_ADDR=

start_double() {
	"$WORK/ignitedouble" >"$WORK/double.addr" 2>"$WORK/double.log" &
	PIDS+=($!)
	for _ in $(seq 50); do
		DOUBLE_ADDR=$(head -1 "$WORK/double.addr" 2>/dev/null)
		[ -n "$DOUBLE_ADDR" ] && return 0
		sleep 0.1
	done
	return 1
}

start_backend() { # ignetcd|etcd
	case $1 in
	ignetcd)
		"$WORK/ignetcd" --name kube --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
			--ignite-endpoints "$DOUBLE_ADDR" --log-level warn >>"$WORK/ignetcd.log" 2>&1 &
		;;
	etcd)
		"$ETCD" --name default --data-dir "$WORK/etcd-data" --log-level error \
			--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
			--listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
			--initial-cluster "default=http://127.0.0.1:$PEER_PORT" >>"$WORK/etcd.log" 2>&1 &
		;;
	esac
	BACKEND_PID=$!
	PIDS+=("$BACKEND_PID")
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

stop_backend() {
	kill "$BACKEND_PID" 2>/dev/null
	wait "$BACKEND_PID" 2>/dev/null
}

start_apiserver() {
	"$KUBEBIN/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
		--tls-cert-file="$WORK/pki/apiserver.crt" --tls-private-key-file="$WORK/pki/apiserver.key" \
		--client-ca-file="$WORK/pki/ca.crt" --authorization-mode=RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$WORK/pki/sa.pub" --service-account-signing-key-file="$WORK/pki/sa.key" \
		--service-cluster-ip-range=10.0.0.0/24 \
		--event-ttl="${EVENT_TTL}s" --etcd-compaction-interval=1m \
		--cert-dir="$WORK/apiserver-certs" --v=1 >"$WORK/apiserver.log" 2>&1 &
	APISERVER_PID=$!
	PIDS+=("$APISERVER_PID")
}

# ---------------------------------------------------------------- steps

k() { "$KUBEBIN/kubectl" --kubeconfig "$WORK/kubeconfig" --request-timeout=20s "$@"; }

BACKEND=
step() { # name command...
	local name=$1
	shift
	# runs in this shell (steps start processes and set variables); output to a file
	if "$@" >"$WORK/step.out" 2>&1; then
		echo "PASS $BACKEND $name$(sed -n 's/^note: / (/p' "$WORK/step.out" | tail -1 | sed 's/$/)/')"
		PASSED=$((PASSED + 1))
	else
		echo "FAIL $BACKEND $name"
		tail -5 "$WORK/step.out" | sed 's/^/       /'
		FAILED=$((FAILED + 1))
	fi
}

eventually() { # seconds command...: retry every 0.5 s until it succeeds
	local until=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ $SECONDS -ge $until ] && return 1
		sleep 0.5
	done
}

ready() { [ "$(k get --raw=/readyz 2>/dev/null)" = ok ]; }
wait_ready() { eventually "${1:-120}" ready || { k get --raw='/readyz?verbose' 2>&1 | grep -v '\[+\]'; return 1; }; }

s_namespaces() {
	k create namespace demo && k create namespace demo2 &&
		[ "$(k get ns demo -o jsonpath='{.status.phase}')" = Active ] &&
		k get ns default kube-system kube-public >/dev/null &&
		k delete namespace demo2 --wait=false &&
		# no namespace controller runs (no kube-controller-manager): the namespace stays Terminating
		[ "$(k get ns demo2 -o jsonpath='{.status.phase}')" = Terminating ]
}

s_watch_start() {
	k get configmaps -n demo -w --output-watch-events >"$WORK/watch-$BACKEND.out" 2>&1 &
	WATCH_PID=$!
	PIDS+=("$WATCH_PID")
	sleep 2
	kill -0 "$WATCH_PID"
}

s_configmaps() {
	k create configmap cm1 -n demo --from-literal=a=1 &&
		k patch configmap cm1 -n demo -p '{"data":{"a":"2"}}' &&
		[ "$(k get configmap cm1 -n demo -o jsonpath='{.data.a}')" = 2 ] &&
		k create configmap cm1 -n demo --from-literal=a=3 --dry-run=client -o yaml | k replace -f - &&
		[ "$(k get configmap cm1 -n demo -o jsonpath='{.data.a}')" = 3 ] &&
		k delete configmap cm1 -n demo &&
		! k get configmap cm1 -n demo 2>/dev/null
}

s_conflict() { # an update with a stale resourceVersion gets 409 Conflict
	local old out
	k create configmap cm2 -n demo --from-literal=a=1 >/dev/null || return 1
	old=$(k get configmap cm2 -n demo -o json) || return 1
	k patch configmap cm2 -n demo -p '{"data":{"a":"2"}}' >/dev/null || return 1
	out=$(echo "$old" | k replace -f - 2>&1) && { echo "stale replace succeeded: $out"; return 1; }
	echo "$out"
	echo "$out" | grep -q "the object has been modified"
}

s_secrets() {
	k create secret generic s1 -n demo --from-literal=password=one &&
		k patch secret s1 -n demo -p '{"stringData":{"password":"two"}}' &&
		[ "$(k get secret s1 -n demo -o jsonpath='{.data.password}' | base64 -d)" = two ] &&
		k delete secret s1 -n demo &&
		! k get secret s1 -n demo 2>/dev/null
}

s_deployments() {
	k create deployment web -n demo --image=registry.k8s.io/pause:3.10 &&
		k scale deployment web -n demo --replicas=3 &&
		[ "$(k get deployment web -n demo -o jsonpath='{.spec.replicas}')" = 3 ] &&
		k set image deployment/web -n demo pause=registry.k8s.io/pause:3.9 &&
		[ "$(k get deployment web -n demo -o jsonpath='{.metadata.generation}')" -ge 3 ] &&
		k delete deployment web -n demo &&
		! k get deployment web -n demo 2>/dev/null
}

watch_saw() { # the -w output shows ADDED, MODIFIED (x2), DELETED of cm1, in order
	local seq
	seq=$(awk '$2 == "cm1" {print $1}' "$WORK/watch-$BACKEND.out" | tr '\n' ' ')
	[ "$seq" = "ADDED MODIFIED MODIFIED DELETED " ] || { echo "watch saw: '$seq'"; cat "$WORK/watch-$BACKEND.out"; return 1; }
}

s_chunked_list() {
	local f=$WORK/chunk-$BACKEND.yaml
	: >"$f"
	for i in $(seq -w 1 30); do
		printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: chunk-%s, namespace: demo}\ndata: {i: "%s"}\n' "$i" "$i" >>"$f"
	done
	k create -f "$f" >/dev/null || return 1
	local n pages
	n=$(k get configmaps -n demo -l '!nonexistent' --chunk-size=7 -o name -v=6 2>"$WORK/chunk-$BACKEND.log" | grep -c '^configmap/chunk-')
	pages=$(grep -c 'limit=7' "$WORK/chunk-$BACKEND.log")
	[ "$n" = 30 ] && [ "$pages" -ge 5 ] || { echo "listed $n of 30 configmaps in $pages pages of 7"; return 1; }
	# the pages carry continue tokens
	grep -q 'continue=' "$WORK/chunk-$BACKEND.log"
}

s_event_ttl() {
	k create -f - <<EOF || return 1
apiVersion: v1
kind: Event
metadata: {name: ttl-test, namespace: demo}
involvedObject: {kind: ConfigMap, name: chunk-01, namespace: demo}
reason: Testing
message: expires after --event-ttl=${EVENT_TTL}s
type: Normal
EOF
	k get event ttl-test -n demo >/dev/null || return 1
	local t0=$SECONDS
	eventually $((EVENT_TTL + 60)) sh -c "! '$KUBEBIN/kubectl' --kubeconfig '$WORK/kubeconfig' get event ttl-test -n demo >/dev/null 2>&1" ||
		{ echo "event still there after $((SECONDS - t0)) s"; return 1; }
	echo "note: gone after $((SECONDS - t0)) s"
}

s_restart() {
	stop_backend
	sleep 2
	start_backend "$BACKEND" || { echo "backend did not restart"; return 1; }
	local t0=$SECONDS
	wait_ready 90 || return 1
	echo "note: apiserver ready again after $((SECONDS - t0)) s"
	[ "$(k get configmap chunk-17 -n demo -o jsonpath='{.data.i}')" = 17 ] || { echo "data lost"; return 1; }
	k create configmap after-restart -n demo --from-literal=a=1 >/dev/null || return 1
	kill -0 "$APISERVER_PID"
}

s_watch_across_restart() {
	# The kubectl watch opened before the restart (served by the apiserver's watch cache) sees a
	# change made after it; or, if the apiserver ended that watch (as it does when its own etcd
	# watch fails: a client then re-lists and re-watches), a new watch sees the next change.
	local t0=$SECONDS
	if eventually 30 grep -q 'ADDED.*after-restart' "$WORK/watch-$BACKEND.out"; then
		echo "note: the watch opened before the restart saw it after $((SECONDS - t0)) s"
		return 0
	fi
	kill -0 "$WATCH_PID" 2>/dev/null && { echo "the watch opened before the restart is open but missed the change"; return 1; }
	k get configmaps -n demo -w --output-watch-events >"$WORK/watch2-$BACKEND.out" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	sleep 2
	k create configmap after-rewatch -n demo --from-literal=a=1 >/dev/null || return 1
	eventually 30 grep -q 'ADDED.*after-rewatch' "$WORK/watch2-$BACKEND.out" || { echo "a new watch did not see the next change"; return 1; }
	kill "$pid" 2>/dev/null
	echo "note: the apiserver ended the watch opened before the restart; a new watch works"
}

s_backend_log_clean() { # the backend neither panicked nor crashed, across both of its runs
	! grep -a -B2 -A12 '^panic:' "$WORK/$BACKEND.log"
}

run_backend() { # ignetcd|etcd
	BACKEND=$1
	log "$BACKEND: starting"
	if [ "$BACKEND" = ignetcd ] && [ -z "$DOUBLE_ADDR" ]; then
		start_double || { echo "FAIL $BACKEND start the Ignite double"; FAILED=$((FAILED + 1)); return; }
	fi
	step "start-backend" start_backend "$BACKEND"
	start_apiserver
	step "apiserver-ready" wait_ready 180
	step "namespaces" s_namespaces
	step "watch-start" s_watch_start
	step "configmaps-crud" s_configmaps
	step "update-conflict-409" s_conflict
	step "secrets-crud" s_secrets
	step "deployments-crud" s_deployments
	step "watch-saw-changes" eventually 10 watch_saw
	step "list-chunk-size" s_chunked_list
	step "event-ttl-expires" s_event_ttl
	step "restart-backend" s_restart
	step "watch-across-restart" s_watch_across_restart
	log "$BACKEND: stopping"
	kill "$WATCH_PID" "$APISERVER_PID" 2>/dev/null
	wait "$APISERVER_PID" 2>/dev/null
	stop_backend
	step "backend-log-clean" s_backend_log_clean
}

main() {
	local which=${1:-both}
	command -v openssl >/dev/null || { echo "openssl is needed for the throwaway certificates" >&2; exit 2; }
	build_kube || { echo "building kube-apiserver/kubectl failed" >&2; exit 2; }
	build_local || { echo "building ignetcd/etcd failed" >&2; exit 2; }
	make_certs || { echo "openssl failed, see $WORK/openssl.log" >&2; exit 2; }
	write_kubeconfig "$API_PORT"
	case $which in
	ignetcd | etcd) run_backend "$which" ;;
	both) run_backend ignetcd && run_backend etcd ;;
	*) echo "usage: $0 [ignetcd|etcd|both]" >&2; exit 2 ;;
	esac
	echo "kube on ignetcd/etcd: $PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

main "$@"
