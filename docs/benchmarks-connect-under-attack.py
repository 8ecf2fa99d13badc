"""Connect time while slow handshakes run from the same address (docs/benchmarks.md).

python3 benchmarks-connect-under-attack.py DEV_DIR PORT ATTACKERS: against `tresor dev --dir
DEV_DIR --listen 127.0.0.1:PORT`, ATTACKERS threads each keep a slow, partial ClientHello open
(re-opened when dropped); after 12 s, 200 sequential connections with the dev client
certificate each GET /v1/sys/health, timed from connect to the end of the answer.
"""
import socket, ssl, threading, time, sys, statistics
d, host, port, attack = sys.argv[1], "127.0.0.1", int(sys.argv[2]), int(sys.argv[3])
stop = False
def slow():
    while not stop:
        try:
            s = socket.create_connection((host, port), timeout=30)
            s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]))
            s.settimeout(15)
            try: s.recv(64)
            except Exception: pass
            s.close()
        except Exception:
            time.sleep(0.05)
threads = [threading.Thread(target=slow, daemon=True) for _ in range(attack)]
for t in threads: t.start()
time.sleep(12 if attack else 0)  # past handshake_timeout (10 s): the first slow ones timed out
ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
ctx.load_cert_chain(f"{d}/client.pem", f"{d}/client-key.pem")
times = []
for i in range(200):
    t0 = time.perf_counter()
    s = socket.create_connection((host, port), timeout=60)
    ss = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    ss.sendall(b"GET /v1/sys/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    data = b""
    while True:
        b = ss.recv(4096)
        if not b: break
        data += b
    times.append(time.perf_counter() - t0)
    assert data.startswith(b"HTTP/1.1 200"), data[:50]
    ss.close()
stop = True
times.sort()
print(f"attackers={attack} n={len(times)} p50={statistics.median(times)*1000:.1f}ms p95={times[int(0.95*len(times))-1]*1000:.1f}ms max={times[-1]*1000:.1f}ms")
