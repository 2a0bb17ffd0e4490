#!/bin/sh
# make demo: build an appliance, boot it under QEMU, talk to it, push an
# image and see it serve, power it off.
# Everything it makes stays under out/demo (the cloud config too).
set -eu
cd "$(dirname "$0")/.."
OUT=$PWD/out
DEMO=$OUT/demo
PORT=${DEMO_PORT:-7707}
WEB=${DEMO_WEB_PORT:-18080} # 127.0.0.1:WEB reaches the container's port 8080
export ALLIUM_CONFIG="$DEMO/config"
mkdir -p "$DEMO"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Build an appliance named 'demo' (kernel, initramfs, data disk, keys, alias)"
run "$OUT/mkimage" appliance --name demo -o "$DEMO/node" --port "$PORT" --data-size 256M

# --isolate: the guest reaches nothing but the forwarded port, so its tor
# stays off the real Tor network (drop it to see the onion come up).
step "Boot it under QEMU (TCG) in the background, isolated; console in $DEMO/serial.log"
"$OUT/mkimage" qemu "$DEMO/node" --port "$PORT" --forward "$WEB:8080" --isolate --dry-run
rm -f "$DEMO/serial.log"
"$OUT/mkimage" qemu "$DEMO/node" --port "$PORT" --forward "$WEB:8080" --isolate --serial "$DEMO/serial.log" \
	</dev/null >"$DEMO/qemu.log" 2>&1 &
QEMU=$!
trap 'kill $QEMU 2>/dev/null || true' EXIT INT TERM

step "Wait for the node's API (about 6 s under TCG)"
start=$(date +%s)
until "$OUT/cloud" info demo --timeout 2s >/dev/null 2>&1; do
	if ! kill -0 $QEMU 2>/dev/null; then
		echo "QEMU exited; its output and the console follow:" >&2
		cat "$DEMO/qemu.log" "$DEMO/serial.log" >&2 || true
		exit 1
	fi
	if [ $(( $(date +%s) - start )) -gt 120 ]; then
		echo "the node did not answer within 120 s; console:" >&2
		tail -40 "$DEMO/serial.log" >&2 || true
		exit 1
	fi
	sleep 0.5
done
echo "answering after $(( $(date +%s) - start )) s"

step "Ask it who it is"
run "$OUT/cloud" info demo

step "Make a sample image: a static busybox serving a page on port 8080"
rm -rf "$DEMO/site"
mkdir -p "$DEMO/site/bin" "$DEMO/site/www"
cp /bin/busybox "$DEMO/site/bin/busybox"
echo "<h1>Hello from an Allium container</h1>" >"$DEMO/site/www/index.html"
run "$OUT/mkimage" pack "$DEMO/site" -o "$DEMO/hello.txz" \
	--cmd "/bin/busybox httpd -f -v -p 8080 -h /www" --port 8080 --ready-tcp 8080

step "Push it, run it, and see it running"
run "$OUT/cloud" start demo "$DEMO/hello.txz"
run "$OUT/cloud" ps demo

step "Fetch its page through the forwarded port"
printf '$ busybox wget -qO- http://127.0.0.1:%s/\n' "$WEB"
busybox wget -qO- "http://127.0.0.1:$WEB/"
run "$OUT/cloud" logs demo hello

step "Power it off"
run "$OUT/cloud" poweroff demo
wait $QEMU || true
trap - EXIT INT TERM
echo "QEMU has exited. The console of this boot:"
grep -E 'ALLIUM_BOOT_OK|shutdown:|Power down' "$DEMO/serial.log" || true
printf '\nTry it yourself:\n  export ALLIUM_CONFIG=%s\n  %s/mkimage qemu %s/node &\n  %s/cloud info demo\n' \
	"$ALLIUM_CONFIG" "$OUT" "$DEMO" "$OUT"
