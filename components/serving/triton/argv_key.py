"""Keeping the Triton admin key out of the process list.

tritonserver takes the key of its restricted APIs only on its command line
(`--http-restricted-api=<apis>:<header>=<key>`, `--grpc-restricted-protocol=...`; it has no config
file or environment variable for them), and /proc/<pid>/cmdline is readable by every local user.
So the command line carries a placeholder, and a tiny library preloaded into tritonserver (built
here from the C source below with the system C compiler, once per work folder) replaces it before
main() runs: glibc passes argv to a preloaded library's constructor, which points the argument at a
heap copy holding the key. main() parses the key; /proc/<pid>/cmdline, read from the original
argument memory, keeps showing the placeholder. The key travels in the server's environment
(/proc/<pid>/environ is readable by its owner only, as the 0600 key file is); the constructor
overwrites it there too and unsets it (and LD_PRELOAD) so the python-backend stubs do not inherit it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PLACEHOLDER = "@FLIGHTDECK_ADMIN_KEY@"
KEY_ENV = "FLIGHTDECK_TRITON_ADMIN_KEY"

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PLACEHOLDER "@PLACEHOLDER@"
#define KEY_ENV "@KEY_ENV@"

__attribute__((constructor)) static void flightdeck_fill_admin_key(int argc, char **argv, char **envp) {
    (void)envp;
    if (argv == NULL) return;
    int wanted = 0;
    for (int i = 0; i < argc; i++) wanted |= argv[i] != NULL && strstr(argv[i], PLACEHOLDER) != NULL;
    if (!wanted) return;
    char *in_env = getenv(KEY_ENV);
    if (in_env == NULL || *in_env == '\0') {
        fprintf(stderr, "flightdeck: %s is empty: cannot fill in the admin key of %s\n", KEY_ENV, argv[0]);
        _exit(78);
    }
    char *key = strdup(in_env);
    if (key == NULL) _exit(71);
    memset(in_env, 'x', strlen(in_env));  /* out of /proc/<pid>/environ as well */
    size_t plen = strlen(PLACEHOLDER), klen = strlen(key);
    for (int i = 0; i < argc; i++) {
        char *at = argv[i] ? strstr(argv[i], PLACEHOLDER) : NULL;
        if (at == NULL) continue;
        size_t head = (size_t)(at - argv[i]), tail = strlen(at + plen);
        char *out = malloc(head + klen + tail + 1);
        if (out == NULL) _exit(71);
        memcpy(out, argv[i], head);
        memcpy(out + head, key, klen);
        memcpy(out + head + klen, at + plen, tail + 1);
        argv[i] = out;  /* main() parses this copy; /proc/<pid>/cmdline keeps the placeholder */
    }
    unsetenv(KEY_ENV);
    unsetenv("LD_PRELOAD");
}
""".replace("@PLACEHOLDER@", PLACEHOLDER).replace("@KEY_ENV@", KEY_ENV)


class ArgvKeyUnavailable(RuntimeError):
    """The preload library cannot be built (no C compiler)."""


def preload_library(work: Path) -> Path:
    """The built library under work/lib (built on first use; the name carries the source's hash)."""
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    lib = Path(work) / "lib" / f"flightdeck_argv_key-{digest}.so"
    if lib.is_file():
        return lib
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise ArgvKeyUnavailable(
            "starting Triton with an admin key needs a C compiler (cc) to build the small library that keeps "
            "the key off tritonserver's command line (components/serving/triton/argv_key.py); install one "
            "(apt-get install gcc), or run Triton in its container as in production")
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        src, out = Path(tmp) / "argv_key.c", Path(tmp) / lib.name
        src.write_text(SOURCE)
        done = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(src)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ArgvKeyUnavailable(f"could not build {lib.name} with {compiler}: {done.stderr.strip()[-2000:]}")
        os.replace(out, lib)  # atomic: a concurrent start sees the old state or the finished library
    return lib
