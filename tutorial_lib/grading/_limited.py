"""Run a command under resource limits: `python _limited.py LIMITS_JSON CMD ARG...` sets the limits
(setrlimit) on itself, then becomes CMD. Run by file path, not as a module, so that nothing of
tutorial_lib is imported before the limits hold. Written by tutorial_lib.grading.sandbox."""

import json
import os
import resource
import sys

_NAMES = {
    "memory_mb": (resource.RLIMIT_DATA, 1 << 20),  # heap and private mappings, not reserved address space
    "cpu_seconds": (resource.RLIMIT_CPU, 1),
    "file_mb": (resource.RLIMIT_FSIZE, 1 << 20),
    "processes": (resource.RLIMIT_NPROC, 1),  # per user: not enforced for root
}


def main() -> None:
    limits = json.loads(sys.argv[1])
    for key, value in limits.items():
        if key in _NAMES and value:
            which, unit = _NAMES[key]
            hard = resource.getrlimit(which)[1]
            soft = int(value) * unit
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(which, (soft, soft))
    os.execv(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
