# Network probes run inside a workspace by the e2e tests. A guest can put
# anything on the wire, so the tests craft what an attacker in a VM would.
import errno
import select
import socket
import struct
import sys
import time


def mac(s):
    return bytes.fromhex(s.replace(":", ""))


def csum(b):
    s = 0
    for i in range(0, len(b), 2):
        s += (b[i] << 8) + (b[i + 1] if i + 1 < len(b) else 0)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp_frame(dst_mac, src_mac, src, dst, dport, payload):
    u = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return mac(dst_mac) + mac(src_mac) + b"\x08\x00" + ip + u


def arp_frame(eth_dst, eth_src, op, sha, spa, tha, tpa):
    p = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac(sha) + socket.inet_aton(spa) \
        + mac(tha) + socket.inet_aton(tpa)
    return mac(eth_dst) + mac(eth_src) + b"\x08\x06" + p


def raw():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind(("eth0", 0))
    return s


def own():
    with open("/sys/class/net/eth0/address") as f:
        return f.read().strip()


def spoof(gw_mac, own_ip, other_ip, dst, dport):
    """UDP frames to dst:dport: with our own addresses, then spoofed ones."""
    s = raw()
    m = own()
    for marker, src_mac, src in (("own", m, own_ip), ("spoofed-ip", m, other_ip),
                                 ("spoofed-mac", "02:00:00:de:ad:01", own_ip)):
        s.send(udp_frame(gw_mac, src_mac, src, dst, int(dport), marker.encode()))
        time.sleep(0.05)


def arp_claim(claimed_ip, target_ip):
    """An ARP request that says claimed_ip is at our MAC."""
    m = own()
    raw().send(arp_frame("ff:ff:ff:ff:ff:ff", m, 1, m, claimed_ip, "00:00:00:00:00:00", target_ip))


def arp_ask(own_ip, ip, secs):
    """Ask who has ip; print the MACs that answered for it."""
    s = raw()
    m = own()
    s.send(arp_frame("ff:ff:ff:ff:ff:ff", m, 1, m, own_ip, "00:00:00:00:00:00", ip))
    s.settimeout(0.1)
    end = time.time() + float(secs)
    seen = []
    while time.time() < end:
        try:
            f = s.recv(128)
        except socket.timeout:
            continue
        if len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02" \
                and socket.inet_ntoa(f[28:32]) == ip:
            seen.append(f[22:28].hex(":"))
    print(" ".join(seen))


def echo_server(port):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", int(port)))
    ls.listen(8)
    while True:
        c, _ = ls.accept()
        while True:
            b = c.recv(64)
            if not b:
                break
            c.sendall(b)
        c.close()


def keep_talking(host, port, log):
    """One connection, a round trip every 0.3 s, each logged ok or fail."""
    c = socket.create_connection((host, int(port)), timeout=5)
    with open(log, "a", buffering=1) as out:
        for _ in range(400):
            try:
                c.settimeout(1)
                c.sendall(b"x")
                out.write("ok\n" if c.recv(1) == b"x" else "fail\n")
            except OSError:
                out.write("fail\n")
            time.sleep(0.3)


def wait_port(port):
    for _ in range(150):
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("port %s never opened" % port)


def tcp(host, port, secs):
    try:
        socket.create_connection((host, int(port)), timeout=float(secs)).close()
        print("open")
    except OSError as e:
        print("closed", e)


def dns_query(server, secs):
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x04test\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(float(secs))
    s.sendto(q, (server, 53))
    try:
        s.recv(512)
        print("answered")
    except OSError:
        print("no answer")


def scan(host, first, last, batch):
    """TCP connect scan: batch non-blocking connects at a time, each given
    3 s; print the ports that accepted."""
    found = []
    ports = range(int(first), int(last) + 1)
    for i in range(0, len(ports), int(batch)):
        ep = select.epoll()
        pending = {}
        for p in ports[i:i + int(batch)]:
            s = socket.socket()
            s.setblocking(False)
            if s.connect_ex((host, p)) not in (0, errno.EINPROGRESS):
                s.close()
                continue
            ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP)
            pending[s.fileno()] = (p, s)
        end = time.time() + 3
        while pending and time.time() < end:
            for fd, _ in ep.poll(0.5):
                p, s = pending.pop(fd)
                ep.unregister(fd)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    found.append(p)
                s.close()
        for _, s in pending.values():
            s.close()
        ep.close()
    print(" ".join(str(p) for p in sorted(found)))


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
