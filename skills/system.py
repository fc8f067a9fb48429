"""System: how the machine is doing (CPU, memory, disks, uptime, busiest processes)."""

from __future__ import annotations

import os
import time
from typing import Literal

from copa.skills import skill
from copa.skills.host import system

# Named system files only (what psutil reads for these figures), not /proc wholesale; /proc is the
# worker's own anyway (a PID namespace). The machine's processes come from copa through the
# 'processes' permission, never from other processes' /proc folders.
PERMISSIONS = ["fs.read:/proc/stat", "fs.read:/proc/meminfo", "fs.read:/proc/vmstat", "fs.read:/proc/loadavg",
               "fs.read:/proc/uptime", "fs.read:/proc/cpuinfo", "fs.read:/proc/filesystems", "fs.read:/proc/self",
               "fs.read:/sys/devices/system/cpu", "fs.read:/sys/block", "fs.read:/sys/class/block"]
_PSEUDO_FS = {"proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "overlay", "squashfs", "nsfs",
              "securityfs", "debugfs", "tracefs", "mqueue", "pstore", "bpf", "autofs", "fusectl", "configfs", "ramfs"}


def _gb(n: float) -> float:
    return round(n / 2**30, 2)


@skill(permissions=PERMISSIONS)
def system_status() -> dict:
    """CPU use and load, memory and swap, disk space of each mounted disk, and uptime."""
    import psutil

    vm, sw = psutil.virtual_memory(), psutil.swap_memory()
    disks = []
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _PSEUDO_FS:
            continue
        try:
            u = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        disks.append({"mount": part.mountpoint, "fstype": part.fstype, "total_gb": _gb(u.total),
                      "used_gb": _gb(u.used), "free_gb": _gb(u.free), "percent": u.percent})
    if not disks:
        u = psutil.disk_usage("/")
        disks.append({"mount": "/", "fstype": "", "total_gb": _gb(u.total), "used_gb": _gb(u.used),
                      "free_gb": _gb(u.free), "percent": u.percent})
    boot = psutil.boot_time()
    up = time.time() - boot
    return {
        "cpu": {"percent": psutil.cpu_percent(interval=0.2), "cores": psutil.cpu_count() or 1,
                "load_average": [round(x, 2) for x in os.getloadavg()]},
        "memory": {"total_gb": _gb(vm.total), "available_gb": _gb(vm.available), "percent": vm.percent},
        "swap": {"total_gb": _gb(sw.total), "used_gb": _gb(sw.used), "percent": sw.percent},
        "disks": disks,
        "uptime": {"seconds": int(up), "text": _duration(up),
                   "since": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(boot))},
    }


@skill(permissions=["processes"])
def top_processes(sort_by: Literal["cpu", "memory"] = "cpu", limit: int = 10) -> list[dict]:
    """The processes using the most CPU or memory right now.

    Args:
        sort_by: "cpu" (measured over 0.3 s) or "memory".
        limit: how many processes to return.
    """
    rows = system.processes()
    key = "cpu_percent" if sort_by == "cpu" else "memory_mb"
    rows.sort(key=lambda r: r[key], reverse=True)
    return rows[: max(limit, 1)]


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, _ = divmod(s, 60)
    return (f"{d} d " if d else "") + f"{h} h {m} min"
