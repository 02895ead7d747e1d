#!/usr/bin/env python3
"""Where an event's time goes at a busy site: reads `perf script` output of a
`compare --latency --systems relay` run and breaks each event's path down (the publisher's
write, the relay's read of it, its writes to the sessions, the receivers' reads), with the
scheduler's wake-up delays of each process.

    target/release/compare --latency --systems relay --latency-subscribers 100 --rate 1000 \
        --seconds 12 &
    sleep 5
    perf record -o perf.data -a -e sched:sched_switch -e sched:sched_wakeup \
        -e syscalls:sys_enter_writev -e syscalls:sys_enter_write -e syscalls:sys_enter_sendto \
        -e syscalls:sys_enter_recvfrom -e syscalls:sys_exit_recvfrom \
        -e syscalls:sys_enter_read -e syscalls:sys_exit_read -- sleep 3
    perf script -i perf.data -F comm,pid,tid,cpu,time,event,trace > perf.txt
    python3 benches/trace/busy_site.py perf.txt RELAY_PID COMPARE_PID
"""
import re, sys, statistics
from collections import defaultdict

line_re = re.compile(r'^\s*(\S+)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)$')
events = []
for line in open(sys.argv[1], errors='replace'):
    m = line_re.match(line)
    if not m:
        continue
    comm, pid, tid, cpu, t, ev, rest = m.groups()
    events.append((float(t), comm, int(pid), int(tid), int(cpu), ev, rest))
events.sort(key=lambda e: e[0])
relay_pid = int(sys.argv[2]); compare_pid = int(sys.argv[3])

def q(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))] if v else float('nan')

# syscall enter args by tid
pending = {}
reads = defaultdict(list)    # (pid, fd) -> [(t_exit, bytes)]
writes = defaultdict(list)   # pid -> [(t_enter, fd, name)]
for t, comm, pid, tid, cpu, ev, rest in events:
    if ev.startswith('syscalls:sys_enter_'):
        name = ev[len('syscalls:sys_enter_'):]
        fd = re.search(r'fd: (0x[0-9a-f]+)', rest)
        fd = int(fd.group(1), 16) if fd else -1
        pending[tid] = (name, fd, t)
        if name in ('writev', 'write', 'sendto', 'sendmsg'):
            writes[pid].append((t, fd, name))
    elif ev.startswith('syscalls:sys_exit_'):
        name = ev[len('syscalls:sys_exit_'):]
        p = pending.pop(tid, None)
        ret = re.search(r'(0x[0-9a-f]+|-?\d+)\s*$', rest)
        ret = int(ret.group(1), 0) if ret else 0
        if ret >= 1 << 63: ret -= 1 << 64
        if p and p[0] == name and name in ('read', 'recvfrom', 'recvmsg') and ret > 0:
            reads[(pid, p[1])].append((t, ret))

# the relay's link: the fd it reads most often
link_fd = max((k for k in reads if k[0] == relay_pid), key=lambda k: len(reads[k]))[1]
link_reads = [t for t, _ in reads[(relay_pid, link_fd)]]
# the publisher: compare's writes to its switch socket: the compare fd written ~ once per ms
cw = defaultdict(list)
for t, fd, name in writes[compare_pid]:
    cw[fd].append(t)
pub_fd = max(cw, key=lambda fd: len(cw[fd]))
pub_writes = cw[pub_fd]
# compare's receiver reads, all fds but the publisher's
recv = sorted(t for (pid, fd), v in reads.items() if pid == compare_pid and fd != pub_fd for t, _ in v)
rw = sorted((t, fd) for t, fd, name in writes[relay_pid] if fd != link_fd)

import bisect
rows = []
rw_t = [t for t, _ in rw]
for i, tp in enumerate(pub_writes[:-1]):
    nxt = pub_writes[i + 1]
    j = bisect.bisect_left(link_reads, tp)
    if j >= len(link_reads) or link_reads[j] >= nxt:
        continue
    tr = link_reads[j]
    a = bisect.bisect_left(rw_t, tr); b = bisect.bisect_left(rw_t, nxt)
    ws = rw_t[a:b]
    c = bisect.bisect_left(recv, tr); d = bisect.bisect_left(recv, nxt)
    rs = recv[c:d]
    if len(ws) < 90 or len(rs) < 50:
        continue
    rows.append(dict(wake=tr - tp, first=ws[0] - tr, last=ws[-1] - tr, n=len(ws),
                     recv_last=rs[-1] - tp, recv_first=rs[0] - tp, nrecv=len(rs)))

print(f"{len(rows)} events traced (relay pid {relay_pid}, link fd {link_fd}; compare pid {compare_pid}, publisher fd {pub_fd})")
def show(key, label):
    v = [r[key] * 1e6 for r in rows]
    print(f"{label:<52} p50 {q(v,.5):7.0f}  p90 {q(v,.9):7.0f}  p99 {q(v,.99):7.0f}  max {max(v):7.0f} µs")
show('wake', 'publisher write -> relay reads it')
show('first', 'relay read -> its first session write')
show('last', 'relay read -> its last session write')
show('recv_first', 'publisher write -> first receiver read')
show('recv_last', 'publisher write -> last receiver read')
print('session writes per event p50', q([r['n'] for r in rows], .5))

# scheduling: wake-up to run delay per process
wakes = {}
delay = defaultdict(list)
preempt = defaultdict(int)
switches_in = defaultdict(int)
proc_of = {tid: pid for t, comm, pid, tid, cpu, ev, rest in events}
name = {relay_pid: 'relay', compare_pid: 'compare'}
for t, comm, pid, tid, cpu, ev, rest in events:
    if ev == 'sched:sched_wakeup' or ev == 'sched:sched_waking':
        m = re.search(r'pid=(\d+)', rest)
        if m and ev == 'sched:sched_wakeup': wakes[int(m.group(1))] = t
    elif ev == 'sched:sched_switch':
        m = re.search(r'prev_comm=(.*?) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)', rest)
        if not m: continue
        prev_comm, prev_tid, state, next_comm, next_tid = m.groups()
        who = name.get(proc_of.get(int(prev_tid)), 'other')
        if state.startswith('R'):
            preempt[who] += 1
        nt = int(next_tid)
        if nt in wakes:
            delay[name.get(proc_of.get(nt), 'other')].append(t - wakes.pop(nt))
for comm, v in sorted(delay.items(), key=lambda kv: -len(kv[1]))[:8]:
    v = [x * 1e6 for x in v]
    print(f"wake-up -> on a CPU, {comm:<16} n {len(v):7}  p50 {q(v,.5):6.0f}  p99 {q(v,.99):6.0f}  p99.9 {q(v,.999):6.0f}  max {max(v):7.0f} µs; preempted while runnable {preempt[comm]}")
